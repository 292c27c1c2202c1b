//! Configuration: raw strings from a TOML file and the environment, parsed once at start-up
//! into a [`Config`] of typed values. Every invalid or missing key is reported, not just the
//! first, and nothing can fail later because of bad configuration.
//!
//! Each setting has one name, its environment variable; in a TOML file the same setting is the
//! lowercase key under `[key_service]` (`COFFER_KEY_SERVICE__REQUEST_TIMEOUT` is
//! `request_timeout`). The environment wins over the file. The root keyring is the exception:
//! `COFFER_ROOT_KEYS` holds it directly, or `COFFER_KEY_SERVICE__ROOT_KEYS_FILE` names a file.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

pub use coffer_config::ConfigErrors;
use coffer_config::{OTLP_ENDPOINT_VARIABLE, Parser, Values, parse_duration};
use coffer_telemetry::LogFormat;
use coffer_transport::TlsMaterial;
use secrecy::SecretString;

use crate::authz::Policy;
use crate::clock::Clock;
use crate::keyring::RootKeyring;

/// The validated key-service configuration.
pub struct Config {
    /// Address the binary binds (`COFFER_KEY_SERVICE__LISTEN`, default `0.0.0.0:50051`).
    /// [`crate::serve`] itself never binds: its caller passes a listener.
    pub listen: SocketAddr,
    /// `sqlite:...` or `postgres://...` (`COFFER_KEY_SERVICE__DATABASE_URL`, required). Secret:
    /// it may hold a password.
    pub database_url: SecretString,
    /// PostgreSQL pool size (`..__DATABASE_MAX_CONNECTIONS`, default 16). SQLite always uses one
    /// connection.
    pub database_max_connections: u32,
    /// The root keyring (`COFFER_ROOT_KEYS` or `..__ROOT_KEYS_FILE`, required).
    pub keyring: RootKeyring,
    /// Server certificate, key and client CA (`..__TLS_CERT`, `..__TLS_KEY`, `..__TLS_CA`,
    /// required). Clients must present a certificate from this CA.
    pub tls: TlsMaterial,
    /// SPIFFE trust domain of the default authorization table (`..__TRUST_DOMAIN`, default
    /// `coffer.local`).
    pub trust_domain: String,
    /// Who may call what (`..__AUTHZ`, see [`Policy::parse`]; default
    /// [`Policy::default_for`] the trust domain).
    pub authz: Policy,
    /// Time between ScheduleKeyDeletion and destruction (`..__DELETION_WAITING_PERIOD`,
    /// default `7d`). It is the window in which a mistaken deletion can still be cancelled.
    pub deletion_waiting_period: Duration,
    /// Longest time one request may take (`..__REQUEST_TIMEOUT`, default `30s`), so graceful
    /// shutdown never waits on a hung call.
    pub request_timeout: Duration,
    /// How long shutdown waits for in-flight calls (`..__SHUTDOWN_GRACE_PERIOD`, default `30s`).
    pub shutdown_grace_period: Duration,
    /// Most unwrapped key versions kept in memory (`..__CACHE_CAPACITY`, default 10000).
    pub cache_capacity: NonZeroUsize,
    /// Longest time an unwrapped version stays cached (`..__CACHE_TTL`, default `5m`).
    pub cache_ttl: Duration,
    /// How often keys past their deletion time are destroyed (`..__REAPER_INTERVAL`, default
    /// `60s`). Requests never use such a key even between runs.
    pub reaper_interval: Duration,
    /// `human` or `json` log lines (`..__LOG_FORMAT`, default `human`).
    pub log_format: LogFormat,
    /// OTLP/gRPC collector for traces (the standard `OTEL_EXPORTER_OTLP_ENDPOINT`, e.g.
    /// `http://127.0.0.1:4317`); unset means no export.
    pub otlp_endpoint: Option<String>,
    /// The clock; [`Clock::system`] except in tests.
    pub clock: Clock,
}

