//! OAuth clients: dynamic registration (RFC 7591), operator-created clients, and client
//! authentication at the token and revocation endpoints.

use coffer_authn::Scopes;
use subtle::ConstantTimeEq as _;

use super::{MAX_URI_LEN, OAuthError, bounded, hash, is_loopback, new_secret};
use crate::ops::Auth;
use crate::source::Source;
use crate::store::{ClientOrigin, ClientRow, PrincipalKind};
use crate::{Error, Result};

/// Prefix of client ids and secrets (so secret scanners recognise the secrets).
const CLIENT_ID_PREFIX: &str = "mcp_cl_";
const CLIENT_SECRET_PREFIX: &str = "mcp_cs_";
/// Most redirect URIs per client.
const MAX_REDIRECT_URIS: usize = 10;
/// Longest client name.
const MAX_NAME_LEN: usize = 200;

/// The grants a client may use.
pub(crate) const AUTHORIZATION_CODE: &str = "authorization_code";
pub(crate) const REFRESH_TOKEN: &str = "refresh_token";
pub(crate) const CLIENT_CREDENTIALS: &str = "client_credentials";

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthMethod {
    None,
    SecretBasic,
    SecretPost,
    /// RFC 7523: a JWT signed with one of the client's registered keys.
    PrivateKeyJwt,
}

/// The `client_assertion_type` of RFC 7523 assertions.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Largest registered JWK Set.
const MAX_JWKS_BYTES: usize = 16 * 1024;

impl AuthMethod {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::SecretBasic => "client_secret_basic",
            Self::SecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        [
            Self::None,
            Self::SecretBasic,
            Self::SecretPost,
            Self::PrivateKeyJwt,
        ]
        .into_iter()
        .find(|method| method.as_str() == text)
    }
}

/// A registration request (RFC 7591), as sent.
#[derive(Debug, Clone, Default)]
pub(crate) struct Registration {
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) client_name: String,
    pub(crate) grant_types: Vec<String>,
    pub(crate) response_types: Vec<String>,
    pub(crate) token_endpoint_auth_method: String,
    pub(crate) application_type: String,
}

/// An operator's client.
#[derive(Debug, Clone, Default)]
pub(crate) struct NewClient {
    pub(crate) client_name: String,
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) grant_types: Vec<String>,
    pub(crate) auth_method: Option<AuthMethod>,
    /// A resource server's client: the resource whose tokens it may introspect.
    pub(crate) resource: Option<String>,
    /// Client credentials: the service account `(tenant, id)` and its scopes.
    pub(crate) principal: Option<(String, String)>,
    pub(crate) scopes: Scopes,
    /// `private_key_jwt`: the client's public keys (a JWK Set in JSON).
    pub(crate) jwks: Option<String>,
}

/// The client's credentials as presented.
#[derive(Debug, Clone, Default)]
pub(crate) struct Presented {
    pub(crate) client_id: String,
    pub(crate) client_secret: secrecy::SecretString,
    /// Whether the secret came by HTTP Basic.
    pub(crate) basic: bool,
    /// `client_assertion_type` and `client_assertion` (RFC 7523), if sent.
    pub(crate) assertion_type: String,
    pub(crate) assertion: secrecy::SecretString,
}

/// Checks redirect URIs: 1 to 10, each an absolute `https` URI, or `http` on a loopback host
/// (`application_type` `native`), without a fragment; compared exactly later.
pub(super) fn check_redirect_uris(uris: &[String], application_type: &str) -> Result<()> {
    let invalid = |why: String| OAuthError::InvalidRedirectUri.because(why);
    if uris.is_empty() || uris.len() > MAX_REDIRECT_URIS {
        return Err(invalid(format!(
            "redirect_uris: 1 to {MAX_REDIRECT_URIS} URIs are required"
        )));
    }
    for uri in uris {
        bounded("redirect_uri", uri, MAX_URI_LEN)?;
        let url =
            url::Url::parse(uri).map_err(|_| invalid(format!("{uri:?} is not an absolute URI")))?;
        if url.fragment().is_some() {
            return Err(invalid(format!("{uri:?} has a fragment")));
        }
        let allowed = match (url.scheme(), application_type) {
            ("https", "web" | "native") => true,
            ("http", "native") => is_loopback(&url),
            _ => false,
        };
        if !allowed {
            return Err(invalid(format!(
                "{uri:?}: redirect URIs are https (web), or http on a loopback host (native)"
            )));
        }
    }
    Ok(())
}

