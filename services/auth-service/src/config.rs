//! auth-service configuration: `COFFER_AUTH_SERVICE__{KEY}` variables or `[auth_service]` in
//! a TOML file (see `coffer_config`). Parsed once at start-up; every problem is reported.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use coffer_authn::jwt::RsaBits;
pub use coffer_config::ConfigErrors;
use coffer_config::{OTLP_ENDPOINT_VARIABLE, Parser, Values, parse_duration};
use coffer_telemetry::LogFormat;
use coffer_transport::{SpiffeId, TlsMaterial};
use secrecy::SecretString;

use crate::ops::Lockout;
use crate::signing::TokenSettings;

/// The validated auth-service configuration.
pub struct Config {
    /// Address the binary binds (`..__LISTEN`, default `0.0.0.0:50052`).
    pub listen: SocketAddr,
    /// `sqlite:...` or `postgres://...` (`..__DATABASE_URL`, required; secret).
    pub database_url: SecretString,
    /// PostgreSQL pool size (`..__DATABASE_MAX_CONNECTIONS`, default 16).
    pub database_max_connections: u32,
    /// Server certificate, key and CA (`..__TLS_CERT`, `..__TLS_KEY`, `..__TLS_CA`,
    /// required); the same certificate is the client identity towards key-service.
    pub tls: TlsMaterial,
    /// SPIFFE trust domain (`..__TRUST_DOMAIN`, default `coffer.local`): operators are
    /// `spiffe://{td}/operator/...`; credential-service and gateway may introspect.
    pub trust_domain: String,
    /// key-service address (`..__KEY_SERVICE_URL`, required, `https://host:port`). Signing
    /// keys are stored only encrypted by it; without it the service does not start.
    pub key_service_url: String,
    /// The name key-service's certificate must carry (`..__KEY_SERVICE_SERVER_NAME`, default
    /// the URL's host).
    pub key_service_server_name: String,
    /// The SPIFFE ID key-service's certificate must carry (`..__KEY_SERVICE_IDENTITY`,
    /// default `spiffe://{trust_domain}/key-service`), so no other service's certificate
    /// can stand in for it.
    pub key_service_identity: SpiffeId,
    /// The key-service key that encrypts signing keys (`..__SIGNING_KEY_NAME`, default
    /// `tenants/coffer-system/keys/auth-signing`).
    pub signing_key_name: String,
    /// Issued tokens (`..__ISSUER` default `https://coffer.local`, `..__AUDIENCE` default
    /// `coffer`, `..__ACCESS_TOKEN_TTL` default `15m`, `..__LEEWAY` default `5s` (at most
    /// 60 s), `..__RSA_BITS` 2048, 3072 or 4096, default 2048).
    pub tokens: TokenSettings,
    /// Refresh-token lifetime (`..__REFRESH_TOKEN_TTL`, default `30d`).
    pub refresh_token_ttl: Duration,
    /// bcrypt cost (`..__BCRYPT_COST`, 4 to 31, default 12; about 240 ms per check here).
    pub bcrypt_cost: u32,
    /// Concurrent bcrypt checks (`..__BCRYPT_CONCURRENCY`, default the number of CPUs);
    /// beyond it, logins get RESOURCE_EXHAUSTED at once.
    pub bcrypt_concurrency: usize,
    /// Concurrent bcrypt checks one source may hold (`..__BCRYPT_PER_SOURCE`, default half
    /// of `bcrypt_concurrency`, at least 1), so one flooding client leaves the rest of the
    /// pool to others.
    pub bcrypt_per_source: usize,
    /// Failed logins within the window that lock a login (`..__LOGIN_MAX_FAILURES`, default
    /// 5), the window and lock time (`..__LOGIN_LOCKOUT`, default `15m`), and failed logins
    /// or API-key checks within it that block a source (`..__SOURCE_MAX_FAILURES`, default
    /// 20). Shared by replicas through the database.
    pub lockout: Lockout,
    /// How often signing keys are re-read, so a rotation on another replica is picked up
    /// (`..__SIGNING_KEY_REFRESH`, default `10s`).
    pub signing_key_refresh: Duration,
    /// How long a verified API key is trusted without bcrypt (`..__API_KEY_CACHE_TTL`,
    /// default `30s`) and how many are kept (`..__API_KEY_CACHE_CAPACITY`, default 10000).
    pub api_key_cache_ttl: Duration,
    /// See `api_key_cache_ttl`.
    pub api_key_cache_capacity: NonZeroUsize,
    /// How often revocations and rolls made by any replica are read back to evict cached keys
    /// (`..__API_KEY_CHANGE_POLL`, default `250ms`): a revocation reaches every replica within
    /// that time.
    pub api_key_change_poll: Duration,
    /// Longest time one request may take (`..__REQUEST_TIMEOUT`, default `30s`).
    pub request_timeout: Duration,
    /// How long shutdown waits for in-flight calls (`..__SHUTDOWN_GRACE_PERIOD`, `30s`).
    pub shutdown_grace_period: Duration,
    /// `human` or `json` (`..__LOG_FORMAT`, default `human`).
    pub log_format: LogFormat,
    /// OTLP collector (`OTEL_EXPORTER_OTLP_ENDPOINT`), if any.
    pub otlp_endpoint: Option<String>,
}

