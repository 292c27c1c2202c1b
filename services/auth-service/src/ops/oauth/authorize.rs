//! The authorization request (OAuth 2.1 section 4.1.1 with PKCE, RFC 8707 `resource`,
//! RFC 9207 `iss`), the user's sign-in and consent.
//!
//! Faults are answered two ways, as OAuth requires: while the client and redirect URI are not
//! yet trusted, with an error the gateway shows (never a redirect: that would be an open
//! redirector); after, with a redirect back to the client carrying `error`, `state` and
//! `iss`.

use coffer_authn::Scopes;
use secrecy::{ExposeSecret as _, SecretString};

use super::clients::{AUTHORIZATION_CODE, REFRESH_TOKEN};
use super::{
    CODE_TTL, MAX_STATE_LEN, OAuthError, REQUEST_TTL, Requested, bounded, canonical_resource, hash,
    new_secret,
};
use crate::ops::directory::effective_scopes;
use crate::ops::{Auth, PasswordChecked};
use crate::source::Source;
use crate::store::{
    ClientRow, CodeRow, ConsentRow, PrincipalKind, PrincipalRow, RequestRow, SessionRow,
};
use crate::{Error, Result};

/// Second-factor codes a pending request may try: the last wrong one ends it.
pub(crate) const MAX_FACTOR_ATTEMPTS: i64 = 5;

/// Prefixes of request handles and sessions.
const REQUEST_PREFIX: &str = "mcp_ar_";
const SESSION_PREFIX: &str = "mcp_ss_";

/// An authorization request's parameters, as sent.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuthorizationRequest {
    pub(crate) response_type: String,
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) scope: String,
    pub(crate) state: String,
    pub(crate) code_challenge: String,
    pub(crate) code_challenge_method: String,
    pub(crate) resource: Vec<String>,
}

/// What the user is asked. `Debug` leaves the request handle out.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ConsentView {
    /// The pending request's handle.
    pub(crate) request: String,
    pub(crate) client_name: String,
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) resource: String,
    /// The scopes asked for; once signed in, only those the user holds.
    pub(crate) scopes: Scopes,
    pub(crate) offline: bool,
    /// The signed-in user (`tenant`, `id`), if signed in.
    pub(crate) principal: Option<(String, String)>,
}

/// The next step of an authorization. `Debug` shows neither the redirect's query (it may
/// carry a code) nor the request handle.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send the browser to this URL (the client's redirect URI with a code or error).
    Redirect(String),
    /// Ask the user.
    Consent(ConsentView),
    /// The password was right: ask for the second factor.
    SecondFactor(FactorView),
}

/// What the second-factor page shows. `Debug` leaves the request handle out.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct FactorView {
    /// The pending request's handle.
    pub(crate) request: String,
    pub(crate) client_name: String,
    /// The user signing in (`tenant`, `id`).
    pub(crate) principal: (String, String),
    /// Where the browser goes after it.
    pub(crate) redirect_uri: String,
}

impl std::fmt::Debug for FactorView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FactorView")
            .field("client_name", &self.client_name)
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ConsentView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentView")
            .field("client_id", &self.client_id)
            .field("resource", &self.resource)
            .field("scopes", &self.scopes)
            .field("offline", &self.offline)
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Redirect(url) => {
                let base = url.split('?').next().unwrap_or_default();
                f.debug_tuple("Redirect").field(&base).finish()
            }
            Step::Consent(view) => f.debug_tuple("Consent").field(view).finish(),
            Step::SecondFactor(view) => f.debug_tuple("SecondFactor").field(view).finish(),
        }
    }
}

/// A sign-in's outcome: a new session (none while the second factor is awaited) and the
/// request's next step.
pub(crate) struct SignedIn {
    pub(crate) session: Option<SecretString>,
    pub(crate) expires_in: u64,
    pub(crate) step: Step,
}