/// Checks a client name: at most 200 characters, no control characters.
pub(super) fn check_client_name(name: &str) -> Result<String> {
    if name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(OAuthError::InvalidClientMetadata.because(format!(
            "client_name: at most {MAX_NAME_LEN} characters, no control characters"
        )));
    }
    Ok(name.trim().to_owned())
}

/// The application type of a set of redirect URIs: `native` when every one is loopback.
pub(super) fn inferred_application_type(uris: &[String]) -> &'static str {
    let loopback = |uri: &String| url::Url::parse(uri).is_ok_and(|url| is_loopback(&url));
    if !uris.is_empty() && uris.iter().all(loopback) {
        "native"
    } else {
        "web"
    }
}

impl Auth {
    /// Dynamic client registration: a public client for the authorization code grant.
    ///
    /// # Errors
    /// [`OAuthError::InvalidRedirectUri`] / [`OAuthError::InvalidClientMetadata`] naming the
    /// field; [`Error::ResourceExhausted`] past the per-source rate.
    pub(crate) async fn register_client(
        &self,
        registration: Registration,
        source: &Source,
    ) -> Result<ClientRow> {
        let metadata = |why: &str| OAuthError::InvalidClientMetadata.because(why.to_owned());
        let application_type = registration.application_type.as_str();
        if !matches!(application_type, "web" | "native") {
            return Err(metadata("application_type: required, `web` or `native`"));
        }
        check_redirect_uris(&registration.redirect_uris, application_type)?;
        let name = check_client_name(&registration.client_name)?;
        if !registration.response_types.iter().all(|t| t == "code") {
            return Err(metadata("response_types: only `code`"));
        }
        let mut grants = registration.grant_types.clone();
        if grants.is_empty() {
            grants = vec![AUTHORIZATION_CODE.to_owned(), REFRESH_TOKEN.to_owned()];
        }
        if !grants
            .iter()
            .all(|g| g == AUTHORIZATION_CODE || g == REFRESH_TOKEN)
            || !grants.iter().any(|g| g == AUTHORIZATION_CODE)
        {
            return Err(metadata(
                "grant_types: authorization_code, and optionally refresh_token",
            ));
        }
        if !matches!(
            registration.token_endpoint_auth_method.as_str(),
            "" | "none"
        ) {
            return Err(metadata(
                "token_endpoint_auth_method: registered clients are public (`none`)",
            ));
        }

        let subject = format!("register:{source}");
        let now = self.now();
        if self.store.locked_until(&subject, now).await?.is_some() {
            return Err(Error::ResourceExhausted(
                "too many client registrations from this source; try again later",
            ));
        }
        self.store
            .record_failure(&subject, self.oauth.registrations_per_hour, now, 3600)
            .await?;
        let client = ClientRow {
            client_id: format!("{CLIENT_ID_PREFIX}{}", super::super::random_id(16)?),
            origin: ClientOrigin::Registered,
            client_name: name,
            redirect_uris: registration.redirect_uris,
            grant_types: grants.join(" "),
            auth_method: AuthMethod::None.as_str().to_owned(),
            secret_hash: None,
            jwks: None,
            application_type: application_type.to_owned(),
            resource: None,
            tenant: None,
            principal_id: None,
            scope: String::new(),
            create_time: now,
        };
        self.store.insert_client(&client).await?;
        tracing::info!(client_id = %client.client_id, "OAuth client registered");
        Ok(client)
    }

