//! Protect an MCP server (or any HTTP service) with Coffer: the server becomes an OAuth 2.1
//! protected resource of Coffer's authorization server, as the MCP authorization
//! specification (2026-07-28) asks of MCP servers.
//!
//! [`ResourceServer`] knows the server's resource URI (the `aud` its tokens carry) and
//! Coffer's issuer. Its [`ResourceServer::layer`] is a tower layer that:
//! - serves the RFC 9728 protected resource metadata at
//!   `/.well-known/oauth-protected-resource{path}`;
//! - verifies the bearer on every other request: an RS256 JWT from Coffer's JWKS (fetched
//!   from the issuer, refetched on an unknown `kid` at most every [`JWKS_REFETCH`]), its
//!   `iss`, its `aud` equal to this resource exactly (a token for another server is refused),
//!   its lifetime, and the scopes the layer requires;
//! - answers 401 with `WWW-Authenticate: Bearer resource_metadata="...", scope="..."` (and
//!   `error="invalid_token"` for a bad token), and 403 with `error="insufficient_scope"` and
//!   every scope the request needs (step-up);
//! - removes the `Authorization` header before the request reaches the server, so the
//!   client's token is never passed upstream; the verified token is in the request's
//!   extensions as a [`coffer_authn::jwt::Verified`].
//!
//! Staleness: verification is local, so by default a revoked token is accepted until it
//! expires (the access-token lifetime, 15 minutes by default in auth-service), and a demotion
//! too reaches the server only then. With [`ResourceServer::introspect`] (a resource server's
//! client, `coffer oauth create-client --resource-server URI`) every token is also checked at
//! Coffer's introspection endpoint, an answer trusted for at most [`INTROSPECTION_TTL`]: a
//! revocation or demotion then reaches the server within a second, and the server fails
//! closed (503) when Coffer cannot be asked.

mod fetch;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use coffer_authn::jwt::{Reason, Verified, Verifier};
use coffer_authn::{Scope, Scopes};
use http::{HeaderValue, Request, Response, StatusCode, header};

pub use fetch::FetchError;

/// Least time between two JWKS fetches (a rotation is picked up on the first unknown `kid`).
pub const JWKS_REFETCH: Duration = Duration::from_secs(5);
/// Clock skew accepted on `exp` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(5);
/// How long an introspection answer "active" is trusted (the revocation staleness bound).
pub const INTROSPECTION_TTL: Duration = Duration::from_secs(1);
/// Active tokens remembered between introspections.
const INTROSPECTION_CACHE: usize = 4096;

/// Why a [`ResourceServer`] cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The resource or issuer URI is unusable.
    #[error("{0}")]
    Uri(String),
}

/// An MCP server's protection (see the crate docs). Cheap to clone.
#[derive(Clone)]
pub struct ResourceServer {
    inner: Arc<Inner>,
}

struct Inner {
    resource: String,
    issuer: String,
    jwks_url: String,
    metadata_path: String,
    metadata_url: String,
    scopes_supported: Vec<Scope>,
    tls: Option<Arc<rustls::ClientConfig>>,
    keys: tokio::sync::Mutex<Keys>,
    introspection: Option<Introspection>,
}

/// The introspection endpoint, the resource server's client credentials, and the tokens it
/// said were active, with when.
struct Introspection {
    url: String,
    /// `Basic base64(id:secret)`.
    authorization: secrecy::SecretString,
    active: std::sync::Mutex<lru::LruCache<[u8; 32], Instant>>,
}

#[derive(Default)]
struct Keys {
    verifier: Option<Arc<Verifier>>,
    fetched: Option<Instant>,
}

impl ResourceServer {
    /// The protection of the server at `resource` (its canonical URI, e.g.
    /// `https://mcp.example.com/mcp`) by the Coffer authorization server `issuer`. Both are
    /// `https`, or `http` on a loopback host (dev mode). The JWKS is read from
    /// `{issuer origin}/v1/auth/jwks`.
    ///
    /// # Errors
    /// [`ConfigError::Uri`] naming the unusable URI.
    pub fn new(resource: &str, issuer: &str) -> Result<Self, ConfigError> {
        let resource_url = secure_url("resource", resource)?;
        let issuer_url = secure_url("issuer", issuer)?;
        let origin = resource_url.origin().ascii_serialization();
        let path = resource_url.path().trim_end_matches('/').to_owned();
        let resource = format!("{origin}{path}");
        let metadata_path = format!("/.well-known/oauth-protected-resource{path}");
        let issuer = format!(
            "{}{}",
            issuer_url.origin().ascii_serialization(),
            issuer_url.path().trim_end_matches('/')
        );
        Ok(Self {
            inner: Arc::new(Inner {
                jwks_url: format!("{}/v1/auth/jwks", issuer_url.origin().ascii_serialization()),
                metadata_url: format!("{origin}{metadata_path}"),
                metadata_path,
                resource,
                issuer,
                scopes_supported: vec![Scope::McpRead, Scope::McpWrite, Scope::McpAdmin],
                tls: None,
                keys: tokio::sync::Mutex::new(Keys::default()),
                introspection: None,
            }),
        })
    }