impl Auth {
    /// The authorization endpoint. `session` is the browser's sign-in, if any.
    ///
    /// # Errors
    /// [`OAuthError::InvalidClient`] or [`OAuthError::InvalidRedirectUri`] (shown, not
    /// redirected); storage errors. Every other fault is a [`Step::Redirect`].
    pub(crate) async fn start_authorization(
        &self,
        request: AuthorizationRequest,
        session: Option<&SecretString>,
    ) -> Result<Step> {
        let client = self.known_client(&request.client_id).await?;
        let redirect_uri = registered_redirect(&client, &request.redirect_uri)?;
        let respond = |error: OAuthError, description: &str| {
            Ok(Step::Redirect(self.error_redirect(
                &redirect_uri,
                &request.state,
                error,
                description,
            )))
        };
        if request.state.len() > MAX_STATE_LEN || request.state.chars().any(char::is_control) {
            // Not echoed: it is the bad value.
            return Ok(Step::Redirect(self.error_redirect(
                &redirect_uri,
                "",
                OAuthError::InvalidRequest,
                "state: at most 1000 bytes, no control characters",
            )));
        }
        if request.response_type != "code" {
            return respond(
                OAuthError::UnsupportedResponseType,
                "response_type must be code",
            );
        }
        if !client.allows(AUTHORIZATION_CODE) {
            return respond(
                OAuthError::UnauthorizedClient,
                "this client may not use the authorization code grant",
            );
        }
        if request.code_challenge_method != "S256" {
            return respond(
                OAuthError::InvalidRequest,
                "PKCE is required with code_challenge_method S256 (plain is refused)",
            );
        }
        if !is_code_challenge(&request.code_challenge) {
            return respond(
                OAuthError::InvalidRequest,
                "code_challenge: the base64url SHA-256 of the verifier, 43 characters",
            );
        }
        let resource = match self.resource(&request.resource) {
            Ok(resource) => resource,
            Err(Error::OAuth { error, description }) => return respond(error, &description),
            Err(other) => return Err(other),
        };
        let requested = match Requested::parse(&request.scope) {
            Ok(requested) => requested,
            Err(Error::OAuth { error, description }) => return respond(error, &description),
            Err(other) => return Err(other),
        };
        let scopes = if requested.scopes.is_empty() {
            resource.scopes.clone()
        } else {
            let beyond = requested.scopes.beyond(&resource.scopes);
            if !beyond.is_empty() {
                return respond(
                    OAuthError::InvalidScope,
                    &format!("{} does not take {beyond}", resource.uri),
                );
            }
            requested.scopes
        };
        let pending = RequestRow {
            client_id: client.client_id.clone(),
            redirect_uri,
            state: request.state,
            code_challenge: request.code_challenge,
            resource: resource.uri.clone(),
            scope: scopes.to_string(),
            offline: requested.offline && client.allows(REFRESH_TOKEN),
            session_hash: None,
            expire_time: self.now().saturating_add(REQUEST_TTL),
            factor: None,
        };
        let (handle, handle_hash) = new_secret(REQUEST_PREFIX)?;
        let signed_in = match session {
            Some(session) => self.live_session(session).await?,
            None => None,
        };
        match signed_in {
            Some((session_hash, session)) => {
                let pending = RequestRow {
                    session_hash: Some(session_hash),
                    ..pending
                };
                self.store.insert_request(&handle_hash, &pending).await?;
                self.next_step(&client, handle, &handle_hash, &pending, &session)
                    .await
            }
            None => {
                self.store.insert_request(&handle_hash, &pending).await?;
                Ok(Step::Consent(consent_view(&client, handle, &pending, None)))
            }
        }
    }

    /// Signs a user in for a pending request (password, with Login's lockouts). For a user
    /// with a second factor, the next step asks for it and there is no session yet.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for a wrong password or an unknown or expired request;
    /// [`Error::ResourceExhausted`] while locked.
    pub(crate) async fn sign_in(
        &self,
        handle: &SecretString,
        tenant: &str,
        username: &str,
        password: SecretString,
        source: &Source,
    ) -> Result<SignedIn> {
        let handle_hash = hash(handle.expose_secret());
        let Some(pending) = self.store.request(&handle_hash, self.now()).await? else {
            return Err(Error::unauthenticated(
                "unknown or expired authorization request",
            ));
        };
        let principal = match self
            .check_password(tenant, username, password, source)
            .await?
        {
            PasswordChecked::Done(principal) => principal,
            PasswordChecked::FactorNeeded(principal) => {
                self.store
                    .await_factor(&handle_hash, &principal.tenant, &principal.id)
                    .await?;
                let client = self.known_client(&pending.client_id).await?;
                let view = consent_view(&client, String::new(), &pending, None);
                return Ok(SignedIn {
                    session: None,
                    expires_in: 0,
                    step: Step::SecondFactor(FactorView {
                        request: handle.expose_secret().to_owned(),
                        client_name: view.client_name,
                        principal: (principal.tenant, principal.id),
                        redirect_uri: pending.redirect_uri.clone(),
                    }),
                });
            }
        };
        self.open_session(handle, &handle_hash, &pending, &principal)
            .await
    }