    /// An operator's client; the secret (for confidential clients) is returned once.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the field; [`Error::NotFound`] for an unknown
    /// service account.
    pub(crate) async fn create_client(
        &self,
        new: NewClient,
    ) -> Result<(ClientRow, Option<secrecy::SecretString>)> {
        let name = check_client_name(&new.client_name).map_err(|_| {
            Error::invalid(
                "client_name",
                "at most 200 characters, no control characters",
            )
        })?;
        let credentials = new.grant_types.iter().any(|g| g == CLIENT_CREDENTIALS);
        let resource = match &new.resource {
            Some(uri) => Some(
                self.resource(std::slice::from_ref(uri))
                    .map_err(|error| Error::invalid("resource_server", error.to_string()))?
                    .uri,
            ),
            None => None,
        };
        let method = new
            .auth_method
            .unwrap_or(if credentials || resource.is_some() {
                AuthMethod::SecretBasic
            } else {
                AuthMethod::None
            });
        let (grants, principal) = if resource.is_some() {
            if method == AuthMethod::None {
                return Err(Error::invalid(
                    "token_endpoint_auth_method",
                    "a resource server's client is confidential",
                ));
            }
            if !new.redirect_uris.is_empty()
                || !new.grant_types.is_empty()
                || !new.scopes.is_empty()
            {
                return Err(Error::invalid(
                    "resource_server",
                    "a resource server's client has no grants, redirect URIs or scopes",
                ));
            }
            (String::new(), None)
        } else if credentials {
            if new.grant_types.len() != 1 {
                return Err(Error::invalid(
                    "grant_types",
                    "client_credentials is a client's only grant",
                ));
            }
            if method == AuthMethod::None {
                return Err(Error::invalid(
                    "token_endpoint_auth_method",
                    "client credentials need a confidential client",
                ));
            }
            if !new.redirect_uris.is_empty() {
                return Err(Error::invalid(
                    "redirect_uris",
                    "a client credentials client has no redirect URIs",
                ));
            }
            let Some((tenant, id)) = new.principal else {
                return Err(Error::invalid(
                    "principal",
                    "client credentials act as a service account: name it",
                ));
            };
            let row = self
                .store
                .principal(&tenant, &id)
                .await?
                .filter(|row| row.kind == PrincipalKind::ServiceAccount)
                .ok_or_else(|| {
                    Error::NotFound(format!("service account tenants/{tenant}/principals/{id}"))
                })?;
            let held = super::super::directory::effective_scopes(&row)?;
            let excess = new.scopes.beyond(&held);
            if !excess.is_empty() {
                return Err(Error::invalid(
                    "scopes",
                    format!("the service account does not hold {excess}"),
                ));
            }
            (CLIENT_CREDENTIALS.to_owned(), Some((tenant, id)))
        } else {
            let grants = if new.grant_types.is_empty() {
                vec![AUTHORIZATION_CODE.to_owned(), REFRESH_TOKEN.to_owned()]
            } else {
                new.grant_types.clone()
            };
            if !grants
                .iter()
                .all(|g| g == AUTHORIZATION_CODE || g == REFRESH_TOKEN)
                || !grants.iter().any(|g| g == AUTHORIZATION_CODE)
            {
                return Err(Error::invalid(
                    "grant_types",
                    "authorization_code (with refresh_token), or client_credentials alone",
                ));
            }
            if !new.scopes.is_empty() {
                return Err(Error::invalid(
                    "scopes",
                    "only client credentials clients have scopes of their own",
                ));
            }
            let kind = inferred_application_type(&new.redirect_uris);
            check_redirect_uris(&new.redirect_uris, kind)
                .map_err(|error| Error::invalid("redirect_uris", error.to_string()))?;
            (grants.join(" "), None)
        };
        let jwks = match (method, &new.jwks) {
            (AuthMethod::PrivateKeyJwt, Some(text)) => Some(checked_jwks(text)?),
            (AuthMethod::PrivateKeyJwt, None) => {
                return Err(Error::invalid(
                    "jwks",
                    "private_key_jwt needs the client's public keys",
                ));
            }
            (_, Some(_)) => {
                return Err(Error::invalid("jwks", "only for private_key_jwt clients"));
            }
            (_, None) => None,
        };
        let (secret, secret_hash) = match method {
            AuthMethod::None | AuthMethod::PrivateKeyJwt => (None, None),
            _ => {
                let (secret, hash) = new_secret(CLIENT_SECRET_PREFIX)?;
                (Some(secrecy::SecretString::from(secret)), Some(hash))
            }
        };
        let client = ClientRow {
            client_id: format!("{CLIENT_ID_PREFIX}{}", super::super::random_id(16)?),
            origin: ClientOrigin::Preregistered,
            client_name: name,
            application_type: inferred_application_type(&new.redirect_uris).to_owned(),
            redirect_uris: new.redirect_uris,
            grant_types: grants,
            auth_method: method.as_str().to_owned(),
            secret_hash,
            jwks,
            resource,
            tenant: principal.as_ref().map(|(tenant, _)| tenant.clone()),
            principal_id: principal.map(|(_, id)| id),
            scope: new.scopes.to_string(),
            create_time: self.now(),
        };
        self.store.insert_client(&client).await?;
        tracing::info!(client_id = %client.client_id, "OAuth client created");
        Ok((client, secret))
    }