    /// The same, also asking Coffer's introspection endpoint about every token (see the
    /// crate docs), as the resource server's client `client_id` with `secret`.
    #[must_use]
    pub fn introspect(self, client_id: &str, secret: &secrecy::SecretString) -> Self {
        use base64::Engine as _;
        use secrecy::ExposeSecret as _;
        let encode = |part: &str| -> String {
            url::form_urlencoded::byte_serialize(part.as_bytes()).collect()
        };
        let credentials = format!("{}:{}", encode(client_id), encode(secret.expose_secret()));
        let authorization = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        );
        let url = self
            .inner
            .jwks_url
            .replace("/v1/auth/jwks", "/oauth/introspect");
        self.rebuild(|inner| {
            inner.introspection = Some(Introspection {
                url,
                authorization: secrecy::SecretString::from(authorization),
                active: std::sync::Mutex::new(lru::LruCache::new(
                    std::num::NonZeroUsize::new(INTROSPECTION_CACHE)
                        .unwrap_or(std::num::NonZeroUsize::MIN),
                )),
            });
        })
    }

    /// The same, advertising `scopes` in its metadata (default `mcp:read mcp:write
    /// mcp:admin`).
    #[must_use]
    pub fn scopes_supported(self, scopes: &[Scope]) -> Self {
        self.rebuild(|inner| inner.scopes_supported = scopes.to_vec())
    }

    /// The same, fetching an `https` JWKS with `tls` (the roots the issuer's certificate
    /// chains to).
    #[must_use]
    pub fn tls(self, tls: Arc<rustls::ClientConfig>) -> Self {
        self.rebuild(|inner| inner.tls = Some(tls))
    }

    fn rebuild(self, change: impl FnOnce(&mut Inner)) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            resource: shared.resource.clone(),
            issuer: shared.issuer.clone(),
            jwks_url: shared.jwks_url.clone(),
            metadata_path: shared.metadata_path.clone(),
            metadata_url: shared.metadata_url.clone(),
            scopes_supported: shared.scopes_supported.clone(),
            tls: shared.tls.clone(),
            keys: tokio::sync::Mutex::new(Keys::default()),
            introspection: None,
        });
        let mut inner = inner;
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The resource URI (the `aud` of its tokens).
    pub fn resource(&self) -> &str {
        &self.inner.resource
    }

    /// Where the metadata is served (a path).
    pub fn metadata_path(&self) -> &str {
        &self.inner.metadata_path
    }

    /// The protected resource metadata (RFC 9728).
    pub fn metadata(&self) -> serde_json::Value {
        let scopes: Vec<&str> = self
            .inner
            .scopes_supported
            .iter()
            .map(|s| s.as_str())
            .collect();
        serde_json::json!({
            "resource": self.inner.resource,
            "authorization_servers": [self.inner.issuer],
            "scopes_supported": scopes,
            "bearer_methods_supported": ["header"],
        })
    }

    /// Verifies the request's bearer and that it grants every one of `required`.
    ///
    /// # Errors
    /// [`Refusal`] saying how to answer.
    pub async fn verify(
        &self,
        authorization: Option<&HeaderValue>,
        required: &Scopes,
    ) -> Result<Verified, Refusal> {
        let Some(value) = authorization else {
            return Err(Refusal::Missing(required.clone()));
        };
        let fault = |fault: Fault| match fault {
            Fault::Invalid => Refusal::Invalid(required.clone()),
            Fault::Unavailable => Refusal::Unavailable,
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(Fault::Invalid)
            .map_err(fault)?;
        let verified = self.verify_token(token).await.map_err(fault)?;
        self.still_active(token).await.map_err(fault)?;
        let missing = required.beyond(&verified.principal.scopes);
        if missing.is_empty() {
            Ok(verified)
        } else {
            Err(Refusal::Insufficient(required.clone()))
        }
    }

    /// With introspection: whether Coffer says the token is active (remembered for at most
    /// [`INTROSPECTION_TTL`]). Fails closed.
    async fn still_active(&self, token: &str) -> Result<(), Fault> {
        use secrecy::ExposeSecret as _;
        use sha2::Digest as _;
        let Some(introspection) = &self.inner.introspection else {
            return Ok(());
        };
        let key: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let fresh = introspection
            .active
            .lock()
            .ok()
            .and_then(|mut cache| cache.get(&key).copied())
            .is_some_and(|asked| asked.elapsed() < INTROSPECTION_TTL);
        if fresh {
            return Ok(());
        }
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .finish();
        let answer = fetch::json(
            &introspection.url,
            self.inner.tls.as_ref(),
            Some(fetch::Form {
                authorization: introspection.authorization.expose_secret(),
                body,
            }),
        )
        .await
        .map_err(|error| {
            tracing::warn!(%error, "Coffer's introspection endpoint cannot be asked");
            Fault::Unavailable
        })?;
        if answer["active"] != true {
            if let Ok(mut cache) = introspection.active.lock() {
                cache.pop(&key);
            }
            return Err(Fault::Invalid);
        }
        if let Ok(mut cache) = introspection.active.lock() {
            cache.put(key, Instant::now());
        }
        Ok(())
    }

    async fn verify_token(&self, token: &str) -> Result<Verified, Fault> {
        let verifier = self.verifier(false).await?;
        match verifier.verify(token) {
            Ok(verified) => Ok(verified),
            Err(coffer_authn::jwt::Error::Invalid(Reason::UnknownKey)) => {
                // Perhaps a rotation: fetch again (at most every JWKS_REFETCH).
                let verifier = self.verifier(true).await?;
                verifier.verify(token).map_err(|_| Fault::Invalid)
            }
            Err(_) => Err(Fault::Invalid),
        }
    }

    /// The verifier of the current JWKS, fetched if there is none or `refresh` asks and the
    /// last fetch is old enough.
    async fn verifier(&self, refresh: bool) -> Result<Arc<Verifier>, Fault> {
        let mut keys = self.inner.keys.lock().await;
        let recent = keys
            .fetched
            .is_some_and(|fetched| fetched.elapsed() < JWKS_REFETCH);
        match &keys.verifier {
            Some(verifier) if !refresh || recent => return Ok(Arc::clone(verifier)),
            // The last fetch failed a moment ago: no new one yet.
            None if recent => return Err(Fault::Unavailable),
            _ => {}
        }
        keys.fetched = Some(Instant::now());
        let fetched = fetch::json(&self.inner.jwks_url, self.inner.tls.as_ref(), None)
            .await
            .map_err(|error| {
                tracing::warn!(%error, "the authorization server's JWKS cannot be fetched");
                Fault::Unavailable
            })?;
        let jwks: coffer_authn::jwks::Jwks =
            serde_json::from_value(fetched).map_err(|_| Fault::Unavailable)?;
        let verifier = Verifier::new(&self.inner.issuer, &self.inner.resource, &jwks, LEEWAY)
            .map_err(|_| Fault::Unavailable)?;
        let verifier = Arc::new(verifier);
        keys.verifier = Some(Arc::clone(&verifier));
        Ok(verifier)
    }

    /// The answer to a refusal: status, `WWW-Authenticate` and a small JSON body.
    pub fn refuse<B: From<String>>(&self, refusal: &Refusal) -> Response<B> {
        let metadata = &self.inner.metadata_url;
        let (status, challenge, error) = match refusal {
            Refusal::Missing(needed) => (
                StatusCode::UNAUTHORIZED,
                format!(
                    "Bearer resource_metadata=\"{metadata}\"{}",
                    scope_parameter(needed)
                ),
                "unauthorized",
            ),
            Refusal::Invalid(needed) => (
                StatusCode::UNAUTHORIZED,
                format!(
                    "Bearer resource_metadata=\"{metadata}\"{}, error=\"invalid_token\"",
                    scope_parameter(needed)
                ),
                "invalid_token",
            ),
            Refusal::Insufficient(needed) => (
                StatusCode::FORBIDDEN,
                format!(
                    "Bearer resource_metadata=\"{metadata}\", error=\"insufficient_scope\", \
                     scope=\"{needed}\""
                ),
                "insufficient_scope",
            ),
            Refusal::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                String::new(),
                "temporarily_unavailable",
            ),
        };
        let mut response = Response::new(B::from(serde_json::json!({"error": error}).to_string()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(value) = HeaderValue::from_str(&challenge)
            && !challenge.is_empty()
        {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }

    /// The tower layer that protects every request with `required` scopes (see the crate
    /// docs).
    pub fn layer(&self, required: &[Scope]) -> ResourceLayer {
        ResourceLayer {
            server: self.clone(),
            required: required.iter().copied().collect(),
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No bearer: 401 with the metadata URL and the scopes the request needs (the scope an
    /// MCP client then asks for, rather than every scope the server supports).
    Missing(Scopes),
    /// A bearer that does not verify (signature, issuer, audience, lifetime, or revoked when
    /// introspecting): 401 `invalid_token`, with the scopes the request needs.
    Invalid(Scopes),
    /// A valid token lacking scopes: 403 `insufficient_scope` naming every scope needed.
    Insufficient(Scopes),
    /// The authorization server's keys cannot be read: 503.
    Unavailable,
}

/// Why a token was not accepted, before it is known which scopes the request needs.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// It does not verify, or is no longer active.
    Invalid,
    /// The authorization server cannot be asked.
    Unavailable,
}

/// `, scope="..."` for a non-empty set (RFC 6750 section 3), or nothing.
fn scope_parameter(scopes: &Scopes) -> String {
    if scopes.is_empty() {
        String::new()
    } else {
        format!(", scope=\"{scopes}\"")
    }
}

/// See [`ResourceServer::layer`].
#[derive(Clone)]
pub struct ResourceLayer {
    server: ResourceServer,
    required: Scopes,
}

impl<S> tower::Layer<S> for ResourceLayer {
    type Service = Protected<S>;

    fn layer(&self, inner: S) -> Protected<S> {
        Protected {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service behind [`ResourceLayer`].
#[derive(Clone)]
pub struct Protected<S> {
    inner: S,
    layer: ResourceLayer,
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for Protected<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The service that was polled ready handles this request; a fresh clone waits for the
        // next (the tower convention for services that move into a future).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let server = &layer.server;
            if request.uri().path() == server.metadata_path() {
                let mut response = Response::new(ResBody::from(server.metadata().to_string()));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                return Ok(response);
            }
            match server
                .verify(
                    request.headers().get(header::AUTHORIZATION),
                    &layer.required,
                )
                .await
            {
                Ok(verified) => {
                    // The client's token stops here: never forwarded upstream.
                    request.headers_mut().remove(header::AUTHORIZATION);
                    request.extensions_mut().insert(verified);
                    inner.call(request).await
                }
                Err(refusal) => Ok(server.refuse(&refusal)),
            }
        })
    }
}

fn secure_url(what: &str, text: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(text)
        .map_err(|_| ConfigError::Uri(format!("{what} {text:?} is not a URL")))?;
    let secure = url.scheme() == "https" || (url.scheme() == "http" && fetch::is_loopback(&url));
    if !secure || url.fragment().is_some() || url.query().is_some() {
        return Err(ConfigError::Uri(format!(
            "{what} {text:?}: https (http only on a loopback host), no query or fragment"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metadata_names_the_resource_and_its_authorization_server() {
        let server =
            ResourceServer::new("https://mcp.example.com/mcp", "https://coffer.example.com/")
                .unwrap();
        assert_eq!(
            server.metadata_path(),
            "/.well-known/oauth-protected-resource/mcp"
        );
        let metadata = server.metadata();
        assert_eq!(metadata["resource"], "https://mcp.example.com/mcp");
        assert_eq!(
            metadata["authorization_servers"][0],
            "https://coffer.example.com"
        );
        assert!(ResourceServer::new("http://mcp.example.com/mcp", "https://c.example").is_err());
        assert!(ResourceServer::new("http://127.0.0.1:9/mcp", "http://127.0.0.1:8").is_ok());
    }

    #[test]
    fn refusals_carry_rfc_6750_challenges_with_the_metadata_url() {
        let server = ResourceServer::new("http://127.0.0.1:9/mcp", "http://127.0.0.1:8").unwrap();
        let challenge = |refusal| {
            let response: Response<String> = server.refuse(&refusal);
            (
                response.status().as_u16(),
                response.headers()[header::WWW_AUTHENTICATE]
                    .to_str()
                    .unwrap()
                    .to_owned(),
            )
        };
        let metadata =
            "resource_metadata=\"http://127.0.0.1:9/.well-known/oauth-protected-resource/mcp\"";
        let needed: Scopes = [Scope::McpRead, Scope::McpWrite].into_iter().collect();
        let (status, missing) = challenge(Refusal::Missing(needed.clone()));
        assert_eq!(status, 401);
        assert_eq!(
            missing,
            format!("Bearer {metadata}, scope=\"mcp:read mcp:write\"")
        );
        let (status, bare) = challenge(Refusal::Missing(Scopes::default()));
        assert_eq!(status, 401);
        assert_eq!(bare, format!("Bearer {metadata}"));
        let (status, invalid) = challenge(Refusal::Invalid(needed.clone()));
        assert_eq!(status, 401);
        assert_eq!(
            invalid,
            format!("Bearer {metadata}, scope=\"mcp:read mcp:write\", error=\"invalid_token\"")
        );
        let (status, step_up) = challenge(Refusal::Insufficient(needed));
        assert_eq!(status, 403);
        assert!(step_up.ends_with("error=\"insufficient_scope\", scope=\"mcp:read mcp:write\""));
    }
}
