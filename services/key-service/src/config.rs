//! Configuration: raw strings from a TOML file and the environment, parsed once at start-up
//! into a [`Config`] of typed values. Every invalid or missing key is reported, not just the
//! first, and nothing can fail later because of bad configuration.
//!
//! Each setting has one name, its environment variable; in a TOML file the same setting is the
//! lowercase key under `[key_service]` (`COFFER_KEY_SERVICE__REQUEST_TIMEOUT` is
//! `request_timeout`). The environment wins over the file. The root keyring is the exception:
//! `COFFER_ROOT_KEYS` holds it directly, or `COFFER_KEY_SERVICE__ROOT_KEYS_FILE` names a file.

use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use coffer_config::ConfigErrors;
use coffer_config::{OTLP_ENDPOINT_VARIABLE, Parser, Values, parse_duration};
use coffer_transport::TlsMaterial;
use secrecy::SecretString;

use crate::authz::Policy;
use coffer_crypto::RootKeyring;
use coffer_server::Clock;

/// The validated key-service configuration.
pub struct Config {
    /// The settings every server has (see [`coffer_server::config`]); default port 50051.
    pub server: coffer_server::Config,
    /// The database (see [`coffer_db::Config`]).
    pub database: coffer_db::Config,
    /// The root keyring (`COFFER_ROOT_KEYS` or `..__ROOT_KEYS_FILE`, required).
    pub keyring: RootKeyring,
    /// SPIFFE trust domain of the default authorization table (`..__TRUST_DOMAIN`, default
    /// `coffer.local`).
    pub trust_domain: String,
    /// Who may call what (`..__AUTHZ`, see [`Policy::parse`]; default
    /// [`Policy::default_for`] the trust domain), and the keys a bearer principal may only
    /// read (`..__RESERVED_KEYS`, comma-separated key patterns, default Coffer's services'
    /// keys: [`crate::authz::DEFAULT_RESERVED`]).
    pub authz: Policy,
    /// auth-service, to verify the bearer credentials forwarders pass on
    /// (`..__AUTH_SERVICE_URL`, optional; `..__AUTH_SERVICE_SERVER_NAME`,
    /// `..__AUTH_SERVICE_IDENTITY` as for every upstream). Without it no forwarder is
    /// accepted, and REST clients cannot use key-service through the gateway.
    pub auth_service: Option<coffer_server::upstream::Upstream>,
    /// Bearer verification (`..__ISSUER`, `..__AUDIENCE`, `..__FORWARDERS`: the identities
    /// whose calls are authorized by the bearer they forward, default
    /// `spiffe://{td}/gateway` when auth-service is configured, none otherwise).
    pub authn: coffer_authn::authenticator::Settings,
    /// Time between ScheduleKeyDeletion and destruction (`..__DELETION_WAITING_PERIOD`,
    /// default `7d`). It is the window in which a mistaken deletion can still be cancelled.
    pub deletion_waiting_period: Duration,
    /// Most unwrapped key versions kept in memory (`..__CACHE_CAPACITY`, default 10000).
    pub cache_capacity: NonZeroUsize,
    /// Longest time an unwrapped version stays cached (`..__CACHE_TTL`, default `5m`).
    pub cache_ttl: Duration,
    /// How long a key's record (state, versions, policy) is served from memory
    /// (`..__RECORD_CACHE_TTL`, default and at most `1s`; `0s` reads the database on every
    /// call): the bound within which another replica's change is seen. On PostgreSQL changes
    /// are also announced with NOTIFY, so replicas evict at once in practice.
    pub record_cache_ttl: Duration,
    /// How often keys past their deletion time are destroyed (`..__REAPER_INTERVAL`, default
    /// `60s`). Requests never use such a key even between runs.
    pub reaper_interval: Duration,
    /// The clock; [`Clock::system`] except in tests.
    pub clock: Clock,
}

/// The key-service's default port.
pub(crate) const DEFAULT_PORT: u16 = 50051;
const DEFAULT_DELETION_WAITING_PERIOD: Duration = Duration::from_secs(7 * 24 * 3600);
const DEFAULT_CACHE_CAPACITY: NonZeroUsize = match NonZeroUsize::new(10_000) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};
const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
const DEFAULT_REAPER_INTERVAL: Duration = Duration::from_secs(60);

impl Config {
    /// A configuration with every optional setting at its default.
    pub fn new(database_url: SecretString, keyring: RootKeyring, tls: TlsMaterial) -> Self {
        let trust_domain = DEFAULT_TRUST_DOMAIN.to_owned();
        Self {
            server: coffer_server::Config::new(tls, DEFAULT_PORT),
            database: coffer_db::Config::new(database_url),
            keyring,
            authz: Policy::default_for(&trust_domain),
            auth_service: None,
            authn: coffer_authn::authenticator::Settings {
                forwarders: Vec::new(),
                ..coffer_authn::authenticator::Settings::default()
            },
            trust_domain,
            deletion_waiting_period: DEFAULT_DELETION_WAITING_PERIOD,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            cache_ttl: DEFAULT_CACHE_TTL,
            record_cache_ttl: crate::store::MAX_RECORD_CACHE_TTL,
            reaper_interval: DEFAULT_REAPER_INTERVAL,
            clock: Clock::system(),
        }
    }