    /// A client by id, for the authorization endpoint (no authentication there).
    ///
    /// # Errors
    /// [`OAuthError::InvalidClient`] for an unknown id.
    pub(crate) async fn known_client(&self, client_id: &str) -> Result<ClientRow> {
        if client_id.is_empty() || client_id.len() > MAX_URI_LEN {
            return Err(OAuthError::InvalidClient.because("unknown client_id"));
        }
        if client_id.starts_with("https://") {
            return self.documents.client(client_id, self.now()).await;
        }
        self.store
            .client(client_id)
            .await?
            .ok_or_else(|| OAuthError::InvalidClient.because("unknown client_id"))
    }

    /// Authenticates a client at the token or revocation endpoint: a public client sends its
    /// id and no secret; a confidential one its secret by its registered method, compared in
    /// constant time. Every failure is the same `invalid_client`.
    ///
    /// # Errors
    /// [`OAuthError::InvalidClient`].
    pub(crate) async fn authenticate_client(&self, presented: &Presented) -> Result<ClientRow> {
        use secrecy::ExposeSecret as _;
        let refused = || OAuthError::InvalidClient.because("client authentication failed");
        let assertion = presented.assertion.expose_secret();
        if !assertion.is_empty() {
            return self.authenticate_by_assertion(presented).await;
        }
        let client = self
            .known_client(&presented.client_id)
            .await
            .map_err(|_| refused())?;
        let secret = presented.client_secret.expose_secret();
        let method = AuthMethod::parse(&client.auth_method).ok_or(Error::Corrupt("auth method"))?;
        let matches = match (method, &client.secret_hash) {
            (AuthMethod::None, _) => secret.is_empty(),
            (AuthMethod::SecretBasic, Some(stored)) if presented.basic => {
                bool::from(hash(secret).as_bytes().ct_eq(stored.as_bytes()))
            }
            (AuthMethod::SecretPost, Some(stored)) if !presented.basic => {
                bool::from(hash(secret).as_bytes().ct_eq(stored.as_bytes()))
            }
            _ => false,
        };
        if matches { Ok(client) } else { Err(refused()) }
    }

