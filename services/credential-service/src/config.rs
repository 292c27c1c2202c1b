//! credential-service configuration: `COFFER_CREDENTIAL_SERVICE__{KEY}` variables or
//! `[credential_service]` in a TOML file (see `coffer_config`).

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

pub use coffer_config::ConfigErrors;
use coffer_config::{OTLP_ENDPOINT_VARIABLE, Parser, Values, parse_duration};
use coffer_telemetry::LogFormat;
use coffer_transport::{SpiffeId, TlsMaterial, Upstream};
use secrecy::SecretString;

/// The trust domain assumed when this service's own certificate names none.
const DEFAULT_TRUST_DOMAIN: &str = "coffer.local";

/// `url` as the upstream `service` of `trust_domain`: verified as its own host and as
/// `spiffe://{trust_domain}/{service}`.
#[allow(clippy::expect_used)]
fn upstream_at(url: String, service: &'static str, trust_domain: &str) -> Upstream {
    let server_name = coffer_config::https_host(&url).unwrap_or_default();
    // Holds: the trust domain comes from a parsed SPIFFE ID or is the default, and the
    // service is one of this file's literal names.
    let identity = SpiffeId::new(trust_domain, service).expect("a valid trust domain and name");
    Upstream {
        url,
        server_name,
        identity,
    }
}

/// The validated configuration.
pub struct Config {
    /// Listen address (`..__LISTEN`, default `0.0.0.0:50053`).
    pub listen: SocketAddr,
    /// `sqlite:...` or `postgres://...` (`..__DATABASE_URL`, required; secret).
    pub database_url: SecretString,
    /// PostgreSQL pool size (`..__DATABASE_MAX_CONNECTIONS`, default 16).
    pub database_max_connections: u32,
    /// Certificate, key and CA (`..__TLS_CERT`, `..__TLS_KEY`, `..__TLS_CA`, required); the
    /// certificate is also this service's identity towards key-service and auth-service.
    pub tls: TlsMaterial,
    /// key-service (`..__KEY_SERVICE_URL`, required, `https://host:port`;
    /// `..__KEY_SERVICE_SERVER_NAME`, default the URL's host; `..__KEY_SERVICE_IDENTITY`, the
    /// SPIFFE ID its certificate must carry, default `spiffe://{td}/key-service` where `td`
    /// is the trust domain of this service's own certificate).
    pub key_service: Upstream,
    /// auth-service, for bearer verification (`..__AUTH_SERVICE_URL`, required;
    /// `..__AUTH_SERVICE_SERVER_NAME`; `..__AUTH_SERVICE_IDENTITY`, default
    /// `spiffe://{td}/auth-service`).
    pub auth_service: Upstream,
    /// The tenant key id data keys are made under: `tenants/{tenant}/keys/{id}`
    /// (`..__DATA_KEY_ID`, default `credentials`).
    pub data_key_id: String,
    /// Unwrapped data keys kept (`..__DEK_CACHE_CAPACITY`, default 10000) and for how long
    /// (`..__DEK_CACHE_TTL`, default `5m`).
    pub dek_cache_capacity: NonZeroUsize,
    /// See `dek_cache_capacity`.
    pub dek_cache_ttl: Duration,
    /// How long a sealing key pair lives (`..__SEALING_KEY_LIFETIME`, default `1h`; `0`
    /// disables sealed intake). A new pair is handed out after half of it.
    pub sealing_key_lifetime: Option<Duration>,
    /// Credentials per re-wrap page (`..__REWRAP_PAGE_SIZE`, default 100) and how often the
    /// background sweep looks for credentials behind their tenant key's primary version
    /// (`..__REWRAP_INTERVAL`, default `5m`).
    pub rewrap_page_size: u32,
    /// See `rewrap_page_size`.
    pub rewrap_interval: Duration,
    /// Prometheus `/metrics` address (`..__METRICS_LISTEN`, unset: no metrics endpoint).
    pub metrics_listen: Option<SocketAddr>,
    /// Bearer verification settings (issuer `..__TOKEN_ISSUER`, audience `..__TOKEN_AUDIENCE`).
    pub authn: coffer_authn::authenticator::Settings,
    /// Longest time one request may take (`..__REQUEST_TIMEOUT`, default `30s`).
    pub request_timeout: Duration,
    /// Drain time on shutdown (`..__SHUTDOWN_GRACE_PERIOD`, default `30s`).
    pub shutdown_grace_period: Duration,
    /// `human` or `json` (`..__LOG_FORMAT`).
    pub log_format: LogFormat,
    /// OTLP collector, if any.
    pub otlp_endpoint: Option<String>,
}

