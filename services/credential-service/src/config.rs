//! credential-service configuration: `COFFER_CREDENTIAL_SERVICE__{KEY}` variables or
//! `[credential_service]` in a TOML file (see `coffer_config`).

use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use coffer_config::ConfigErrors;
use coffer_config::{OTLP_ENDPOINT_VARIABLE, Parser, Values, parse_duration};
use coffer_server::Clock;
use coffer_server::upstream::{self, Upstream};
use coffer_transport::TlsMaterial;
use secrecy::SecretString;

/// The validated configuration.
pub struct Config {
    /// The settings every server has (see [`coffer_server::config`]); default port 50053.
    /// The certificate is also this service's identity towards key-service and auth-service.
    pub server: coffer_server::Config,
    /// The database (see [`coffer_db::Config`]).
    pub database: coffer_db::Config,
    /// key-service (`..__KEY_SERVICE_URL`, required; `..__KEY_SERVICE_SERVER_NAME`;
    /// `..__KEY_SERVICE_IDENTITY`, default `spiffe://{td}/key-service` where `td` is the
    /// trust domain of this service's own certificate; see [`coffer_server::upstream`]).
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
    /// How long a credential row is served from memory to masked reads
    /// (`..__ROW_CACHE_TTL`, default and at most `1s`; `0s` reads the database every time).
    /// A change through this replica is seen at once, one through another replica within
    /// this bound (at once in practice on PostgreSQL, which announces every change). Reveals,
    /// hydration and changes always read the database.
    pub row_cache_ttl: Duration,
    /// Bearer verification settings: the issuer and audience of accepted tokens (`..__ISSUER`,
    /// default `https://coffer.local`; `..__AUDIENCE`, default `coffer`: the same names and
    /// defaults as auth-service's), and the forwarders whose client address is believed for
    /// the per-source limits (`..__FORWARDERS`, default `spiffe://{td}/gateway`; see
    /// [`coffer_authn::forwarded`]).
    pub authn: coffer_authn::authenticator::Settings,
    /// The clock; [`Clock::system`] except in tests, which advance a manual one.
    pub clock: Clock,
}

/// The credential-service's default port.
pub(crate) const DEFAULT_PORT: u16 = 50053;
const DEFAULT_DATA_KEY_ID: &str = "credentials";
const DEFAULT_DEK_CACHE_CAPACITY: NonZeroUsize = match NonZeroUsize::new(10_000) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};
const DEFAULT_DEK_CACHE_TTL: Duration = Duration::from_secs(300);
const DEFAULT_SEALING_KEY_LIFETIME: Duration = Duration::from_secs(3600);
const DEFAULT_REWRAP_PAGE_SIZE: u32 = 100;
const DEFAULT_REWRAP_INTERVAL: Duration = Duration::from_secs(300);

impl Config {
    /// Every optional setting at its default.
    ///
    /// # Panics
    /// If a URL is not `https://host:port` (tests and `coffer up` pass their own).
    #[allow(clippy::expect_used)]
    pub fn new(
        database_url: SecretString,
        tls: TlsMaterial,
        key_service: String,
        auth_service: String,
    ) -> Self {
        let trust_domain = upstream::trust_domain(Some(&tls));
        // Holds for every caller: `coffer up` and the tests pass https://127.0.0.1:port.
        let key_service = upstream::at(key_service, "key-service", &trust_domain)
            .expect("an https://host:port key-service URL");
        let auth_service = upstream::at(auth_service, "auth-service", &trust_domain)
            .expect("an https://host:port auth-service URL");
        Self {
            server: coffer_server::Config::new(tls, DEFAULT_PORT),
            database: coffer_db::Config::new(database_url),
            key_service,
            auth_service,
            data_key_id: DEFAULT_DATA_KEY_ID.to_owned(),
            dek_cache_capacity: DEFAULT_DEK_CACHE_CAPACITY,
            dek_cache_ttl: DEFAULT_DEK_CACHE_TTL,
            sealing_key_lifetime: Some(DEFAULT_SEALING_KEY_LIFETIME),
            rewrap_page_size: DEFAULT_REWRAP_PAGE_SIZE,
            rewrap_interval: DEFAULT_REWRAP_INTERVAL,
            row_cache_ttl: coffer_db::fresh::MAX_TTL,
            authn: coffer_authn::authenticator::Settings::for_trust_domain(&trust_domain),
            clock: Clock::system(),
        }
    }