    /// `private_key_jwt` (RFC 7523): the assertion signed by one of the client's keys, for
    /// this server (`aud` its issuer or token endpoint), used once.
    async fn authenticate_by_assertion(&self, presented: &Presented) -> Result<ClientRow> {
        use secrecy::ExposeSecret as _;
        let refused = |why: &str| OAuthError::InvalidClient.because(why.to_owned());
        if presented.assertion_type != JWT_BEARER {
            return Err(refused(
                "client_assertion_type must be jwt-bearer (RFC 7523)",
            ));
        }
        if !presented.client_secret.expose_secret().is_empty() {
            return Err(refused("a client assertion and a client secret"));
        }
        let assertion = presented.assertion.expose_secret();
        // The client id: the form's, else the assertion's `iss` (checked by the signature).
        let client_id = if presented.client_id.is_empty() {
            unverified_issuer(assertion).ok_or_else(|| refused("the assertion names no client"))?
        } else {
            presented.client_id.clone()
        };
        let client = self
            .known_client(&client_id)
            .await
            .map_err(|_| refused("client authentication failed"))?;
        let jwks = match (AuthMethod::parse(&client.auth_method), &client.jwks) {
            (Some(AuthMethod::PrivateKeyJwt), Some(jwks)) => {
                serde_json::from_str::<coffer_authn::jwks::Jwks>(jwks)
                    .map_err(|_| Error::Corrupt("stored JWK Set"))?
            }
            _ => return Err(refused("client authentication failed")),
        };
        let settings = self.keys.settings();
        let token_endpoint = url::Url::parse(&settings.issuer)
            .map(|url| format!("{}/oauth/token", url.origin().ascii_serialization()))
            .unwrap_or_default();
        let checked = coffer_authn::jwt::verify_client_assertion(
            assertion,
            &jwks,
            &client.client_id,
            &[settings.issuer.as_str(), token_endpoint.as_str()],
            self.now(),
            settings.leeway,
        )
        .map_err(|error| refused(&format!("the client assertion is invalid ({error})")))?;
        let jti_hash = hash(&format!("{}\n{}", client.client_id, checked.jti));
        let keep_until = checked
            .exp
            .saturating_add(super::super::seconds(settings.leeway));
        if !self
            .store
            .first_use_of_assertion(&jti_hash, keep_until)
            .await?
        {
            tracing::warn!(client_id = %client.client_id, "client assertion replayed");
            return Err(refused("the client assertion was used before (jti)"));
        }
        Ok(client)
    }
}

/// A registered JWK Set: JSON, at most 16 KiB and 10 keys, RS256 RSA keys only.
fn checked_jwks(text: &str) -> Result<String> {
    let invalid = |why: &str| Error::invalid("jwks", why.to_owned());
    if text.len() > MAX_JWKS_BYTES {
        return Err(invalid("at most 16 KiB"));
    }
    let jwks: coffer_authn::jwks::Jwks =
        serde_json::from_str(text).map_err(|_| invalid("a JWK Set: {\"keys\": [...]}"))?;
    if jwks.keys.is_empty() || jwks.keys.len() > 10 {
        return Err(invalid("1 to 10 keys"));
    }
    coffer_authn::jwt::Verifier::new("x", "x", &jwks, std::time::Duration::ZERO)
        .map_err(|_| invalid("RS256 RSA keys only (kty RSA, alg RS256)"))?;
    serde_json::to_string(&jwks).map_err(|_| invalid("unusable"))
}

/// The `iss` of a JWT, unverified (to find whose keys verify it).
fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims["iss"].as_str().map(str::to_owned)
}

impl ClientRow {
    /// Whether the client may use `grant`.
    pub(crate) fn allows(&self, grant: &str) -> bool {
        self.grant_types
            .split_ascii_whitespace()
            .any(|g| g == grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_https_or_loopback_for_native_apps() {
        let ok = |uris: &[&str], kind| {
            check_redirect_uris(
                &uris.iter().map(|u| (*u).to_owned()).collect::<Vec<_>>(),
                kind,
            )
            .is_ok()
        };
        assert!(ok(&["https://app.example/cb"], "web"));
        assert!(ok(&["http://127.0.0.1:3000/callback"], "native"));
        assert!(ok(&["http://localhost/cb", "http://[::1]:9/cb"], "native"));
        assert!(!ok(&["http://127.0.0.1:3000/callback"], "web"));
        assert!(!ok(&["http://app.example/cb"], "native"));
        assert!(!ok(&["https://app.example/cb#frag"], "web"));
        assert!(!ok(&["com.example.app:/cb"], "native"));
        assert!(!ok(&[], "web"));
        assert!(!ok(&["https://a.example/"; 11], "web"));
    }
}
