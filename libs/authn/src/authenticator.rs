//! Request authentication for Coffer services, backed by auth-service.
//!
//! - A JWT is verified locally against auth-service's JWKS. The key set is fetched at start,
//!   and again when a token names an unknown `kid` (a rotation), at most once per
//!   `jwks_refresh_interval`, so a flood of forged kids cannot turn into a flood of fetches.
//!   Locally verified tokens are not checked against auth-service's revocation list: a revoked
//!   access token stays usable here until it expires (the access-token lifetime, 15 minutes by
//!   default). Services that need immediate revocation call Introspect.
//! - An `mcp_sk_` API key is checked by auth-service (VerifyApiKey, naming the caller this
//!   service serves as the `client`, so auth-service's per-source failure limit falls on that
//!   caller and not on this service), and the answer cached by the SHA-256 of the key for
//!   `api_key_cache_ttl` (default one second: the revocation bound) and never past the key's
//!   expiry.
//!
//! Every failure maps to a fixed status message; the reason goes to the log only.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use coffer_proto::pb;
use coffer_proto::pb::auth_service_client::AuthServiceClient;
use coffer_server::task::Task;
use lru::LruCache;
use sha2::{Digest as _, Sha256};
use tonic::transport::Channel;

use crate::jwks::{Jwk, Jwks};
use crate::jwt::{Reason, Verifier};
use crate::revocations::Revocations;
use crate::{Principal, Scopes};

/// How an [`Authenticator`] checks tokens.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
    /// Clock-skew leeway (at most 60 s).
    pub leeway: Duration,
    /// Least time between two JWKS fetches.
    pub jwks_refresh_interval: Duration,
    /// How long a verified API key is trusted without asking auth-service again: the bound
    /// on how late a revocation or demotion reaches this service (default one second).
    pub api_key_cache_ttl: Duration,
    /// How many verified API keys are cached.
    pub api_key_cache_capacity: NonZeroUsize,
    /// How often revocations are fetched from auth-service (default 250 ms).
    pub revocation_poll_interval: Duration,
    /// Oldest revocation list trusted: beyond it a check refreshes first and fails closed
    /// if it cannot (default one second).
    pub revocation_max_staleness: Duration,
    /// Identities whose forwarded client address is believed (see [`crate::forwarded`]);
    /// default none. Services set their trust domain's gateway.
    pub forwarders: Vec<coffer_transport::SpiffeId>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            issuer: "https://coffer.local".to_owned(),
            audience: "coffer".to_owned(),
            leeway: Duration::from_secs(5),
            jwks_refresh_interval: Duration::from_secs(5),
            api_key_cache_ttl: Duration::from_secs(1),
            api_key_cache_capacity: NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN),
            revocation_poll_interval: Duration::from_millis(250),
            revocation_max_staleness: Duration::from_secs(1),
            forwarders: Vec::new(),
        }
    }
}

impl Settings {
    /// The defaults, with the forwarders of `trust_domain` (its gateway).
    pub fn for_trust_domain(trust_domain: &str) -> Self {
        Self {
            forwarders: crate::forwarded::default_for(trust_domain),
            ..Self::default()
        }
    }

    /// Reads a service's `ISSUER`, `AUDIENCE` and `FORWARDERS` (comma-separated SPIFFE IDs,
    /// default `spiffe://{trust_domain}/gateway`; `none` for none); `None` with the problems
    /// recorded in `p`.
    pub fn parse(p: &mut coffer_config::Parser<'_>, trust_domain: &str) -> Option<Self> {
        let defaults = Self::for_trust_domain(trust_domain);
        let issuer = p.or("ISSUER", defaults.issuer.clone(), |s| Some(s.to_owned()));
        let audience = p.or("AUDIENCE", defaults.audience.clone(), |s| {
            Some(s.to_owned())
        });
        let forwarders = match p.value("FORWARDERS") {
            Some(text) => crate::forwarded::parse(&text)
                .map_err(|why| p.error("FORWARDERS", &why))
                .ok(),
            None => Some(defaults.forwarders.clone()),
        };
        Some(Self {
            issuer: issuer?,
            audience: audience?,
            forwarders: forwarders?,
            ..defaults
        })
    }
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No `authorization: Bearer` metadata.
    #[error("no bearer credential")]
    Missing,
    /// The credential is invalid, expired or revoked.
    #[error("invalid bearer credential")]
    Invalid,
    /// auth-service refused for load or lockout.
    #[error("too many attempts")]
    Exhausted,
    /// auth-service could not be asked (fail closed).
    #[error("auth-service unavailable")]
    Unavailable,
}

/// The `ErrorInfo.domain` of bearer failures: whether a credential is valid is auth-service's
/// word, whichever service checked it.
pub const DOMAIN: &str = "coffer.v1.AuthService";

