//! The production gateway's configuration: `COFFER_GATEWAY__{KEY}` variables, or `key` under
//! `[gateway]` in a TOML file (the environment wins), parsed once at start into typed values;
//! every problem is reported at once, and a variable no Coffer program reads is refused.
//!
//! The common server settings ([`coffer_server::config`]) mean here: `LISTEN` the public
//! HTTP address (default `0.0.0.0:8443`); `TLS_CERT`, `TLS_KEY`, `TLS_CA` the gateway's own
//! mTLS identity towards the services (`spiffe://{td}/gateway`) and the CA their certificates
//! chain to; `REQUEST_TIMEOUT` the longest a REST call may take (504 after it). The public
//! listener's own certificate is separate (`PUBLIC_TLS_CERT`, `PUBLIC_TLS_KEY`): required
//! unless `LISTEN` is a loopback address, so plain HTTP never leaves the machine.

use std::path::{Path, PathBuf};

use coffer_config::{ConfigErrors, OTLP_ENDPOINT_VARIABLE, Parser, Values};
use coffer_server::upstream::{self, Upstream};

use crate::server::Cors;

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The common settings (see the module docs); default port 8443.
    pub server: coffer_server::Config,
    /// The public listener's certificate chain and key (`..__PUBLIC_TLS_CERT`,
    /// `..__PUBLIC_TLS_KEY`, PEM); `None` serves plain HTTP, on loopback only.
    pub public_tls: Option<PublicTls>,
    /// key-service, auth-service and credential-service (`..__KEY_SERVICE_URL`,
    /// `..__AUTH_SERVICE_URL`, `..__CREDENTIAL_SERVICE_URL`, required, each with
    /// `_SERVER_NAME` and `_IDENTITY` as for every upstream, see
    /// [`coffer_server::upstream`]).
    pub upstreams: Vec<(&'static str, Upstream)>,
    /// Browser origins allowed (`..__CORS_ORIGINS`, comma-separated, or `*`; default none).
    pub cors: Cors,
    /// Requests per client address per minute (`..__RATE_LIMIT`, default 100; `0` none).
    pub rate_limit: u32,
    /// Requests per API key per minute (`..__KEY_RATE_LIMIT`, default 1000; `0` none).
    pub key_rate_limit: u32,
    /// Requests in flight before new ones are shed with 503 (`..__MAX_IN_FLIGHT`, default
    /// 1024).
    pub max_in_flight: usize,
    /// RPCs routed although the default rule keeps them off REST (`..__ROUTE_ALSO`,
    /// comma-separated full names such as `coffer.v1.KeyService.RotateRootKey`; each must be
    /// one of [`crate::routes::NOT_PUBLIC`]).
    pub route_also: Vec<String>,
    /// The public URL clients reach the gateway at (`..__PUBLIC_URL`, `https://...`): when
    /// set, the gateway serves the OAuth authorization server with this issuer (see
    /// [`crate::oauth`]). auth-service's `ISSUER` and every service's `AUDIENCE` must be the
    /// same URL.
    pub issuer: Option<crate::oauth::Issuer>,
}

/// The public listener's certificate chain and private key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicTls {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// The gateway's default port.
pub const DEFAULT_PORT: u16 = 8443;

const PREFIX: &str = "COFFER_GATEWAY__";

/// The services the gateway calls: (setting name, service name, proto service).
const SERVICES: [(&str, &str, &str); 3] = [
    ("KEY_SERVICE", "key-service", "coffer.v1.KeyService"),
    ("AUTH_SERVICE", "auth-service", "coffer.v1.AuthService"),
    (
        "CREDENTIAL_SERVICE",
        "credential-service",
        "coffer.v1.CredentialService",
    ),
];

