//! auth-service configuration: `COFFER_AUTH_SERVICE__{KEY}` variables or `[auth_service]` in
//! a TOML file (see `coffer_config`). Parsed once at start-up; every problem is reported.

use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use coffer_authn::jwt::RsaBits;
use coffer_config::ConfigErrors;
use coffer_config::{OTLP_ENDPOINT_VARIABLE, Parser, Values, parse_duration};
use coffer_server::Clock;
use coffer_server::upstream::{DEFAULT_TRUST_DOMAIN, Upstream};
use coffer_transport::{SpiffeId, TlsMaterial};
use secrecy::SecretString;

use crate::authz::Policy;
use crate::ops::Lockout;
use crate::ops::oauth::{OAuthSettings, Resource};
use crate::signing::TokenSettings;

/// The validated auth-service configuration.
pub struct Config {
    /// The settings every server has (see [`coffer_server::config`]); default port 50052.
    pub server: coffer_server::Config,
    /// The database (see [`coffer_db::Config`]).
    pub database: coffer_db::Config,
    /// SPIFFE trust domain (`..__TRUST_DOMAIN`, default `coffer.local`): operators are
    /// `spiffe://{td}/operator/...`.
    pub trust_domain: String,
    /// Who else may call Introspect, VerifyApiKey and ListRevocations (`..__AUTHZ`, the text
    /// form of [`Policy::parse`]); `None` is [`Policy::default_for`] the trust domain
    /// (credential-service, key-service and the gateway).
    pub authz: Option<Policy>,
    /// Who may name the client it forwards for the per-source limits (`..__FORWARDERS`,
    /// comma-separated SPIFFE IDs, or `none`); `None` is the trust domain's gateway (see
    /// [`coffer_authn::forwarded`]).
    pub forwarders: Option<Vec<coffer_transport::SpiffeId>>,
    /// key-service (`..__KEY_SERVICE_URL`, required; `..__KEY_SERVICE_SERVER_NAME`;
    /// `..__KEY_SERVICE_IDENTITY`, default `spiffe://{trust_domain}/key-service`; see
    /// [`coffer_server::upstream`]). Signing keys are stored only encrypted by it; without
    /// it the service does not start.
    pub key_service: Upstream,
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
    /// The OAuth authorization server: the resources tokens may be requested for beside
    /// Coffer's own API (`..__OAUTH_RESOURCES`, `;`-separated `URI` or `URI=scope,scope`
    /// entries, the scopes defaulting to `mcp:read,mcp:write,mcp:admin`), how long a browser
    /// sign-in lasts (`..__OAUTH_SESSION_TTL`, default `30m`, at most `12h`), and dynamic
    /// registrations per source per hour (`..__OAUTH_REGISTRATIONS_PER_HOUR`, default 20).
    pub oauth: OAuthSettings,
    /// The clock; [`Clock::system`] except in tests, which advance a manual one to cross
    /// expiry and grace periods without sleeping.
    pub clock: Clock,
}

/// The auth-service's default port.
pub(crate) const DEFAULT_PORT: u16 = 50052;
const DEFAULT_ISSUER: &str = "https://coffer.local";
const DEFAULT_AUDIENCE: &str = "coffer";
const DEFAULT_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);
const DEFAULT_REFRESH_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
const DEFAULT_BCRYPT_COST: u32 = 12;
const DEFAULT_LOCKOUT: Lockout = Lockout {
    max_failures: 5,
    duration: Duration::from_secs(15 * 60),
    source_max_failures: 20,
};
const DEFAULT_SIGNING_KEY_REFRESH: Duration = Duration::from_secs(10);
const DEFAULT_API_KEY_CACHE_TTL: Duration = Duration::from_secs(30);
const DEFAULT_API_KEY_CACHE_CAPACITY: NonZeroUsize = match NonZeroUsize::new(10_000) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};
const DEFAULT_API_KEY_CHANGE_POLL: Duration = Duration::from_millis(250);