    /// Reads the optional TOML file, overlays the environment, and validates; a `COFFER_*`
    /// variable or TOML key no Coffer program reads is refused (see [`coffer_config::load`]).
    ///
    /// # Errors
    /// [`ConfigErrors`] listing every problem.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigErrors> {
        coffer_config::load(
            "credential_service",
            PREFIX,
            &[OTLP_ENDPOINT_VARIABLE],
            file,
            Self::from_values,
        )
    }

    /// Validates raw values.
    ///
    /// # Errors
    /// [`ConfigErrors`] listing every problem.
    pub fn from_values(values: &Values) -> Result<Self, ConfigErrors> {
        let mut p = Parser::new(values, PREFIX);
        let server = coffer_server::Config::parse(&mut p, DEFAULT_PORT);
        let database = coffer_db::Config::parse(&mut p);
        let trust_domain = upstream::trust_domain(server.as_ref().map(|s| &s.tls));
        let key_service = upstream::parse(&mut p, "KEY_SERVICE", "key-service", &trust_domain);
        let auth_service = upstream::parse(&mut p, "AUTH_SERVICE", "auth-service", &trust_domain);
        let data_key_id = p.or("DATA_KEY_ID", DEFAULT_DATA_KEY_ID.to_owned(), |s| {
            coffer_server::names::is_valid_id(s).then(|| s.to_owned())
        });
        let dek_cache_capacity = p.or("DEK_CACHE_CAPACITY", DEFAULT_DEK_CACHE_CAPACITY, |s| {
            s.parse::<NonZeroUsize>().ok()
        });
        let dek_cache_ttl = p.or("DEK_CACHE_TTL", DEFAULT_DEK_CACHE_TTL, parse_duration);
        let rewrap_page_size = p.or("REWRAP_PAGE_SIZE", DEFAULT_REWRAP_PAGE_SIZE, |s| {
            s.parse::<u32>().ok().filter(|n| (1..=1000).contains(n))
        });
        let rewrap_interval = p.or("REWRAP_INTERVAL", DEFAULT_REWRAP_INTERVAL, |s| {
            parse_duration(s).filter(|d| !d.is_zero())
        });
        let sealing_key_lifetime = p.or(
            "SEALING_KEY_LIFETIME",
            Some(DEFAULT_SEALING_KEY_LIFETIME),
            |s| parse_duration(s).map(|d| (!d.is_zero()).then_some(d)),
        );
        let row_cache_ttl = p.or("ROW_CACHE_TTL", coffer_db::fresh::MAX_TTL, |s| {
            parse_duration(s).filter(|d| *d <= coffer_db::fresh::MAX_TTL)
        });
        let authn = coffer_authn::authenticator::Settings::parse(&mut p, &trust_domain);

        // Every `None` above has recorded a problem, so the fallback only runs with problems.
        let (
            (Some(server), Some(database)),
            (Some(key_service), Some(auth_service), Some(data_key_id)),
            (Some(dek_cache_capacity), Some(dek_cache_ttl), Some(authn)),
            (Some(sealing_key_lifetime), Some(rewrap_page_size), Some(rewrap_interval)),
            Some(row_cache_ttl),
        ) = (
            (server, database),
            (key_service, auth_service, data_key_id),
            (dek_cache_capacity, dek_cache_ttl, authn),
            (sealing_key_lifetime, rewrap_page_size, rewrap_interval),
            row_cache_ttl,
        )
        else {
            return Err(p.into_errors());
        };
        if !p.is_ok() {
            return Err(p.into_errors());
        }
        Ok(Self {
            server,
            database,
            key_service,
            auth_service,
            data_key_id,
            dek_cache_capacity,
            dek_cache_ttl,
            sealing_key_lifetime,
            rewrap_page_size,
            rewrap_interval,
            row_cache_ttl,
            authn,
            clock: Clock::system(),
        })
    }
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