impl Config {
    /// Reads the optional TOML file, overlays the environment, and validates.
    ///
    /// # Errors
    /// [`ConfigErrors`] listing every problem.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigErrors> {
        coffer_config::load(
            "gateway",
            PREFIX,
            &[OTLP_ENDPOINT_VARIABLE],
            file,
            Self::from_values,
        )
    }

    /// Validates raw values keyed by environment-variable name.
    ///
    /// # Errors
    /// [`ConfigErrors`] listing every problem.
    pub fn from_values(values: &Values) -> Result<Self, ConfigErrors> {
        let mut p = Parser::new(values, PREFIX);
        let server = coffer_server::Config::parse(&mut p, DEFAULT_PORT);
        let trust_domain = upstream::trust_domain(server.as_ref().map(|s| &s.tls));
        let upstreams: Vec<_> = SERVICES
            .iter()
            .map(|(name, service, proto)| {
                upstream::parse(&mut p, name, service, &trust_domain).map(|u| (*proto, u))
            })
            .collect();
        let public_tls = match (p.value("PUBLIC_TLS_CERT"), p.value("PUBLIC_TLS_KEY")) {
            (Some(cert), Some(key)) => Some(Some(PublicTls {
                cert: cert.into(),
                key: key.into(),
            })),
            (None, None) => Some(None),
            (Some(_), None) => {
                p.error("PUBLIC_TLS_KEY", "required with PUBLIC_TLS_CERT");
                None
            }
            (None, Some(_)) => {
                p.error("PUBLIC_TLS_CERT", "required with PUBLIC_TLS_KEY");
                None
            }
        };
        if let (Some(server), Some(None)) = (&server, &public_tls)
            && !server.listen.ip().is_loopback()
        {
            p.error(
                "PUBLIC_TLS_CERT",
                "required unless LISTEN is a loopback address: plain HTTP stays on the machine",
            );
        }
        let cors = match p.value("CORS_ORIGINS") {
            Some(text) => {
                let origins = comma_list(&text);
                Cors::parse(&origins)
                    .map_err(|why| p.error("CORS_ORIGINS", &why))
                    .ok()
            }
            None => Some(Cors::Denied),
        };
        let rate_limit = p.or("RATE_LIMIT", crate::limit::DEFAULT_PER_MINUTE, |s| {
            s.parse().ok()
        });
        let key_rate_limit = p.or(
            "KEY_RATE_LIMIT",
            crate::limit::DEFAULT_PER_KEY_PER_MINUTE,
            |s| s.parse().ok(),
        );
        let max_in_flight = p.or("MAX_IN_FLIGHT", crate::server::DEFAULT_MAX_IN_FLIGHT, |s| {
            s.parse::<usize>().ok().filter(|n| *n > 0)
        });
        let route_also = match p.value("ROUTE_ALSO") {
            Some(text) => {
                let names = comma_list(&text);
                match names
                    .iter()
                    .find(|name| !crate::routes::NOT_PUBLIC.contains(&name.as_str()))
                {
                    Some(name) => {
                        p.error(
                            "ROUTE_ALSO",
                            &format!(
                                "`{name}` is not one of the RPCs kept off REST by default: {}",
                                crate::routes::NOT_PUBLIC.join(", ")
                            ),
                        );
                        None
                    }
                    None => Some(names),
                }
            }
            None => Some(Vec::new()),
        };

        let issuer = match p.value("PUBLIC_URL") {
            Some(text) => crate::oauth::Issuer::parse(&text)
                .map(Some)
                .map_err(|why| p.error("PUBLIC_URL", &why))
                .ok(),
            None => Some(None),
        };

        let upstreams: Option<Vec<_>> = upstreams.into_iter().collect();
        let (
            Some(server),
            Some(public_tls),
            Some(upstreams),
            Some(cors),
            Some(rate_limit),
            Some(key_rate_limit),
            Some(max_in_flight),
            Some(route_also),
            Some(issuer),
        ) = (
            server,
            public_tls,
            upstreams,
            cors,
            rate_limit,
            key_rate_limit,
            max_in_flight,
            route_also,
            issuer,
        )
        else {
            return Err(p.into_errors());
        };
        if !p.is_ok() {
            return Err(p.into_errors());
        }
        Ok(Self {
            server,
            public_tls,
            upstreams,
            cors,
            rate_limit,
            key_rate_limit,
            max_in_flight,
            route_also,
            issuer,
        })
    }
}