impl From<Error> for tonic::Status {
    /// A fixed message and a `google.rpc.ErrorInfo` (reasons `UNAUTHENTICATED`,
    /// `RESOURCE_EXHAUSTED`, `UNAVAILABLE`); the cause is only logged.
    fn from(error: Error) -> Self {
        use coffer_server::status::reasons;
        let domain = coffer_server::status::Domain(DOMAIN);
        match error {
            Error::Missing | Error::Invalid => domain.status(
                tonic::Code::Unauthenticated,
                "invalid credentials",
                reasons::UNAUTHENTICATED,
            ),
            Error::Exhausted => domain.status(
                tonic::Code::ResourceExhausted,
                "too many attempts; try again later",
                reasons::RESOURCE_EXHAUSTED,
            ),
            Error::Unavailable => domain.status(
                tonic::Code::Unavailable,
                "a dependency is unavailable",
                reasons::UNAVAILABLE,
            ),
        }
    }
}

/// Authenticates requests' bearer credentials.
pub struct Authenticator {
    client: AuthServiceClient<Channel>,
    settings: Settings,
    verifier: RwLock<Arc<Verifier>>,
    last_fetch: Mutex<Instant>,
    api_keys: Mutex<LruCache<[u8; 32], (Principal, Instant)>>,
    revocations: Arc<Revocations>,
    /// Keeps the mirror fresh; dropped (stopping the poll) with the authenticator.
    _revocation_poll: Task,
}

impl Authenticator {
    /// Fetches the JWKS from the auth-service behind `channel` (an mTLS channel).
    ///
    /// # Errors
    /// [`Error::Unavailable`] if auth-service cannot be reached or serves an unusable JWKS.
    pub async fn connect(channel: Channel, settings: Settings) -> Result<Self, Error> {
        let client = AuthServiceClient::new(channel);
        let verifier = fetch_verifier(&client, &settings).await?;
        let (revocations, revocation_poll) = Revocations::start(
            client.clone(),
            settings.revocation_poll_interval,
            settings.revocation_max_staleness,
        )
        .await?;
        Ok(Self {
            client,
            revocations,
            _revocation_poll: revocation_poll,
            api_keys: Mutex::new(LruCache::new(settings.api_key_cache_capacity)),
            settings,
            verifier: RwLock::new(Arc::new(verifier)),
            last_fetch: Mutex::new(Instant::now()),
        })
    }