impl Config {
    /// A configuration with every optional setting at its default.
    pub fn new(database_url: SecretString, tls: TlsMaterial, key_service_url: String) -> Self {
        let key_service_server_name =
            coffer_config::https_host(&key_service_url).unwrap_or_default();
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 50052)),
            database_url,
            database_max_connections: 16,
            tls,
            trust_domain: "coffer.local".to_owned(),
            key_service_url,
            key_service_server_name,
            key_service_identity: default_key_service_identity("coffer.local"),
            signing_key_name: DEFAULT_SIGNING_KEY_NAME.to_owned(),
            tokens: TokenSettings {
                issuer: "https://coffer.local".to_owned(),
                audience: "coffer".to_owned(),
                access_token_ttl: Duration::from_secs(15 * 60),
                leeway: Duration::from_secs(5),
                rsa_bits: RsaBits::Rsa2048,
            },
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            bcrypt_cost: 12,
            bcrypt_concurrency: default_concurrency(),
            bcrypt_per_source: default_per_source(default_concurrency()),
            lockout: Lockout {
                max_failures: 5,
                duration: Duration::from_secs(15 * 60),
                source_max_failures: 20,
            },
            signing_key_refresh: Duration::from_secs(10),
            api_key_cache_ttl: Duration::from_secs(30),
            api_key_cache_capacity: NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN),
            api_key_change_poll: Duration::from_millis(250),
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
        let values = Values::load("auth_service", PREFIX, &[OTLP_ENDPOINT_VARIABLE], file)?;
        Self::from_values(&values)
    }

    /// Validates raw values.
    ///
    /// # Errors
    /// [`ConfigErrors`] listing every problem.
    pub fn from_values(values: &Values) -> Result<Self, ConfigErrors> {
        let mut p = Parser::new(values, PREFIX);
        let listen = p.parse("LISTEN", "0.0.0.0:50052", |s| s.parse::<SocketAddr>().ok());
        let database_url = p.required("DATABASE_URL").map(SecretString::from);
        let database_max_connections = p.parse("DATABASE_MAX_CONNECTIONS", "16", |s| {
            s.parse::<u32>().ok().filter(|n| *n > 0)
        });
        let tls = p.tls();
        let trust_domain = p.parse("TRUST_DOMAIN", "coffer.local", |s| {
            coffer_transport::SpiffeId::new(s, "x")
                .ok()
                .map(|_| s.to_owned())
        });
        let key_service_url = p.required("KEY_SERVICE_URL").filter(|url| {
            let ok = url.starts_with("https://") && coffer_config::https_host(url).is_some();
            if !ok {
                p.error("KEY_SERVICE_URL", "must be https://host:port");
            }
            ok
        });
        let server_name = p.value("KEY_SERVICE_SERVER_NAME");
        let key_service_identity = match p.value("KEY_SERVICE_IDENTITY") {
            Some(text) => match SpiffeId::parse(&text) {
                Ok(id) => Some(id),
                Err(_) => {
                    p.error("KEY_SERVICE_IDENTITY", "must be a spiffe:// ID");
                    None
                }
            },
            None => None,
        };
        let signing_key_name = p.parse("SIGNING_KEY_NAME", DEFAULT_SIGNING_KEY_NAME, |s| {
            s.strip_prefix("tenants/")
                .filter(|r| r.contains("/keys/"))
                .map(|_| s.to_owned())
        });
        let issuer = p.parse("ISSUER", "https://coffer.local", |s| Some(s.to_owned()));
        let audience = p.parse("AUDIENCE", "coffer", |s| Some(s.to_owned()));
        let access_token_ttl = p.parse("ACCESS_TOKEN_TTL", "15m", |s| {
            parse_duration(s).filter(|d| !d.is_zero())
        });
        let leeway = p.parse("LEEWAY", "5s", |s| {
            parse_duration(s).filter(|d| *d <= coffer_authn::jwt::MAX_LEEWAY)
        });
        let rsa_bits = p.parse("RSA_BITS", "2048", |s| match s {
            "2048" => Some(RsaBits::Rsa2048),
            "3072" => Some(RsaBits::Rsa3072),
            "4096" => Some(RsaBits::Rsa4096),
            _ => None,
        });
        let refresh_token_ttl = p.parse("REFRESH_TOKEN_TTL", "30d", |s| {
            parse_duration(s).filter(|d| !d.is_zero())
        });
        let bcrypt_cost = p.parse("BCRYPT_COST", "12", |s| {
            s.parse::<u32>().ok().filter(|c| (4..=31).contains(c))
        });
        let concurrency = default_concurrency().to_string();
        let bcrypt_concurrency = p.parse("BCRYPT_CONCURRENCY", &concurrency, |s| {
            s.parse::<usize>().ok().filter(|n| *n > 0)
        });
        let per_source = default_per_source(bcrypt_concurrency.unwrap_or(1)).to_string();
        let bcrypt_per_source = p.parse("BCRYPT_PER_SOURCE", &per_source, |s| {
            s.parse::<usize>().ok().filter(|n| *n > 0)
        });
        let max_failures = p.parse("LOGIN_MAX_FAILURES", "5", |s| {
            s.parse::<u32>().ok().filter(|n| *n > 0)
        });
        let source_max_failures = p.parse("SOURCE_MAX_FAILURES", "20", |s| {
            s.parse::<u32>().ok().filter(|n| *n > 0)
        });
        let lockout_duration = p.parse("LOGIN_LOCKOUT", "15m", parse_duration);
        let signing_key_refresh = p.parse("SIGNING_KEY_REFRESH", "10s", |s| {
            parse_duration(s).filter(|d| !d.is_zero())
        });
        let api_key_cache_ttl = p.parse("API_KEY_CACHE_TTL", "30s", parse_duration);
        let api_key_cache_capacity = p.parse("API_KEY_CACHE_CAPACITY", "10000", |s| {
            s.parse::<NonZeroUsize>().ok()
        });
        let api_key_change_poll = p.parse("API_KEY_CHANGE_POLL", "250ms", |s| {
            parse_duration(s).filter(|d| !d.is_zero())
        });
        let request_timeout = p.parse("REQUEST_TIMEOUT", "30s", parse_duration);
        let shutdown_grace_period = p.parse("SHUTDOWN_GRACE_PERIOD", "30s", parse_duration);
        let log_format = p.parse("LOG_FORMAT", "human", |s| s.parse::<LogFormat>().ok());
        let otlp_endpoint = p.otlp_endpoint();

        // Every `None` above has recorded a problem, so the fallback only runs with problems.
        let (
            (Some(listen), Some(database_url), Some(database_max_connections), Some(tls)),
            (Some(trust_domain), Some(key_service_url), Some(signing_key_name)),
            (Some(issuer), Some(audience), Some(access_token_ttl), Some(leeway), Some(rsa_bits)),
            (
                Some(refresh_token_ttl),
                Some(bcrypt_cost),
                Some(bcrypt_concurrency),
                Some(bcrypt_per_source),
            ),
            (
                Some(max_failures),
                Some(lockout_duration),
                Some(signing_key_refresh),
                Some(source_max_failures),
            ),
            (Some(api_key_cache_ttl), Some(api_key_cache_capacity), Some(api_key_change_poll)),
            (Some(request_timeout), Some(shutdown_grace_period), Some(log_format)),
        ) = (
            (listen, database_url, database_max_connections, tls),
            (trust_domain, key_service_url, signing_key_name),
            (issuer, audience, access_token_ttl, leeway, rsa_bits),
            (
                refresh_token_ttl,
                bcrypt_cost,
                bcrypt_concurrency,
                bcrypt_per_source,
            ),
            (
                max_failures,
                lockout_duration,
                signing_key_refresh,
                source_max_failures,
            ),
            (
                api_key_cache_ttl,
                api_key_cache_capacity,
                api_key_change_poll,
            ),
            (request_timeout, shutdown_grace_period, log_format),
        )
        else {
            return Err(p.into_errors());
        };
        if !p.is_ok() {
            return Err(p.into_errors());
        }
        let key_service_server_name = server_name
            .or_else(|| coffer_config::https_host(&key_service_url))
            .unwrap_or_default();
        let key_service_identity =
            key_service_identity.unwrap_or_else(|| default_key_service_identity(&trust_domain));
        Ok(Self {
            listen,
            database_url,
            database_max_connections,
            tls,
            trust_domain,
            key_service_url,
            key_service_server_name,
            key_service_identity,
            signing_key_name,
            tokens: TokenSettings {
                issuer,
                audience,
                access_token_ttl,
                leeway,
                rsa_bits,
            },
            refresh_token_ttl,
            bcrypt_cost,
            bcrypt_concurrency,
            bcrypt_per_source,
            lockout: Lockout {
                max_failures,
                duration: lockout_duration,
                source_max_failures,
            },
            signing_key_refresh,
            api_key_cache_ttl,
            api_key_cache_capacity,
            api_key_change_poll,
            request_timeout,
            shutdown_grace_period,
            log_format,
            otlp_endpoint,
        })
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("key_service_url", &self.key_service_url)
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

/// `spiffe://{trust_domain}/key-service`.
#[allow(clippy::expect_used)]
fn default_key_service_identity(trust_domain: &str) -> SpiffeId {
    // Holds: every trust domain reaching here was validated by building an ID under it
    // (`TRUST_DOMAIN` above, or the literal default), and `key-service` is a valid path.
    SpiffeId::new(trust_domain, "key-service").expect("a validated trust domain")
}

/// Half the pool for one source, at least one slot.
fn default_per_source(concurrency: usize) -> usize {
    (concurrency / 2).max(1)
}

fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

const PREFIX: &str = "COFFER_AUTH_SERVICE__";
const DEFAULT_SIGNING_KEY_NAME: &str = "tenants/coffer-system/keys/auth-signing";

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn missing_and_invalid_settings_are_all_reported() {
        let values = Values::from_map(BTreeMap::from([
            (
                "COFFER_AUTH_SERVICE__KEY_SERVICE_URL".to_owned(),
                "http://kms:1".to_owned(),
            ),
            ("COFFER_AUTH_SERVICE__LEEWAY".to_owned(), "2m".to_owned()),
            (
                "COFFER_AUTH_SERVICE__BCRYPT_COST".to_owned(),
                "3".to_owned(),
            ),
        ]));
        let text = Config::from_values(&values).err().unwrap().to_string();
        for expected in [
            "COFFER_AUTH_SERVICE__DATABASE_URL: required",
            "COFFER_AUTH_SERVICE__TLS_CERT: required",
            "COFFER_AUTH_SERVICE__KEY_SERVICE_URL: must be https://host:port",
            "COFFER_AUTH_SERVICE__LEEWAY: invalid value",
            "COFFER_AUTH_SERVICE__BCRYPT_COST: invalid value",
        ] {
            assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
        }
    }
}