impl Config {
    /// Every optional setting at its default.
    pub fn new(
        database_url: SecretString,
        tls: TlsMaterial,
        key_service: String,
        auth_service: String,
    ) -> Self {
        let trust_domain = tls
            .identity()
            .map_or(DEFAULT_TRUST_DOMAIN, SpiffeId::trust_domain)
            .to_owned();
        let key_service = upstream_at(key_service, "key-service", &trust_domain);
        let auth_service = upstream_at(auth_service, "auth-service", &trust_domain);
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 50053)),
            database_url,
            database_max_connections: 16,
            tls,
            key_service,
            auth_service,
            data_key_id: "credentials".to_owned(),
            dek_cache_capacity: NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN),
            dek_cache_ttl: Duration::from_secs(300),
            sealing_key_lifetime: Some(Duration::from_secs(3600)),
            rewrap_page_size: 100,
            metrics_listen: None,
            rewrap_interval: Duration::from_secs(300),
            authn: coffer_authn::authenticator::Settings::default(),
            request_timeout: Duration::from_secs(30),
            shutdown_grace_period: Duration::from_secs(30),
            log_format: LogFormat::Human,
            otlp_endpoint: None,
        }
    }

    /// Reads the optional TOML file, overlays the environment, and validates.
    ///
    /// # Errors
    /// [`ConfigErrors`] listing every problem.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigErrors> {
        let values = Values::load(
            "credential_service",
            PREFIX,
            &[OTLP_ENDPOINT_VARIABLE],
            file,
        )?;
        Self::from_values(&values)
    }

    /// Validates raw values.
    ///
    /// # Errors
    /// [`ConfigErrors`] listing every problem.
    pub fn from_values(values: &Values) -> Result<Self, ConfigErrors> {
        let mut p = Parser::new(values, PREFIX);
        let listen = p.parse("LISTEN", "0.0.0.0:50053", |s| s.parse::<SocketAddr>().ok());
        let database_url = p.required("DATABASE_URL").map(SecretString::from);
        let database_max_connections = p.parse("DATABASE_MAX_CONNECTIONS", "16", |s| {
            s.parse::<u32>().ok().filter(|n| *n > 0)
        });
        let tls = p.tls();
        let trust_domain = tls
            .as_ref()
            .and_then(TlsMaterial::identity)
            .map_or(DEFAULT_TRUST_DOMAIN, SpiffeId::trust_domain)
            .to_owned();
        let key_service = upstream(&mut p, "KEY_SERVICE", "key-service", &trust_domain);
        let auth_service = upstream(&mut p, "AUTH_SERVICE", "auth-service", &trust_domain);
        let data_key_id = p.parse("DATA_KEY_ID", "credentials", |s| {
            coffer_proto::is_valid_id(s).then(|| s.to_owned())
        });
        let dek_cache_capacity = p.parse("DEK_CACHE_CAPACITY", "10000", |s| {
            s.parse::<NonZeroUsize>().ok()
        });
        let dek_cache_ttl = p.parse("DEK_CACHE_TTL", "5m", parse_duration);
        let rewrap_page_size = p.parse("REWRAP_PAGE_SIZE", "100", |s| {
            s.parse::<u32>().ok().filter(|n| (1..=1000).contains(n))
        });
        let rewrap_interval = p.parse("REWRAP_INTERVAL", "5m", |s| {
            parse_duration(s).filter(|d| !d.is_zero())
        });
        let sealing_key_lifetime = p.parse("SEALING_KEY_LIFETIME", "1h", |s| {
            parse_duration(s).map(|d| (!d.is_zero()).then_some(d))
        });
        let issuer = p.parse("TOKEN_ISSUER", "https://coffer.local", |s| {
            Some(s.to_owned())
        });
        let audience = p.parse("TOKEN_AUDIENCE", "coffer", |s| Some(s.to_owned()));
        let request_timeout = p.parse("REQUEST_TIMEOUT", "30s", parse_duration);
        let shutdown_grace_period = p.parse("SHUTDOWN_GRACE_PERIOD", "30s", parse_duration);
        let log_format = p.parse("LOG_FORMAT", "human", |s| s.parse::<LogFormat>().ok());
        let otlp_endpoint = p.otlp_endpoint();
        let metrics_listen = match p.value("METRICS_LISTEN") {
            None => Some(None),
            Some(text) => p
                .parse("METRICS_LISTEN", &text, |s| s.parse::<SocketAddr>().ok())
                .map(Some),
        };

        // Every `None` above has recorded a problem, so the fallback only runs with problems.
        let (
            (Some(listen), Some(database_url), Some(database_max_connections), Some(tls)),
            (Some(key_service), Some(auth_service), Some(data_key_id)),
            (Some(dek_cache_capacity), Some(dek_cache_ttl), Some(issuer), Some(audience)),
            (Some(sealing_key_lifetime), Some(rewrap_page_size), Some(rewrap_interval)),
            Some(metrics_listen),
            (Some(request_timeout), Some(shutdown_grace_period), Some(log_format)),
        ) = (
            (listen, database_url, database_max_connections, tls),
            (key_service, auth_service, data_key_id),
            (dek_cache_capacity, dek_cache_ttl, issuer, audience),
            (sealing_key_lifetime, rewrap_page_size, rewrap_interval),
            metrics_listen,
            (request_timeout, shutdown_grace_period, log_format),
        )
        else {
            return Err(p.into_errors());
        };
        if !p.is_ok() {
            return Err(p.into_errors());
        }
        let authn = coffer_authn::authenticator::Settings {
            issuer,
            audience,
            ..coffer_authn::authenticator::Settings::default()
        };
        Ok(Self {
            listen,
            database_url,
            database_max_connections,
            tls,
            key_service,
            auth_service,
            data_key_id,
            dek_cache_capacity,
            dek_cache_ttl,
            sealing_key_lifetime,
            rewrap_page_size,
            rewrap_interval,
            metrics_listen,
            authn,
            request_timeout,
            shutdown_grace_period,
            log_format,
            otlp_endpoint,
        })
    }
}