    /// The second step of a sign-in: the user's TOTP code or a recovery code. Each wrong
    /// one counts toward Login's lockout; a request checks at most [`MAX_FACTOR_ATTEMPTS`]
    /// codes (taken before each check, so concurrent guesses get no more), and the last
    /// wrong one ends it.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for a wrong code or an unknown or expired request, or one
    /// that awaits no second factor; [`Error::ResourceExhausted`] while locked;
    /// [`Error::KeyService`] (fail closed).
    pub(crate) async fn verify_second_factor(
        &self,
        handle: &SecretString,
        code: &SecretString,
        source: &Source,
    ) -> Result<SignedIn> {
        let handle_hash = hash(handle.expose_secret());
        let refused = || Error::unauthenticated("unknown request, or no second factor awaited");
        let pending = self
            .store
            .request(&handle_hash, self.now())
            .await?
            .filter(|pending| pending.session_hash.is_none())
            .ok_or_else(refused)?;
        let (tenant, id) = pending.factor.clone().ok_or_else(refused)?;
        let principal = self.user(&tenant, &id).await?.ok_or_else(refused)?;
        let Some(attempt) = self
            .store
            .take_factor_attempt(&handle_hash, MAX_FACTOR_ATTEMPTS)
            .await?
        else {
            return Err(Error::unauthenticated(
                "every second-factor attempt was used",
            ));
        };
        match self.check_login_factor(&principal, code, source).await {
            Ok(()) => {
                self.open_session(handle, &handle_hash, &pending, &principal)
                    .await
            }
            Err(wrong @ Error::Unauthenticated { .. }) => {
                if attempt >= MAX_FACTOR_ATTEMPTS {
                    // The last attempt was wrong: the request ends.
                    self.store.take_request(&handle_hash).await?;
                }
                Err(wrong)
            }
            Err(other) => Err(other),
        }
    }

    /// A new session for `principal`, bound to the request, and the request's next step.
    async fn open_session(
        &self,
        handle: &SecretString,
        handle_hash: &str,
        pending: &RequestRow,
        principal: &PrincipalRow,
    ) -> Result<SignedIn> {
        let ttl = self.oauth.session_ttl.as_secs();
        let session_row = SessionRow {
            tenant: principal.tenant.clone(),
            principal_id: principal.id.clone(),
            expire_time: self
                .now()
                .saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
        };
        let (session, session_hash) = new_secret(SESSION_PREFIX)?;
        self.store
            .insert_session(&session_hash, &session_row, self.now())
            .await?;
        self.store.bind_request(handle_hash, &session_hash).await?;
        let client = self.known_client(&pending.client_id).await?;
        let step = self
            .next_step(
                &client,
                handle.expose_secret().to_owned(),
                handle_hash,
                pending,
                &session_row,
            )
            .await?;
        Ok(SignedIn {
            session: Some(SecretString::from(session)),
            expires_in: ttl,
            step,
        })
    }

    /// The user's decision on a request their session signed in for.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for an unknown or expired request, or another session.
    pub(crate) async fn finish_authorization(
        &self,
        handle: &SecretString,
        session: &SecretString,
        approve: bool,
    ) -> Result<Step> {
        let handle_hash = hash(handle.expose_secret());
        let refused = || Error::unauthenticated("unknown request, or not this session's");
        let pending = self
            .store
            .request(&handle_hash, self.now())
            .await?
            .ok_or_else(refused)?;
        let (session_hash, session) = self.live_session(session).await?.ok_or_else(refused)?;
        if pending.session_hash.as_deref() != Some(session_hash.as_str()) {
            return Err(refused());
        }
        // One decision per request, even from two tabs at once.
        if !self.store.take_request(&handle_hash).await? {
            return Err(refused());
        }
        if !approve {
            return Ok(Step::Redirect(self.error_redirect(
                &pending.redirect_uri,
                &pending.state,
                OAuthError::AccessDenied,
                "the user denied the request",
            )));
        }
        let held = self.held_scopes(&session).await?;
        let granted = requested_scopes(&pending)?.intersection(&held);
        if granted.is_empty() {
            return Ok(Step::Redirect(self.error_redirect(
                &pending.redirect_uri,
                &pending.state,
                OAuthError::InvalidScope,
                "the user holds none of the requested scopes",
            )));
        }
        self.store
            .upsert_consent(&ConsentRow {
                tenant: session.tenant.clone(),
                principal_id: session.principal_id.clone(),
                client_id: pending.client_id.clone(),
                resource: pending.resource.clone(),
                scope: granted.to_string(),
                offline: pending.offline,
                create_time: self.now(),
            })
            .await?;
        self.code_redirect(&pending, &session, &granted).await
    }

