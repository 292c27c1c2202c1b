//! Configuration: raw strings from a TOML file and the environment, parsed once at start-up
//! into a [`Config`] of typed values. Every invalid or missing key is reported, not just the
//! first, and nothing can fail later because of bad configuration.
//!
//! Each setting has one name, its environment variable; in a TOML file the same setting is the
//! lowercase key under `[key_service]` (`COFFER_KEY_SERVICE__REQUEST_TIMEOUT` is
//! `request_timeout`). The environment wins over the file. The root keyring is the exception:
//! `COFFER_ROOT_KEYS` holds it directly, or `COFFER_KEY_SERVICE__ROOT_KEYS_FILE` names a file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use coffer_telemetry::{LogFormat, OTLP_ENDPOINT_VARIABLE};
use coffer_transport::{TlsFiles, TlsMaterial};
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
        let mut values = match file {
            Some(path) => read_toml(path).map_err(|e| ConfigErrors(vec![e]))?,
            None => BTreeMap::new(),
        };
        for (name, value) in std::env::vars() {
            if name.starts_with(PREFIX) || name == ROOT_KEYS || name == OTLP_ENDPOINT_VARIABLE {
                values.insert(name, value);
            }
        }
        Self::from_values(&values)
    }

    /// Validates raw values keyed by environment-variable name.
    ///
    /// # Errors
    /// [`ConfigErrors`] listing every problem.
    pub fn from_values(values: &BTreeMap<String, String>) -> Result<Self, ConfigErrors> {
        let mut p = Parser {
            values,
            errors: Vec::new(),
        };
        let listen = p.parse("LISTEN", "0.0.0.0:50051", |s| s.parse::<SocketAddr>().ok());
        let database_url = p.required("DATABASE_URL").map(SecretString::from);
        let database_max_connections = p.parse("DATABASE_MAX_CONNECTIONS", "16", |s| {
            s.parse::<u32>().ok().filter(|n| *n > 0)
        });
        let keyring = p.keyring();
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

        // Every `None` above has pushed an error, so the fallback below only runs with errors.
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
            return Err(ConfigErrors(p.errors));
        };
        if !p.errors.is_empty() {
            return Err(ConfigErrors(p.errors));
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

/// Every configuration problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Parses `30s`, `5m`, `2h`, `7d` or plain seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let amount: u64 = digits.parse().ok()?;
    let seconds = match unit {
        "s" => amount,
        "m" => amount.checked_mul(60)?,
        "h" => amount.checked_mul(3600)?,
        "d" => amount.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(seconds))
}

struct Parser<'a> {
    values: &'a BTreeMap<String, String>,
    errors: Vec<String>,
}

impl Parser<'_> {
    fn value(&self, key: &str) -> Option<String> {
        self.values
            .get(&format!("{PREFIX}{key}"))
            .filter(|v| !v.is_empty())
            .cloned()
    }

    fn error(&mut self, key: &str, why: &str) {
        self.errors.push(format!("{PREFIX}{key}: {why}"));
    }

    fn required(&mut self, key: &str) -> Option<String> {
        let value = self.value(key);
        if value.is_none() {
            self.error(key, "required");
        }
        value
    }

    fn parse<T>(
        &mut self,
        key: &str,
        default: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let raw = self.value(key).unwrap_or_else(|| default.to_owned());
        let parsed = parse(&raw);
        if parsed.is_none() {
            // Never echo the value: a mistyped secret could land in a setting's slot.
            self.error(key, "invalid value");
        }
        parsed
    }

    fn otlp_endpoint(&mut self) -> Option<String> {
        let endpoint = self
            .values
            .get(OTLP_ENDPOINT_VARIABLE)
            .filter(|v| !v.is_empty())?;
        if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
            Some(endpoint.clone())
        } else {
            self.errors.push(format!(
                "{OTLP_ENDPOINT_VARIABLE}: must be an http:// or https:// URL"
            ));
            None
        }
    }

    fn keyring(&mut self) -> Option<RootKeyring> {
        let text = match (
            self.values.get(ROOT_KEYS).filter(|v| !v.is_empty()),
            self.value("ROOT_KEYS_FILE"),
        ) {
            (Some(text), _) => SecretString::from(text.clone()),
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(text) => SecretString::from(text),
                Err(e) => {
                    self.error("ROOT_KEYS_FILE", &format!("cannot read {path}: {e}"));
                    return None;
                }
            },
            (None, None) => {
                self.errors.push(format!(
                    "{ROOT_KEYS} or {PREFIX}ROOT_KEYS_FILE: required (the production binary \
                     never generates a root key; `coffer up` does, for development)"
                ));
                return None;
            }
        };
        RootKeyring::parse(&text)
            .map_err(|e| self.errors.push(format!("root keys: {e}")))
            .ok()
    }

    fn tls(&mut self) -> Option<TlsMaterial> {
        let cert = self.required("TLS_CERT");
        let key = self.required("TLS_KEY");
        let ca = self.required("TLS_CA");
        let files = TlsFiles {
            cert: PathBuf::from(cert?),
            key: PathBuf::from(key?),
            ca: PathBuf::from(ca?),
        };
        TlsMaterial::load(&files)
            .map_err(|e| self.errors.push(format!("TLS: {e}")))
            .ok()
    }
}

fn read_toml(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut values = BTreeMap::new();
    let Some(section) = table.get("key_service").and_then(toml::Value::as_table) else {
        return Ok(values);
    };
    for (key, value) in section {
        let value = match value {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        values.insert(format!("{PREFIX}{}", key.to_ascii_uppercase()), value);
    }
    Ok(values)
}

const PREFIX: &str = "COFFER_KEY_SERVICE__";
const ROOT_KEYS: &str = "COFFER_ROOT_KEYS";
const DEFAULT_TRUST_DOMAIN: &str = "coffer.local";

#[cfg(test)]
mod tests;