/// The non-empty, trimmed entries of a comma-separated setting.
fn comma_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(|entry| entry.trim().to_owned())
        .filter(|entry| !entry.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn values(pairs: &[(&str, &str)]) -> Values {
        Values::from_map(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = Config::from_values(&values(&[
            ("COFFER_GATEWAY__PUBLIC_TLS_CERT", "/etc/cert.pem"),
            ("COFFER_GATEWAY__CORS_ORIGINS", "https://a.example/path"),
            ("COFFER_GATEWAY__RATE_LIMIT", "lots"),
            ("COFFER_GATEWAY__MAX_IN_FLIGHT", "0"),
            ("COFFER_GATEWAY__ROUTE_ALSO", "coffer.v1.KeyService.Encrypt"),
            ("COFFER_GATEWAY__KEY_SERVICE_URL", "http://key:50051"),
        ]))
        .unwrap_err()
        .to_string();
        for expected in [
            "COFFER_GATEWAY__TLS_CERT: required",
            "COFFER_GATEWAY__PUBLIC_TLS_KEY: required with PUBLIC_TLS_CERT",
            "COFFER_GATEWAY__CORS_ORIGINS:",
            "COFFER_GATEWAY__RATE_LIMIT: invalid value",
            "COFFER_GATEWAY__MAX_IN_FLIGHT: invalid value",
            "COFFER_GATEWAY__ROUTE_ALSO: `coffer.v1.KeyService.Encrypt` is not one of",
            "COFFER_GATEWAY__KEY_SERVICE_URL: must be https://host:port",
            "COFFER_GATEWAY__AUTH_SERVICE_URL: required",
            "COFFER_GATEWAY__CREDENTIAL_SERVICE_URL: required",
        ] {
            assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
        }
    }

    #[test]
    fn plain_http_is_refused_off_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let ca = coffer_transport::DevCa::load_or_create(dir.path(), "coffer.local").unwrap();
        let files = ca
            .issue_files(
                dir.path(),
                "gateway",
                "gateway",
                coffer_transport::dev_ca::Usage::Client,
            )
            .unwrap();
        let (cert, key, ca_file) = (
            files.cert.to_str().unwrap(),
            files.key.to_str().unwrap(),
            files.ca.to_str().unwrap(),
        );
        let with = |extra: &[(&str, &str)]| {
            let mut pairs = vec![
                ("COFFER_GATEWAY__TLS_CERT", cert),
                ("COFFER_GATEWAY__TLS_KEY", key),
                ("COFFER_GATEWAY__TLS_CA", ca_file),
                (
                    "COFFER_GATEWAY__KEY_SERVICE_URL",
                    "https://key.internal:50051",
                ),
                (
                    "COFFER_GATEWAY__AUTH_SERVICE_URL",
                    "https://auth.internal:50052",
                ),
                (
                    "COFFER_GATEWAY__CREDENTIAL_SERVICE_URL",
                    "https://credential.internal:50053",
                ),
            ];
            pairs.extend_from_slice(extra);
            Config::from_values(&values(&pairs))
        };
        let text = with(&[]).unwrap_err().to_string();
        assert!(
            text.contains("COFFER_GATEWAY__PUBLIC_TLS_CERT: required unless LISTEN is a loopback"),
            "{text}"
        );
        let local = with(&[("COFFER_GATEWAY__LISTEN", "127.0.0.1:8080")]).unwrap();
        assert_eq!(local.public_tls, None);
        assert_eq!(local.cors, Cors::Denied);
        assert_eq!(local.rate_limit, crate::limit::DEFAULT_PER_MINUTE);
        let upstream = &local.upstreams[0];
        assert_eq!(upstream.0, "coffer.v1.KeyService");
        assert_eq!(
            upstream.1.identity.as_str(),
            "spiffe://coffer.local/key-service"
        );
        let public = with(&[
            ("COFFER_GATEWAY__PUBLIC_TLS_CERT", "/etc/coffer/public.pem"),
            (
                "COFFER_GATEWAY__PUBLIC_TLS_KEY",
                "/etc/coffer/public-key.pem",
            ),
            (
                "COFFER_GATEWAY__CORS_ORIGINS",
                "https://app.example, https://admin.example",
            ),
            (
                "COFFER_GATEWAY__ROUTE_ALSO",
                "coffer.v1.KeyService.RotateRootKey",
            ),
        ])
        .unwrap();
        assert!(public.public_tls.is_some());
        assert!(matches!(public.cors, Cors::Origins(ref o) if o.len() == 2));
        assert_eq!(public.route_also, ["coffer.v1.KeyService.RotateRootKey"]);
    }
}