impl Config {
    /// A configuration with every optional setting at its default.
    ///
    /// # Panics
    /// Never for an https URL with a host; tests and `coffer up` pass their own.
    #[allow(clippy::expect_used)]
    pub fn new(database_url: SecretString, tls: TlsMaterial, key_service_url: String) -> Self {
        let trust_domain = DEFAULT_TRUST_DOMAIN.to_owned();
        // Holds for every caller: `coffer up` and the tests pass https://127.0.0.1:port.
        let key_service =
            coffer_server::upstream::at(key_service_url, "key-service", &trust_domain)
                .expect("an https://host:port key-service URL");
        Self {
            server: coffer_server::Config::new(tls, DEFAULT_PORT),
            database: coffer_db::Config::new(database_url),
            trust_domain,
            authz: None,
            forwarders: None,
            key_service,
            signing_key_name: DEFAULT_SIGNING_KEY_NAME.to_owned(),
            tokens: TokenSettings {
                issuer: DEFAULT_ISSUER.to_owned(),
                audience: DEFAULT_AUDIENCE.to_owned(),
                access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL,
                leeway: DEFAULT_LEEWAY,
                rsa_bits: RsaBits::Rsa2048,
                other_audiences: Vec::new(),
            },
            refresh_token_ttl: DEFAULT_REFRESH_TOKEN_TTL,
            bcrypt_cost: DEFAULT_BCRYPT_COST,
            bcrypt_concurrency: default_concurrency(),
            bcrypt_per_source: default_per_source(default_concurrency()),
            lockout: DEFAULT_LOCKOUT,
            signing_key_refresh: DEFAULT_SIGNING_KEY_REFRESH,
            api_key_cache_ttl: DEFAULT_API_KEY_CACHE_TTL,
            api_key_cache_capacity: DEFAULT_API_KEY_CACHE_CAPACITY,
            api_key_change_poll: DEFAULT_API_KEY_CHANGE_POLL,
            oauth: OAuthSettings::default(),
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
            "auth_service",
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
        let trust_domain = p.or("TRUST_DOMAIN", DEFAULT_TRUST_DOMAIN.to_owned(), |s| {
            SpiffeId::new(s, "x").ok().map(|_| s.to_owned())
        });
        let key_service = trust_domain.as_ref().and_then(|domain| {
            coffer_server::upstream::parse(&mut p, "KEY_SERVICE", "key-service", domain)
        });
        let authz = match p.value("AUTHZ") {
            Some(text) => Policy::parse(&text)
                .map(Some)
                .map_err(|e| p.error("AUTHZ", &e))
                .ok(),
            None => Some(None),
        };
        let signing_key_name = p.or(
            "SIGNING_KEY_NAME",
            DEFAULT_SIGNING_KEY_NAME.to_owned(),
            |s| {
                s.strip_prefix("tenants/")
                    .filter(|r| r.contains("/keys/"))
                    .map(|_| s.to_owned())
            },
        );
        let forwarders = match p.value("FORWARDERS") {
            Some(text) => coffer_authn::forwarded::parse(&text)
                .map(Some)
                .map_err(|why| p.error("FORWARDERS", &why))
                .ok(),
            None => Some(None),
        };
        let issuer = p.or("ISSUER", DEFAULT_ISSUER.to_owned(), |s| Some(s.to_owned()));
        let audience = p.or("AUDIENCE", DEFAULT_AUDIENCE.to_owned(), |s| {
            Some(s.to_owned())
        });
        let access_token_ttl = p.or("ACCESS_TOKEN_TTL", DEFAULT_ACCESS_TOKEN_TTL, |s| {
            parse_duration(s).filter(|d| !d.is_zero())
        });
        let leeway = p.or("LEEWAY", DEFAULT_LEEWAY, |s| {
            parse_duration(s).filter(|d| *d <= coffer_authn::jwt::MAX_LEEWAY)
        });
        let rsa_bits = p.or("RSA_BITS", RsaBits::Rsa2048, |s| match s {
            "2048" => Some(RsaBits::Rsa2048),
            "3072" => Some(RsaBits::Rsa3072),
            "4096" => Some(RsaBits::Rsa4096),
            _ => None,
        });
        let refresh_token_ttl = p.or("REFRESH_TOKEN_TTL", DEFAULT_REFRESH_TOKEN_TTL, |s| {
            parse_duration(s).filter(|d| !d.is_zero())
        });
        let bcrypt_cost = p.or("BCRYPT_COST", DEFAULT_BCRYPT_COST, |s| {
            s.parse::<u32>().ok().filter(|c| (4..=31).contains(c))
        });
        let bcrypt_concurrency = p.or("BCRYPT_CONCURRENCY", default_concurrency(), |s| {
            s.parse::<usize>().ok().filter(|n| *n > 0)
        });
        let per_source = default_per_source(bcrypt_concurrency.unwrap_or(1));
        let bcrypt_per_source = p.or("BCRYPT_PER_SOURCE", per_source, |s| {
            s.parse::<usize>().ok().filter(|n| *n > 0)
        });
        let max_failures = p.or("LOGIN_MAX_FAILURES", DEFAULT_LOCKOUT.max_failures, |s| {
            s.parse::<u32>().ok().filter(|n| *n > 0)
        });
        let source_max_failures = p.or(
            "SOURCE_MAX_FAILURES",
            DEFAULT_LOCKOUT.source_max_failures,
            |s| s.parse::<u32>().ok().filter(|n| *n > 0),
        );
        let lockout_duration = p.or("LOGIN_LOCKOUT", DEFAULT_LOCKOUT.duration, parse_duration);
        let signing_key_refresh = p.or("SIGNING_KEY_REFRESH", DEFAULT_SIGNING_KEY_REFRESH, |s| {
            parse_duration(s).filter(|d| !d.is_zero())
        });
        let api_key_cache_ttl = p.or(
            "API_KEY_CACHE_TTL",
            DEFAULT_API_KEY_CACHE_TTL,
            parse_duration,
        );
        let api_key_cache_capacity = p.or(
            "API_KEY_CACHE_CAPACITY",
            DEFAULT_API_KEY_CACHE_CAPACITY,
            |s| s.parse::<NonZeroUsize>().ok(),
        );
        let api_key_change_poll = p.or("API_KEY_CHANGE_POLL", DEFAULT_API_KEY_CHANGE_POLL, |s| {
            parse_duration(s).filter(|d| !d.is_zero())
        });

        let oauth = parse_oauth(&mut p);

        // Every `None` above has recorded a problem, so the fallback only runs with problems.
        let (
            (Some(server), Some(database), Some(trust_domain), Some(key_service)),
            (Some(signing_key_name), Some(authz), Some(forwarders)),
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
            (
                Some(api_key_cache_ttl),
                Some(api_key_cache_capacity),
                Some(api_key_change_poll),
                Some(oauth),
            ),
        ) = (
            (server, database, trust_domain, key_service),
            (signing_key_name, authz, forwarders),
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
                oauth,
            ),
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
            trust_domain,
            authz,
            forwarders,
            key_service,
            signing_key_name,
            tokens: TokenSettings {
                issuer,
                audience,
                access_token_ttl,
                leeway,
                rsa_bits,
                other_audiences: Vec::new(),
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
            oauth,
            clock: Clock::system(),
        })
    }
}

/// The OAuth settings (see [`Config::oauth`]); `None` with the problems recorded.
fn parse_oauth(p: &mut Parser<'_>) -> Option<OAuthSettings> {
    let defaults = OAuthSettings::default();
    let resources = match p.value("OAUTH_RESOURCES") {
        None => Some(Vec::new()),
        Some(text) => text
            .split(';')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(Resource::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|why| p.error("OAUTH_RESOURCES", &why))
            .ok(),
    };
    let session_ttl = p.or("OAUTH_SESSION_TTL", defaults.session_ttl, |s| {
        parse_duration(s).filter(|d| !d.is_zero() && *d <= Duration::from_secs(12 * 3600))
    });
    let registrations_per_hour = p.or(
        "OAUTH_REGISTRATIONS_PER_HOUR",
        defaults.registrations_per_hour,
        |s| s.parse::<u32>().ok().filter(|n| *n > 0),
    );
    Some(OAuthSettings {
        resources: resources?,
        session_ttl: session_ttl?,
        registrations_per_hour: registrations_per_hour?,
        document_test_allowance: None,
    })
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.server.listen)
            .field("key_service", &self.key_service)
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
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