    /// Accepts the trust domain's gateway as a forwarder, verifying the bearers it passes on
    /// with the auth-service at `auth_service_url` (what the production configuration does
    /// with `AUTH_SERVICE_URL`).
    ///
    /// # Panics
    /// If the URL is not `https://host:port` (tests and `coffer up` pass their own).
    #[allow(clippy::expect_used)]
    pub fn verify_bearers_at(&mut self, auth_service_url: String) {
        self.auth_service = Some(
            coffer_server::upstream::at(auth_service_url, "auth-service", &self.trust_domain)
                .expect("an https://host:port auth-service URL"),
        );
        self.authn.forwarders = coffer_authn::forwarded::default_for(&self.trust_domain);
    }

    /// Reads the optional TOML file, overlays the process environment, and validates; a
    /// `COFFER_*` variable or TOML key no Coffer program reads is refused (see
    /// [`coffer_config::load`]).
    ///
    /// # Errors
    /// [`ConfigErrors`] listing every problem.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigErrors> {
        coffer_config::load(
            "key_service",
            PREFIX,
            &[ROOT_KEYS, OTLP_ENDPOINT_VARIABLE],
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
        let database = coffer_db::Config::parse(&mut p);
        let keyring = keyring(&mut p);
        let trust_domain = p.or("TRUST_DOMAIN", DEFAULT_TRUST_DOMAIN.to_owned(), |s| {
            coffer_transport::SpiffeId::new(s, "x")
                .ok()
                .map(|_| s.to_owned())
        });
        let authz = match (p.value("AUTHZ"), &trust_domain) {
            (Some(text), _) => Policy::parse(&text).map_err(|e| p.error("AUTHZ", &e)).ok(),
            (None, Some(domain)) => Some(Policy::default_for(domain)),
            (None, None) => None,
        };
        let authz = match (authz, p.value("RESERVED_KEYS")) {
            (Some(policy), Some(patterns)) => policy
                .reserving(&patterns)
                .map_err(|e| p.error("RESERVED_KEYS", &e))
                .ok(),
            (authz, _) => authz,
        };
        let domain = trust_domain
            .clone()
            .unwrap_or_else(|| DEFAULT_TRUST_DOMAIN.to_owned());
        let auth_service = coffer_server::upstream::parse_optional(
            &mut p,
            "AUTH_SERVICE",
            "auth-service",
            &domain,
        );
        let forwarders_set = p.value("FORWARDERS").is_some_and(|v| v.trim() != "none");
        let authn =
            coffer_authn::authenticator::Settings::parse(&mut p, &domain).and_then(|mut authn| {
                match auth_service {
                    Some(Some(_)) => Some(authn),
                    Some(None) if forwarders_set => {
                        p.error(
                            "FORWARDERS",
                            "needs AUTH_SERVICE_URL, to verify the bearers forwarders pass on",
                        );
                        None
                    }
                    _ => {
                        authn.forwarders.clear();
                        Some(authn)
                    }
                }
            });
        let deletion_waiting_period = p.or(
            "DELETION_WAITING_PERIOD",
            DEFAULT_DELETION_WAITING_PERIOD,
            parse_duration,
        );
        let cache_capacity = p.or("CACHE_CAPACITY", DEFAULT_CACHE_CAPACITY, |s| {
            s.parse::<NonZeroUsize>().ok()
        });
        let cache_ttl = p.or("CACHE_TTL", DEFAULT_CACHE_TTL, parse_duration);
        let record_cache_ttl = p.or(
            "RECORD_CACHE_TTL",
            crate::store::MAX_RECORD_CACHE_TTL,
            |s| parse_duration(s).filter(|d| *d <= crate::store::MAX_RECORD_CACHE_TTL),
        );
        let reaper_interval = p.or("REAPER_INTERVAL", DEFAULT_REAPER_INTERVAL, |s| {
            parse_duration(s).filter(|d| !d.is_zero())
        });

        // Every `None` above has recorded a problem, so the fallback only runs with problems.
        let (
            Some(server),
            Some(database),
            Some(keyring),
            Some(trust_domain),
            Some(authz),
            Some(deletion_waiting_period),
            Some(cache_capacity),
            Some(cache_ttl),
            Some(record_cache_ttl),
            Some(reaper_interval),
            Some(auth_service),
            Some(authn),
        ) = (
            server,
            database,
            keyring,
            trust_domain,
            authz,
            deletion_waiting_period,
            cache_capacity,
            cache_ttl,
            record_cache_ttl,
            reaper_interval,
            auth_service,
            authn,
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
            keyring,
            trust_domain,
            authz,
            deletion_waiting_period,
            cache_capacity,
            cache_ttl,
            record_cache_ttl,
            reaper_interval,
            auth_service,
            authn,
            clock: Clock::system(),
        })
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.server.listen)
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