    /// After the request is stored with a signed-in session: the redirect with a code when a
    /// remembered consent covers it, else the consent page.
    async fn next_step(
        &self,
        client: &ClientRow,
        handle: String,
        handle_hash: &str,
        pending: &RequestRow,
        session: &SessionRow,
    ) -> Result<Step> {
        let held = self.held_scopes(session).await?;
        let scopes = requested_scopes(pending)?.intersection(&held);
        let consent = self
            .store
            .consent(
                &session.tenant,
                &session.principal_id,
                &pending.client_id,
                &pending.resource,
            )
            .await?;
        let covered = consent.is_some_and(|consent| {
            Scopes::parse(&consent.scope).is_ok_and(|agreed| scopes.beyond(&agreed).is_empty())
                && (consent.offline || !pending.offline)
        });
        if covered && !scopes.is_empty() && self.store.take_request(handle_hash).await? {
            return self.code_redirect(pending, session, &scopes).await;
        }
        let mut view = consent_view(
            client,
            handle,
            pending,
            Some((session.tenant.clone(), session.principal_id.clone())),
        );
        view.scopes = scopes;
        Ok(Step::Consent(view))
    }

    /// Issues a code for `granted` and the redirect that carries it.
    async fn code_redirect(
        &self,
        pending: &RequestRow,
        session: &SessionRow,
        granted: &Scopes,
    ) -> Result<Step> {
        let (code, code_hash) = new_secret("")?;
        self.store
            .insert_code(
                &code_hash,
                &CodeRow {
                    client_id: pending.client_id.clone(),
                    redirect_uri: pending.redirect_uri.clone(),
                    code_challenge: pending.code_challenge.clone(),
                    resource: pending.resource.clone(),
                    scope: granted.to_string(),
                    offline: pending.offline,
                    tenant: session.tenant.clone(),
                    principal_id: session.principal_id.clone(),
                    expire_time: self.now().saturating_add(CODE_TTL),
                },
            )
            .await?;
        let mut url = redirect_base(&pending.redirect_uri)?;
        url.query_pairs_mut().append_pair("code", &code);
        Ok(Step::Redirect(self.finish_redirect(url, &pending.state)))
    }

    /// A live session by its value: its hash and row.
    pub(super) async fn live_session(
        &self,
        session: &SecretString,
    ) -> Result<Option<(String, SessionRow)>> {
        let value = session.expose_secret();
        if !value.starts_with(SESSION_PREFIX) || value.len() > 64 {
            return Ok(None);
        }
        let session_hash = hash(value);
        Ok(self
            .store
            .session(&session_hash, self.now())
            .await?
            .map(|row| (session_hash, row)))
    }

    /// The scopes the session's user holds now (none if it is gone or not a user).
    async fn held_scopes(&self, session: &SessionRow) -> Result<Scopes> {
        match self
            .store
            .principal(&session.tenant, &session.principal_id)
            .await?
        {
            Some(row) if row.kind == PrincipalKind::User => effective_scopes(&row),
            _ => Ok(Scopes::default()),
        }
    }

    /// The resource of a request: exactly one, and one this server issues tokens for.
    ///
    /// # Errors
    /// [`OAuthError::InvalidTarget`].
    pub(crate) fn resource(&self, resources: &[String]) -> Result<super::Resource> {
        let [resource] = resources else {
            return Err(OAuthError::InvalidTarget.because(if resources.is_empty() {
                "resource is required (RFC 8707): the URI of the server the token is for"
            } else {
                "exactly one resource per request"
            }));
        };
        let uri = canonical_resource(resource).ok_or_else(|| {
            OAuthError::InvalidTarget.because("resource is not an absolute https URI")
        })?;
        self.resources()
            .into_iter()
            .find(|known| canonical_resource(&known.uri).as_deref() == Some(uri.as_str()))
            .ok_or_else(|| {
                OAuthError::InvalidTarget.because(format!("{uri} is not a resource of this server"))
            })
    }