fn upstream(
    p: &mut Parser<'_>,
    name: &str,
    service: &'static str,
    trust_domain: &str,
) -> Option<Upstream> {
    let url = p.required(&format!("{name}_URL"))?;
    if !url.starts_with("https://") || coffer_config::https_host(&url).is_none() {
        p.error(&format!("{name}_URL"), "must be https://host:port");
        return None;
    }
    let mut upstream = upstream_at(url, service, trust_domain);
    if let Some(server_name) = p.value(&format!("{name}_SERVER_NAME")) {
        upstream.server_name = server_name;
    }
    if let Some(identity) = p.value(&format!("{name}_IDENTITY")) {
        match SpiffeId::parse(&identity) {
            Ok(id) => upstream.identity = id,
            Err(_) => p.error(&format!("{name}_IDENTITY"), "must be a spiffe:// ID"),
        }
    }
    Some(upstream)
}

const PREFIX: &str = "COFFER_CREDENTIAL_SERVICE__";

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn every_problem_is_reported() {
        let values = Values::from_map(BTreeMap::from([(
            "COFFER_CREDENTIAL_SERVICE__KEY_SERVICE_URL".to_owned(),
            "http://kms".to_owned(),
        )]));
        let text = Config::from_values(&values).err().unwrap().to_string();
        for expected in [
            "COFFER_CREDENTIAL_SERVICE__DATABASE_URL: required",
            "COFFER_CREDENTIAL_SERVICE__KEY_SERVICE_URL: must be https://host:port",
            "COFFER_CREDENTIAL_SERVICE__AUTH_SERVICE_URL: required",
            "COFFER_CREDENTIAL_SERVICE__TLS_CA: required",
        ] {
            assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
        }
    }
}
