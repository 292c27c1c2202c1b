//! The settings every Coffer server has, parsed once by [`Config::parse`] inside each
//! service's own section (`COFFER_{SERVICE}__{KEY}`, or `key` under `[{service}]` in TOML).
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `LISTEN` | the service's port on `0.0.0.0` | gRPC address the binary binds |
//! | `TLS_CERT`, `TLS_KEY`, `TLS_CA` | required | server certificate and key (also the client identity towards other services) and the CA client certificates must chain to |
//! | `REQUEST_TIMEOUT` | `30s` | longest time one call may take; more than zero |
//! | `SHUTDOWN_GRACE_PERIOD` | `30s` | how long a stop waits for in-flight calls |
//! | `LOG_FORMAT` | `human` | `human` or `json` log lines |
//! | `METRICS_LISTEN` | unset | address of the Prometheus `/metrics` endpoint; unset serves none |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | unset | OTLP/gRPC trace collector (the standard variable, not prefixed) |

use std::net::SocketAddr;
use std::time::Duration;

use coffer_config::{Parser, parse_duration};
use coffer_telemetry::LogFormat;
use coffer_transport::TlsMaterial;

/// Longest time one request may take, unless configured.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stop waits for in-flight calls, unless configured.
pub const DEFAULT_SHUTDOWN_GRACE_PERIOD: Duration = Duration::from_secs(30);

/// The settings every server has.
#[derive(Debug)]
pub struct Config {
    /// Address the binary binds (`LISTEN`). [`crate::serve()`] itself never binds: its caller
    /// passes the listeners.
    pub listen: SocketAddr,
    /// Server certificate, key and client CA (`TLS_CERT`, `TLS_KEY`, `TLS_CA`, required).
    /// Clients must present a certificate from this CA; the same certificate is this
    /// service's identity when it calls another.
    pub tls: TlsMaterial,
    /// Longest time one call may take (`REQUEST_TIMEOUT`, default 30 s, more than zero), so
    /// graceful shutdown never waits on a hung call.
    pub request_timeout: Duration,
    /// How long a stop waits for in-flight calls (`SHUTDOWN_GRACE_PERIOD`, default 30 s).
    pub shutdown_grace_period: Duration,
    /// `human` or `json` log lines (`LOG_FORMAT`, default `human`).
    pub log_format: LogFormat,
    /// OTLP/gRPC collector for traces (`OTEL_EXPORTER_OTLP_ENDPOINT`); unset, no export.
    pub otlp_endpoint: Option<String>,
    /// Prometheus `/metrics` address (`METRICS_LISTEN`); unset, no metrics endpoint.
    pub metrics_listen: Option<SocketAddr>,
}

impl Config {
    /// Every setting but the TLS material at its default, listening on `0.0.0.0:{port}`.
    pub fn new(tls: TlsMaterial, port: u16) -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], port)),
            tls,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            shutdown_grace_period: DEFAULT_SHUTDOWN_GRACE_PERIOD,
            log_format: LogFormat::Human,
            otlp_endpoint: None,
            metrics_listen: None,
        }
    }

    /// Parses the common settings from `p`'s section, with `port` as the default port;
    /// `None` when any of them has a problem (recorded in `p`).
    pub fn parse(p: &mut Parser<'_>, port: u16) -> Option<Self> {
        let listen = p.or(
            "LISTEN",
            SocketAddr::from(([0, 0, 0, 0], port)),
            listen_address,
        );
        let tls = p.tls();
        let request_timeout = p.or("REQUEST_TIMEOUT", DEFAULT_REQUEST_TIMEOUT, |s| {
            parse_duration(s).filter(|d| !d.is_zero())
        });
        let shutdown_grace_period = p.or(
            "SHUTDOWN_GRACE_PERIOD",
            DEFAULT_SHUTDOWN_GRACE_PERIOD,
            parse_duration,
        );
        let log_format = p.or("LOG_FORMAT", LogFormat::Human, |s| {
            s.parse::<LogFormat>().ok()
        });
        let metrics_listen = p.optional("METRICS_LISTEN", listen_address);
        let otlp_endpoint = p.otlp_endpoint();
        Some(Self {
            listen: listen?,
            tls: tls?,
            request_timeout: request_timeout?,
            shutdown_grace_period: shutdown_grace_period?,
            log_format: log_format?,
            otlp_endpoint,
            metrics_listen: metrics_listen?,
        })
    }
}

/// A listen address: `IP:PORT` (`0.0.0.0:50051`, `[::]:50051`) or `HOST:PORT` with a host name
/// resolved once at start (`localhost:50051`; the first address the resolver gives, IPv4
/// first). `None` if it is neither, or the name does not resolve.
pub fn listen_address(text: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs as _;
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Some(address);
    }
    let (host, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    if host.is_empty() || host.contains([':', '/', '[', ']']) {
        return None;
    }
    let mut resolved: Vec<SocketAddr> = text.to_socket_addrs().ok()?.collect();
    resolved.sort_by_key(SocketAddr::is_ipv6);
    resolved.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_take_ips_and_host_names() {
        assert_eq!(
            listen_address("0.0.0.0:50051"),
            Some(SocketAddr::from(([0, 0, 0, 0], 50051)))
        );
        assert_eq!(
            listen_address("[::1]:7"),
            Some(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 7)))
        );
        assert_eq!(
            listen_address("localhost:50051"),
            Some(SocketAddr::from(([127, 0, 0, 1], 50051)))
        );
        for bad in [
            "localhost",
            "localhost:",
            "localhost:99999",
            ":80",
            "a/b:1",
            "",
        ] {
            assert_eq!(listen_address(bad), None, "{bad}");
        }
    }
}