    /// The principal behind the request's `authorization: Bearer` credential.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn authenticate<T>(&self, request: &tonic::Request<T>) -> Result<Principal, Error> {
        let client = coffer_transport::SpiffeId::from_request(request);
        self.authenticate_headers(request.metadata().as_ref(), client.as_ref())
            .await
    }

    /// As [`Authenticator::authenticate`], from raw HTTP/2 headers (for [`crate::layer`]) and
    /// the caller's certificate identity, if any.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn authenticate_headers(
        &self,
        headers: &http::HeaderMap,
        peer: Option<&coffer_transport::SpiffeId>,
    ) -> Result<Principal, Error> {
        let value = headers.get("authorization").ok_or(Error::Missing)?;
        if value.len() > crate::jwt::MAX_TOKEN_LEN + 16 {
            return Err(Error::Invalid);
        }
        let text = value.to_str().map_err(|_| Error::Invalid)?;
        let credential = text.strip_prefix("Bearer ").ok_or(Error::Invalid)?.trim();
        if credential.starts_with(coffer_crypto::apikey::PREFIX) {
            let principal = self.api_key(credential, headers, peer).await?;
            self.revocations
                .check(None, principal.api_key.as_deref(), None)
                .await?;
            Ok(principal)
        } else {
            let (claims, principal) = self.jwt(credential).await?;
            self.revocations
                .check(
                    Some(&claims.jti),
                    principal.api_key.as_deref(),
                    Some(((&principal.tenant, &principal.subject), claims.pgen)),
                )
                .await?;
            Ok(principal)
        }
    }

    /// A locally verified token's claims and principal (revocation is checked by the
    /// caller).
    async fn jwt(&self, token: &str) -> Result<(crate::jwt::Claims, Principal), Error> {
        let verifier = self.current();
        match verifier.verify(token) {
            Ok(verified) => Ok((verified.claims, verified.principal)),
            Err(crate::jwt::Error::Invalid(Reason::UnknownKey)) if self.may_refetch() => {
                let refreshed = Arc::new(fetch_verifier(&self.client, &self.settings).await?);
                *self
                    .verifier
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Arc::clone(&refreshed);
                refreshed
                    .verify(token)
                    .map(|v| (v.claims, v.principal))
                    .map_err(|error| {
                        tracing::info!(%error, "bearer token refused");
                        Error::Invalid
                    })
            }
            Err(error) => {
                tracing::info!(%error, "bearer token refused");
                Err(Error::Invalid)
            }
        }
    }

    /// On a cache miss, auth-service is told who the caller serves (from `headers` and
    /// `peer`, see [`crate::forwarded::source`]), so its per-source failure limit falls there.
    async fn api_key(
        &self,
        key: &str,
        headers: &http::HeaderMap,
        peer: Option<&coffer_transport::SpiffeId>,
    ) -> Result<Principal, Error> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        if let Some(principal) = self.cached(&digest) {
            return Ok(principal);
        }
        let client = crate::forwarded::source(headers, peer, &self.settings.forwarders);
        let verified = self
            .client
            .clone()
            .verify_api_key(pb::VerifyApiKeyRequest {
                key: key.to_owned(),
                client: client.unwrap_or_default(),
            })
            .await
            .map_err(|status| match status.code() {
                tonic::Code::Unauthenticated => Error::Invalid,
                tonic::Code::ResourceExhausted => Error::Exhausted,
                code => {
                    tracing::warn!(?code, "VerifyApiKey failed");
                    Error::Unavailable
                }
            })?
            .into_inner();
        let after = |name: &str, marker: &str| {
            name.rsplit_once(marker)
                .map(|(_, id)| id.to_owned())
                .ok_or(Error::Unavailable)
        };
        let principal = Principal {
            subject: after(&verified.principal, "/principals/")?,
            api_key: Some(after(&verified.api_key, "/apiKeys/")?),
            tenant: verified.tenant,
            scopes: Scopes::parse_list(&verified.scopes).map_err(|_| Error::Unavailable)?,
            roles: Vec::new(),
        };
        let mut trusted_for = self.settings.api_key_cache_ttl;
        if let Some(expiry) = verified.expire_time {
            let left = expiry.seconds.saturating_sub(unix_now());
            trusted_for = trusted_for.min(Duration::from_secs(u64::try_from(left).unwrap_or(0)));
        }
        let until = Instant::now() + trusted_for;
        self.api_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .put(digest, (principal.clone(), until));
        Ok(principal)
    }

    fn cached(&self, digest: &[u8; 32]) -> Option<Principal> {
        let mut cache = self.api_keys.lock().unwrap_or_else(PoisonError::into_inner);
        match cache.get(digest) {
            Some((principal, until)) if Instant::now() < *until => Some(principal.clone()),
            Some(_) => {
                cache.pop(digest);
                None
            }
            None => None,
        }
    }

    fn current(&self) -> Arc<Verifier> {
        Arc::clone(&self.verifier.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether a refetch is allowed now; if so, claims it.
    fn may_refetch(&self) -> bool {
        let mut last = self
            .last_fetch
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.elapsed() >= self.settings.jwks_refresh_interval {
            *last = Instant::now();
            true
        } else {
            false
        }
    }
}

/// An [`Authenticator`] connected on first use, for a service that starts before auth-service
/// does (key-service, which auth-service itself depends on). Until auth-service answers, every
/// bearer fails with [`Error::Unavailable`] (closed, never open); a failed connection is
/// retried at most once per `retry_interval`, and calls arriving meanwhile wait for the attempt
/// in flight or fail at once, so an outage does not become a flood of connection attempts.
pub struct Deferred {
    channel: Channel,
    settings: Settings,
    retry_interval: Duration,
    connected: tokio::sync::OnceCell<Authenticator>,
    /// When the last attempt started; held across an attempt.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
}

impl Deferred {
    /// Connects through `channel` (a lazy mTLS channel to auth-service) on the first
    /// [`Deferred::get`].
    pub fn new(channel: Channel, settings: Settings, retry_interval: Duration) -> Self {
        Self {
            channel,
            settings,
            retry_interval,
            connected: tokio::sync::OnceCell::new(),
            last_attempt: tokio::sync::Mutex::new(None),
        }
    }

    /// The connected authenticator.
    ///
    /// # Errors
    /// [`Error::Unavailable`] while auth-service cannot be reached.
    pub async fn get(&self) -> Result<&Authenticator, Error> {
        if let Some(connected) = self.connected.get() {
            return Ok(connected);
        }
        let mut last_attempt = self.last_attempt.lock().await;
        if let Some(connected) = self.connected.get() {
            return Ok(connected);
        }
        if last_attempt.is_some_and(|at| at.elapsed() < self.retry_interval) {
            return Err(Error::Unavailable);
        }
        *last_attempt = Some(Instant::now());
        let authenticator = Authenticator::connect(self.channel.clone(), self.settings.clone())
            .await
            .inspect_err(|_| tracing::warn!("auth-service unreachable: bearers refused"))?;
        Ok(self.connected.get_or_init(|| async { authenticator }).await)
    }
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred")
            .field("connected", &self.connected.initialized())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

async fn fetch_verifier(
    client: &AuthServiceClient<Channel>,
    settings: &Settings,
) -> Result<Verifier, Error> {
    let keys = client
        .clone()
        .get_jwks(pb::GetJwksRequest {})
        .await
        .map_err(|status| {
            tracing::warn!(code = ?status.code(), "JWKS fetch failed");
            Error::Unavailable
        })?
        .into_inner()
        .keys;
    let jwks = Jwks {
        keys: keys
            .into_iter()
            .map(|k| Jwk {
                kty: k.kty,
                kid: k.kid,
                alg: k.alg,
                use_: k.r#use,
                n: k.n,
                e: k.e,
            })
            .collect(),
    };
    Verifier::new(&settings.issuer, &settings.audience, &jwks, settings.leeway).map_err(|error| {
        tracing::warn!(%error, "unusable JWKS");
        Error::Unavailable
    })
}