    /// Every resource tokens may be requested for: Coffer's own API (when its audience is a
    /// URI; its tokens carry the audience exactly as configured, which Coffer's services
    /// verify) and the configured ones.
    pub(crate) fn resources(&self) -> Vec<super::Resource> {
        let audience = &self.keys.settings().audience;
        let own = canonical_resource(audience).map(|_| super::Resource {
            uri: audience.clone(),
            scopes: coffer_authn::Scope::ALL.into_iter().collect(),
        });
        own.into_iter()
            .chain(self.oauth.resources.iter().cloned())
            .collect()
    }

    /// The client's redirect URI with `error`, `error_description`, `state` and `iss`.
    fn error_redirect(
        &self,
        redirect_uri: &str,
        state: &str,
        error: OAuthError,
        description: &str,
    ) -> String {
        let Ok(mut url) = redirect_base(redirect_uri) else {
            return redirect_uri.to_owned();
        };
        url.query_pairs_mut()
            .append_pair("error", error.code())
            .append_pair("error_description", description);
        self.finish_redirect(url, state)
    }

    /// Adds `state` (when the client sent one) and `iss` (RFC 9207) to a redirect.
    fn finish_redirect(&self, mut url: url::Url, state: &str) -> String {
        {
            let mut query = url.query_pairs_mut();
            if !state.is_empty() {
                query.append_pair("state", state);
            }
            query.append_pair("iss", &self.keys.settings().issuer);
        }
        url.into()
    }
}

/// The redirect URI to use: the one sent, if registered exactly; or the client's only one
/// when none was sent.
///
/// # Errors
/// [`OAuthError::InvalidRedirectUri`].
fn registered_redirect(client: &ClientRow, sent: &str) -> Result<String> {
    bounded("redirect_uri", sent, super::MAX_URI_LEN)
        .map_err(|_| OAuthError::InvalidRedirectUri.because("redirect_uri is too long"))?;
    match (sent, client.redirect_uris.as_slice()) {
        ("", [only]) => Ok(only.clone()),
        ("", _) => Err(OAuthError::InvalidRedirectUri
            .because("redirect_uri is required: the client has several")),
        (sent, uris) if uris.iter().any(|uri| uri == sent) => Ok(sent.to_owned()),
        _ => Err(OAuthError::InvalidRedirectUri
            .because("redirect_uri is not registered for this client (exact match)")),
    }
}

fn redirect_base(uri: &str) -> Result<url::Url> {
    url::Url::parse(uri).map_err(|_| Error::Corrupt("stored redirect URI"))
}

fn requested_scopes(pending: &RequestRow) -> Result<Scopes> {
    Scopes::parse(&pending.scope).map_err(|_| Error::Corrupt("stored request scope"))
}

/// A PKCE S256 challenge: 43 base64url characters (a 32-byte SHA-256).
fn is_code_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn consent_view(
    client: &ClientRow,
    handle: String,
    pending: &RequestRow,
    principal: Option<(String, String)>,
) -> ConsentView {
    ConsentView {
        request: handle,
        client_name: if client.client_name.is_empty() {
            client.client_id.clone()
        } else {
            client.client_name.clone()
        },
        client_id: client.client_id.clone(),
        redirect_uri: pending.redirect_uri.clone(),
        resource: pending.resource.clone(),
        scopes: Scopes::parse(&pending.scope).unwrap_or_default(),
        offline: pending.offline,
        principal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_code_or_a_request_handle() {
        let redirect = Step::Redirect("http://127.0.0.1:3000/cb?code=SECRETCODE&state=s".into());
        assert_eq!(
            format!("{redirect:?}"),
            r#"Redirect("http://127.0.0.1:3000/cb")"#
        );
        let consent = Step::Consent(ConsentView {
            request: "mcp_ar_SECRETHANDLE".into(),
            client_name: "c".into(),
            client_id: "mcp_cl_x".into(),
            redirect_uri: "http://127.0.0.1:3000/cb".into(),
            resource: "http://127.0.0.1:8080".into(),
            scopes: Scopes::default(),
            offline: false,
            principal: None,
        });
        assert!(!format!("{consent:?}").contains("SECRET"));
    }
}