impl Config {
    /// A configuration with every optional setting at its default.
    pub fn new(database_url: SecretString, keyring: RootKeyring, tls: TlsMaterial) -> Self {
        let trust_domain = DEFAULT_TRUST_DOMAIN.to_owned();
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 50051)),
            database_url,
            database_max_connections: 16,
            keyring,
            tls,
            authz: Policy::default_for(&trust_domain),
            trust_domain,
            deletion_waiting_period: Duration::from_secs(7 * 24 * 3600),
            request_timeout: Duration::from_secs(30),
            shutdown_grace_period: Duration::from_secs(30),
            cache_capacity: NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN),
            cache_ttl: Duration::from_secs(300),
            reaper_interval: Duration::from_secs(60),
            log_format: LogFormat::Human,
            otlp_endpoint: None,
            clock: Clock::system(),
        }
    }

    /// Reads the optional TOML file, overlays the process environment, and validates.
    ///
    /// # Errors
    /// [`ConfigErrors`] listing every problem.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigErrors> {
        let values = Values::load(
            "key_service",
            PREFIX,
            &[ROOT_KEYS, OTLP_ENDPOINT_VARIABLE],
            file,
        )?;
        Self::from_values(&values)
    }

    /// Validates raw values keyed by environment-variable name.
    ///
    /// # Errors
    /// [`ConfigErrors`] listing every problem.
    pub fn from_values(values: &Values) -> Result<Self, ConfigErrors> {
        let mut p = Parser::new(values, PREFIX);
        let listen = p.parse("LISTEN", "0.0.0.0:50051", |s| s.parse::<SocketAddr>().ok());
        let database_url = p.required("DATABASE_URL").map(SecretString::from);
        let database_max_connections = p.parse("DATABASE_MAX_CONNECTIONS", "16", |s| {
            s.parse::<u32>().ok().filter(|n| *n > 0)
        });
        let keyring = keyring(&mut p);
        let tls = p.tls();
        let trust_domain = p.parse("TRUST_DOMAIN", DEFAULT_TRUST_DOMAIN, |s| {
            coffer_transport::SpiffeId::new(s, "x")
                .ok()
                .map(|_| s.to_owned())
        });
        let authz = match (p.value("AUTHZ"), &trust_domain) {
            (Some(text), _) => Policy::parse(&text).map_err(|e| p.error("AUTHZ", &e)).ok(),
            (None, Some(domain)) => Some(Policy::default_for(domain)),
            (None, None) => None,
        };
        let deletion_waiting_period = p.parse("DELETION_WAITING_PERIOD", "7d", parse_duration);
        let request_timeout = p.parse("REQUEST_TIMEOUT", "30s", parse_duration);
        let shutdown_grace_period = p.parse("SHUTDOWN_GRACE_PERIOD", "30s", parse_duration);
        let cache_capacity = p.parse("CACHE_CAPACITY", "10000", |s| {
            s.parse::<NonZeroUsize>().ok()
        });
        let cache_ttl = p.parse("CACHE_TTL", "5m", parse_duration);
        let reaper_interval = p.parse("REAPER_INTERVAL", "60s", |s| {
            parse_duration(s).filter(|d| !d.is_zero())
        });
        let log_format = p.parse("LOG_FORMAT", "human", |s| s.parse::<LogFormat>().ok());
        let otlp_endpoint = p.otlp_endpoint();

        // Every `None` above has recorded a problem, so the fallback only runs with problems.
        let (
            Some(listen),
            Some(database_url),
            Some(database_max_connections),
            Some(keyring),
            Some(tls),
            Some(trust_domain),
            Some(authz),
            Some(deletion_waiting_period),
            Some(request_timeout),
            Some(shutdown_grace_period),
            Some(cache_capacity),
            Some(cache_ttl),
            Some(reaper_interval),
            Some(log_format),
        ) = (
            listen,
            database_url,
            database_max_connections,
            keyring,
            tls,
            trust_domain,
            authz,
            deletion_waiting_period,
            request_timeout,
            shutdown_grace_period,
            cache_capacity,
            cache_ttl,
            reaper_interval,
            log_format,
        )
        else {
            return Err(p.into_errors());
        };
        if !p.is_ok() {
            return Err(p.into_errors());
        }
        Ok(Self {
            listen,
            database_url,
            database_max_connections,
            keyring,
            tls,
            trust_domain,
            authz,
            deletion_waiting_period,
            request_timeout,
            shutdown_grace_period,
            cache_capacity,
            cache_ttl,
            reaper_interval,
            log_format,
            otlp_endpoint,
            clock: Clock::system(),
        })
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("keyring", &self.keyring)
            .field("trust_domain", &self.trust_domain)
            .field("deletion_waiting_period", &self.deletion_waiting_period)
            .finish_non_exhaustive()
    }
}

/// The root keyring: `COFFER_ROOT_KEYS`, or the file `{PREFIX}ROOT_KEYS_FILE` names.
fn keyring(p: &mut Parser<'_>) -> Option<RootKeyring> {
    let text = match (p.global(ROOT_KEYS), p.value("ROOT_KEYS_FILE")) {
        (Some(_), Some(_)) => {
            p.push(format!(
                "{ROOT_KEYS} and {PREFIX}ROOT_KEYS_FILE are both set: give the root keyring \
                 one way only"
            ));
            return None;
        }
        (Some(text), None) => SecretString::from(text),
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(text) => SecretString::from(text),
            Err(e) => {
                p.error("ROOT_KEYS_FILE", &format!("cannot read {path}: {e}"));
                return None;
            }
        },
        (None, None) => {
            p.push(format!(
                "{ROOT_KEYS} or {PREFIX}ROOT_KEYS_FILE: required (the production binary never \
                 generates a root key; `coffer up` does, for development)"
            ));
            return None;
        }
    };
    RootKeyring::parse(&text)
        .map_err(|e| p.push(format!("root keys: {e}")))
        .ok()
}

const PREFIX: &str = "COFFER_KEY_SERVICE__";
const ROOT_KEYS: &str = "COFFER_ROOT_KEYS";
const DEFAULT_TRUST_DOMAIN: &str = "coffer.local";

#[cfg(test)]
mod tests;
