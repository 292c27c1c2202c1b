//! The HTTP side of Coffer's OAuth 2.1 authorization server (MCP authorization, 2026-07-28):
//! the metadata documents (RFC 8414, RFC 9728), the authorization endpoint with its sign-in
//! and consent pages, the token, registration (RFC 7591) and revocation (RFC 7009)
//! endpoints. auth-service holds the state and the rules (its OAuth RPCs); this module
//! speaks the protocol's HTTP: forms, cookies, redirects and RFC 6749 error bodies.
//!
//! Browser state is two cookies, both `__Host-`, `Secure`, `HttpOnly`, `SameSite=Lax`: the
//! sign-in session (an opaque 256-bit value auth-service keeps only as a hash, so it cannot
//! be forged; at most its lifetime, 30 minutes by default) and a CSRF token that every form
//! posts back (double submit, compared in constant time). Pages may not be framed, and their
//! forms may post only here and to the client's redirect origin.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::response::{IntoResponse as _, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use coffer_proto::pb;
use coffer_proto::pb::auth_service_client::AuthServiceClient;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use subtle::ConstantTimeEq as _;

use crate::pages;
use crate::server::Gateway;

/// The sign-in session cookie.
pub const SESSION_COOKIE: &str = "__Host-coffer_session";
/// The CSRF cookie.
pub const CSRF_COOKIE: &str = "__Host-coffer_csrf";
/// Largest form or JSON body of an OAuth endpoint.
const MAX_BODY: usize = 16 * 1024;
/// The auth-service's gRPC service name (its upstream).
const AUTH_SERVICE: &str = "coffer.v1.AuthService";

/// Where the authorization server is: its issuer URL (RFC 8414), which is also Coffer's REST
/// API as a protected resource (RFC 9728) and the `aud` of tokens for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    /// `https://host[:port][/path]`, no trailing slash.
    issuer: String,
    /// `https://host[:port]`.
    origin: String,
    /// The path part, `""` or `/path`.
    path: String,
}

impl Issuer {
    /// Parses the issuer: an `https` URL (or `http` on a loopback host, for dev mode) with no
    /// query or fragment.
    ///
    /// # Errors
    /// Why it is unusable.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text).map_err(|_| format!("{text:?} is not a URL"))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name == "localhost",
            None => false,
        };
        if !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
            return Err(format!(
                "{text:?}: the issuer is an https URL (http only on a loopback host)"
            ));
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(format!(
                "{text:?}: the issuer has no query, fragment or user"
            ));
        }
        let origin = url.origin().ascii_serialization();
        let path = url.path().trim_end_matches('/').to_owned();
        Ok(Self {
            issuer: format!("{origin}{path}"),
            origin,
            path,
        })
    }

    /// The issuer identifier.
    pub fn as_str(&self) -> &str {
        &self.issuer
    }

    /// The URL of the protected resource metadata of Coffer's REST API.
    pub fn resource_metadata(&self) -> String {
        format!(
            "{}/.well-known/oauth-protected-resource{}",
            self.origin, self.path
        )
    }

    /// The paths the metadata documents are served at: the RFC 8414 form (well-known
    /// string first, then the issuer's path), and, for an issuer with a path, the form
    /// with the well-known string after it that some clients try.
    pub fn metadata_paths(&self) -> Vec<String> {
        let mut paths = vec![format!(
            "/.well-known/oauth-authorization-server{}",
            self.path
        )];
        if !self.path.is_empty() {
            paths.push(format!(
                "{}/.well-known/oauth-authorization-server",
                self.path
            ));
        }
        paths
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// The authorization server metadata (RFC 8414).
    pub fn metadata(&self) -> Value {
        let mut scopes: Vec<&str> = coffer_authn_scopes();
        scopes.push("offline_access");
        json!({
            "issuer": self.issuer,
            "authorization_endpoint": self.endpoint("/oauth/authorize"),
            "token_endpoint": self.endpoint("/oauth/token"),
            "registration_endpoint": self.endpoint("/oauth/register"),
            "revocation_endpoint": self.endpoint("/oauth/revoke"),
            "introspection_endpoint": self.endpoint("/oauth/introspect"),
            "jwks_uri": self.endpoint("/v1/auth/jwks"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported":
                ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
            "revocation_endpoint_auth_methods_supported":
                ["none", "client_secret_basic", "client_secret_post"],
            "introspection_endpoint_auth_methods_supported":
                ["client_secret_basic", "client_secret_post"],
            "scopes_supported": scopes,
            "authorization_response_iss_parameter_supported": true,
            "client_id_metadata_document_supported": true,
            "service_documentation": self.endpoint("/docs"),
        })
    }

    /// The protected resource metadata (RFC 9728) of Coffer's REST API.
    pub fn resource_document(&self) -> Value {
        json!({
            "resource": self.issuer,
            "authorization_servers": [self.issuer],
            "scopes_supported": coffer_authn_scopes(),
            "bearer_methods_supported": ["header"],
            "resource_name": "Coffer",
            "resource_documentation": self.endpoint("/docs"),
        })
    }
}

/// Coffer's scopes, in their wire form.
fn coffer_authn_scopes() -> Vec<&'static str> {
    coffer_authn::Scope::ALL
        .iter()
        .map(|s| s.as_str())
        .collect()
}

/// The OAuth routes, added to the gateway's router when it has an issuer.
pub fn routes(issuer: &Issuer) -> axum::Router<Gateway> {
    use axum::routing::{get, post};
    let mut router = axum::Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            get(resource_metadata),
        )
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/login", post(login))
        .route("/oauth/login/factor", post(second_factor))
        .route("/oauth/consent", post(consent))
        .route("/oauth/token", post(token))
        .route("/oauth/register", post(register))
        .route("/oauth/revoke", post(revoke))
        .route("/oauth/introspect", post(introspect))
        .route("/oauth/grants", get(grants))
        .route("/oauth/grants/revoke", post(revoke_grant))
        .route("/oauth/totp/enroll", post(enroll_totp))
        .route("/oauth/totp/confirm", post(confirm_totp))
        .route("/oauth/totp/remove", post(remove_totp))
        .route("/oauth/style.css", get(style));
    for path in issuer.metadata_paths() {
        router = router.route(&path, get(metadata));
    }
    if !issuer.path.is_empty() {
        router = router.route(
            &format!("/.well-known/oauth-protected-resource{}", issuer.path),
            get(resource_metadata),
        );
    }
    router
}

async fn metadata(State(gateway): State<Gateway>) -> Response {
    document(gateway.oauth_issuer().map(Issuer::metadata))
}

async fn resource_metadata(State(gateway): State<Gateway>) -> Response {
    document(gateway.oauth_issuer().map(Issuer::resource_document))
}

fn document(body: Option<Value>) -> Response {
    match body {
        Some(body) => json(StatusCode::OK, &body),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn style() -> Response {
    let mut response = pages::STYLE.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css"));
    response
}

/// The authorization request's query parameters (`resource` may repeat, to be refused).
#[derive(Debug, Default)]
struct AuthorizeQuery(pb::StartAuthorizationRequest);

impl AuthorizeQuery {
    fn parse(query: &str) -> Result<Self, String> {
        let mut request = pb::StartAuthorizationRequest::default();
        let mut seen = std::collections::HashSet::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.into_owned();
            if name != "resource" && !seen.insert(name.clone().into_owned()) {
                return Err(format!("{name} is repeated"));
            }
            match name.as_ref() {
                "response_type" => request.response_type = value,
                "client_id" => request.client_id = value,
                "redirect_uri" => request.redirect_uri = value,
                "scope" => request.scope = value,
                "state" => request.state = value,
                "code_challenge" => request.code_challenge = value,
                "code_challenge_method" => request.code_challenge_method = value,
                "resource" => request.resource.push(value),
                _ => {}
            }
        }
        if request.resource.len() > 8 {
            return Err("too many resource parameters".to_owned());
        }
        Ok(Self(request))
    }
}

async fn authorize(
    State(gateway): State<Gateway>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    if query.len() > MAX_BODY {
        return html(
            StatusCode::URI_TOO_LONG,
            &pages::error("Bad request", "the query is too long"),
        );
    }
    let mut request = match AuthorizeQuery::parse(&query) {
        Ok(AuthorizeQuery(request)) => request,
        Err(why) => return html(StatusCode::BAD_REQUEST, &pages::error("Bad request", &why)),
    };
    request.session = cookie(&headers, SESSION_COOKIE).unwrap_or_default();
    let reply = call(&gateway, client, request, |mut auth, request| async move {
        auth.start_authorization(request).await
    })
    .await;
    let browser = Browser::of(&headers);
    match reply {
        Ok(step) => browser.step(step, None),
        Err(status) => authorization_error(&status),
    }
}

/// A posted form's fields by name.
struct Form(std::collections::HashMap<String, String>);

impl Form {
    /// A field's value, or empty when absent.
    fn take(&mut self, name: &str) -> String {
        self.0.remove(name).unwrap_or_default()
    }
}

/// A form one of this server's pages posted: its fields (a repeated one is refused) and the
/// browser, once the form's CSRF token is the browser's. The refusal page otherwise.
fn posted(headers: &HeaderMap, body: &[u8]) -> Result<(Form, Browser), Box<Response>> {
    let Ok((parameters, _)) = form_parameters(body) else {
        return Err(Box::new(html(
            StatusCode::BAD_REQUEST,
            &pages::error("Bad request", "the form is malformed"),
        )));
    };
    let mut form = Form(parameters.into_iter().collect());
    let browser = Browser::of(headers);
    if !browser.csrf_matches(&form.take("csrf")) {
        return Err(Box::new(csrf_refused()));
    }
    Ok((form, browser))
}

async fn login(
    State(gateway): State<Gateway>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (mut form, browser) = match posted(&headers, &body) {
        Ok(posted) => posted,
        Err(refused) => return *refused,
    };
    let mut field = |name: &str| form.take(name);
    let handle = field("request");
    let (client_name, resource) = (field("client_name"), field("shown_resource"));
    let request = pb::SignInRequest {
        request: handle.clone(),
        tenant_id: field("tenant"),
        username: field("username"),
        password: field("password"),
    };
    let reply = call(&gateway, client, request, |mut auth, request| async move {
        auth.sign_in(request).await
    })
    .await;
    match reply {
        Ok(signed_in) => browser.signed_in(signed_in),
        Err(status) => {
            let (code, message) = match status.code() {
                tonic::Code::Unauthenticated => (
                    StatusCode::UNAUTHORIZED,
                    "Wrong organization, username or password, or the request expired.",
                ),
                tonic::Code::ResourceExhausted => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many attempts. Wait a while and try again.",
                ),
                _ => return service_error(&status),
            };
            // The same page again, with the same request. What it names comes from the
            // page's own form: only for display, to the person who posted it (the CSRF
            // check ties the form to this browser), and escaped like every value.
            let consent = pb::Consent {
                request: handle,
                client_name: shown(client_name, "The application"),
                resource: shown(resource, "Coffer"),
                ..Default::default()
            };
            browser.page(
                code,
                |csrf| pages::sign_in(&consent, csrf, Some(message)),
                None,
            )
        }
    }
}

/// The second step of a sign-in: the code from the user's app, or a recovery code.
async fn second_factor(
    State(gateway): State<Gateway>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (mut form, browser) = match posted(&headers, &body) {
        Ok(posted) => posted,
        Err(refused) => return *refused,
    };
    let mut field = |name: &str| form.take(name);
    let (handle, client_name, origin) = (
        field("request"),
        field("client_name"),
        field("redirect_origin"),
    );
    let request = pb::VerifySecondFactorRequest {
        request: handle.clone(),
        code: field("code"),
    };
    let reply = call(&gateway, client, request, |mut auth, request| async move {
        auth.verify_second_factor(request).await
    })
    .await;
    match reply {
        Ok(signed_in) => browser.signed_in(signed_in),
        Err(status) => {
            let (code, message) = match status.code() {
                tonic::Code::Unauthenticated => (
                    StatusCode::UNAUTHORIZED,
                    "That code is not right or was used already. After five wrong codes the \
                     request ends: then start again from the application.",
                ),
                tonic::Code::ResourceExhausted => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many attempts. Wait a while and try again.",
                ),
                _ => return service_error(&status),
            };
            let factor = pb::SecondFactor {
                request: handle,
                client_name: shown(client_name, "The application"),
                principal: String::new(),
                redirect_origin: shown(origin, ""),
            };
            browser.page(
                code,
                |csrf| pages::second_factor(&factor, csrf, Some(message)),
                Some(&factor.redirect_origin),
            )
        }
    }
}

/// A display value from a form: at most 200 characters of it, or `otherwise` if empty.
fn shown(value: String, otherwise: &str) -> String {
    if value.is_empty() {
        otherwise.to_owned()
    } else {
        value.chars().take(200).collect()
    }
}

async fn consent(
    State(gateway): State<Gateway>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (mut form, browser) = match posted(&headers, &body) {
        Ok(posted) => posted,
        Err(refused) => return *refused,
    };
    let mut field = |name: &str| form.take(name);
    let request = pb::FinishAuthorizationRequest {
        request: field("request"),
        session: cookie(&headers, SESSION_COOKIE).unwrap_or_default(),
        approve: field("decision") == "allow",
    };
    let reply = call(&gateway, client, request, |mut auth, request| async move {
        auth.finish_authorization(request).await
    })
    .await;
    match reply {
        Ok(step) => browser.step(step, None),
        Err(status) if status.code() == tonic::Code::Unauthenticated => html(
            StatusCode::BAD_REQUEST,
            &pages::error(
                "Request expired",
                "This authorization request expired or belongs to another sign-in. Start \
                 again from the application.",
            ),
        ),
        Err(status) => service_error(&status),
    }
}

/// The signed-in user's grants (a sign-in happens during an authorization).
async fn grants(
    State(gateway): State<Gateway>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let Some(session) = cookie(&headers, SESSION_COOKIE) else {
        return html(
            StatusCode::UNAUTHORIZED,
            &pages::error(
                "Not signed in",
                "Sign in to Coffer from an application first; then this page lists the \
                 applications you allowed.",
            ),
        );
    };
    let grants = pb::ListGrantsRequest {
        parent: String::new(),
        session: session.clone(),
    };
    let totp = pb::GetTotpRequest {
        parent: String::new(),
        session,
    };
    // Both at once: the page waits for one round trip, not two.
    let (grants, totp) = tokio::join!(
        call(&gateway, client, grants, |mut auth, request| async move {
            auth.list_grants(request).await
        }),
        call(&gateway, client, totp, |mut auth, request| async move {
            auth.get_totp(request).await
        }),
    );
    let browser = Browser::of(&headers);
    match grants.and_then(|list| Ok((list, totp?))) {
        Ok((list, totp)) => browser.page(
            StatusCode::OK,
            |csrf| pages::grants(&list.grants, &totp, csrf),
            None,
        ),
        Err(status) if status.code() == tonic::Code::Unauthenticated => html(
            StatusCode::UNAUTHORIZED,
            &pages::error("Not signed in", "Your sign-in expired; sign in again."),
        ),
        Err(status) => service_error(&status),
    }
}

/// Withdraws one of the signed-in user's grants, then shows the list again.
async fn revoke_grant(
    State(gateway): State<Gateway>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (mut form, _) = match posted(&headers, &body) {
        Ok(posted) => posted,
        Err(refused) => return *refused,
    };
    let mut field = |name: &str| form.take(name);
    let request = pb::RevokeGrantRequest {
        name: field("grant"),
        session: cookie(&headers, SESSION_COOKIE).unwrap_or_default(),
    };
    let reply = call(&gateway, client, request, |mut auth, request| async move {
        auth.revoke_grant(request).await
    })
    .await;
    match reply {
        Ok(_) => redirect("/oauth/grants"),
        Err(status) if status.code() == tonic::Code::NotFound => html(
            StatusCode::NOT_FOUND,
            &pages::error("No such grant", "It was withdrawn already."),
        ),
        Err(status) if status.code() == tonic::Code::Unauthenticated => html(
            StatusCode::UNAUTHORIZED,
            &pages::error("Not signed in", "Your sign-in expired; sign in again."),
        ),
        Err(status) => service_error(&status),
    }
}

/// Starts a two-step sign-in enrollment for the signed-in user: the QR code page.
async fn enroll_totp(
    State(gateway): State<Gateway>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (_, browser) = match posted(&headers, &body) {
        Ok(posted) => posted,
        Err(refused) => return *refused,
    };
    let request = pb::EnrollTotpRequest {
        session: cookie(&headers, SESSION_COOKIE).unwrap_or_default(),
    };
    let reply = call(&gateway, client, request, |mut auth, request| async move {
        auth.enroll_totp(request).await
    })
    .await;
    match reply {
        Ok(enrollment) => browser.page(
            StatusCode::OK,
            |csrf| pages::enroll(&enrollment, csrf, None),
            None,
        ),
        Err(status) => account_error(&status),
    }
}

/// Confirms the enrollment with the app's first code: the recovery codes, shown once.
async fn confirm_totp(
    State(gateway): State<Gateway>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (mut form, browser) = match posted(&headers, &body) {
        Ok(posted) => posted,
        Err(refused) => return *refused,
    };
    let mut field = |name: &str| form.take(name);
    // What the page showed, to show it again after a mistyped code: from the page's own
    // form, to the browser that posted it (as the sign-in page's display values).
    let shown_again = pb::TotpEnrollment {
        secret: field("secret").chars().take(64).collect(),
        uri: field("uri").chars().take(512).collect(),
        account: field("account").chars().take(200).collect(),
    };
    let request = pb::ConfirmTotpRequest {
        session: cookie(&headers, SESSION_COOKIE).unwrap_or_default(),
        code: field("code"),
    };
    let reply = call(&gateway, client, request, |mut auth, request| async move {
        auth.confirm_totp(request).await
    })
    .await;
    match reply {
        Ok(confirmed) => html(
            StatusCode::OK,
            &pages::recovery_codes(&confirmed.recovery_codes),
        ),
        Err(status) if status.code() == tonic::Code::InvalidArgument => browser.page(
            StatusCode::BAD_REQUEST,
            |csrf| {
                pages::enroll(
                    &shown_again,
                    csrf,
                    Some("That is not the code the app shows now. Check the device's clock and try again."),
                )
            },
            None,
        ),
        Err(status) => account_error(&status),
    }
}

/// Turns the signed-in user's two-step sign-in off (with a current code or a recovery code).
async fn remove_totp(
    State(gateway): State<Gateway>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (mut form, _) = match posted(&headers, &body) {
        Ok(posted) => posted,
        Err(refused) => return *refused,
    };
    let mut field = |name: &str| form.take(name);
    let request = pb::RemoveTotpRequest {
        parent: String::new(),
        session: cookie(&headers, SESSION_COOKIE).unwrap_or_default(),
        code: field("code"),
    };
    let reply = call(&gateway, client, request, |mut auth, request| async move {
        auth.remove_totp(request).await
    })
    .await;
    match reply {
        Ok(_) => redirect("/oauth/grants"),
        Err(status) => account_error(&status),
    }
}

/// A failure of an account-page action.
fn account_error(status: &tonic::Status) -> Response {
    match status.code() {
        tonic::Code::Unauthenticated => html(
            StatusCode::UNAUTHORIZED,
            &pages::error(
                "Not signed in, or a wrong code",
                "Your sign-in expired, or the code was not right. Sign in again, or go back \
                 and try another code.",
            ),
        ),
        tonic::Code::FailedPrecondition => html(
            StatusCode::CONFLICT,
            &pages::error("Two-step sign-in", status.message()),
        ),
        _ => service_error(status),
    }
}

/// The browser's cookies that matter here.
struct Browser {
    csrf: Option<String>,
}

impl Browser {
    fn of(headers: &HeaderMap) -> Self {
        Self {
            csrf: cookie(headers, CSRF_COOKIE).filter(|value| value.len() == 43),
        }
    }

    /// Whether a form's CSRF token is the browser's, in constant time.
    fn csrf_matches(&self, sent: &str) -> bool {
        self.csrf
            .as_deref()
            .is_some_and(|mine| bool::from(mine.as_bytes().ct_eq(sent.as_bytes())))
    }

    /// The answer to a sign-in step: the next step, and the session cookie once there is a
    /// session (not while the second factor is awaited).
    fn signed_in(&self, signed_in: pb::SignInResponse) -> Response {
        let mut response = self.step(signed_in.step.unwrap_or_default(), None);
        if !signed_in.session.is_empty()
            && let Ok(cookie) = HeaderValue::from_str(&format!(
                "{SESSION_COOKIE}={}; Path=/; Max-Age={}; Secure; HttpOnly; SameSite=Lax",
                signed_in.session, signed_in.session_expires_in
            ))
        {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        response
    }

    /// The answer to an authorization step: a redirect (303), or the sign-in, second-factor
    /// or consent page.
    fn step(&self, step: pb::AuthorizationStep, error: Option<&str>) -> Response {
        match step.step {
            Some(pb::authorization_step::Step::Redirect(url)) => redirect(&url),
            Some(pb::authorization_step::Step::Consent(consent)) => {
                let origin = consent.redirect_origin.clone();
                if consent.signed_in {
                    self.page(
                        StatusCode::OK,
                        |csrf| pages::consent(&consent, csrf),
                        Some(&origin),
                    )
                } else {
                    self.page(
                        StatusCode::OK,
                        |csrf| pages::sign_in(&consent, csrf, error),
                        Some(&origin),
                    )
                }
            }
            Some(pb::authorization_step::Step::SecondFactor(factor)) => {
                let origin = factor.redirect_origin.clone();
                self.page(
                    StatusCode::OK,
                    |csrf| pages::second_factor(&factor, csrf, error),
                    Some(&origin),
                )
            }
            None => html(
                StatusCode::BAD_GATEWAY,
                &pages::error("Error", "auth-service gave no answer"),
            ),
        }
    }

    /// A page with a form: the CSRF cookie (kept, or a new one), and a CSP that lets the
    /// form post here and the redirect go to `redirect_origin`.
    fn page(
        &self,
        status: StatusCode,
        body: impl FnOnce(&str) -> String,
        redirect_origin: Option<&str>,
    ) -> Response {
        let csrf = match &self.csrf {
            Some(csrf) => csrf.clone(),
            None => random_token(),
        };
        let mut response = html(status, &body(&csrf));
        let headers = response.headers_mut();
        if self.csrf.is_none()
            && let Ok(cookie) = HeaderValue::from_str(&format!(
                "{CSRF_COOKIE}={csrf}; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax"
            ))
        {
            headers.append(header::SET_COOKIE, cookie);
        }
        // Chromium applies form-action to the redirect after a post, so the client's
        // origin is allowed too (only when it is a plain origin).
        let extra = redirect_origin
            .filter(|origin| {
                origin.starts_with("http") && !origin.contains([' ', ';', ',', '\'', '"'])
            })
            .map_or_else(String::new, |origin| format!(" {origin}"));
        if let Ok(csp) = HeaderValue::from_str(&format!(
            "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
             form-action 'self'{extra}"
        )) {
            headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        }
        response
    }
}

fn csrf_refused() -> Response {
    html(
        StatusCode::FORBIDDEN,
        &pages::error(
            "Form expired",
            "The form's security token is missing or wrong. Go back, reload the page and try \
             again.",
        ),
    )
}

/// A refusal of the authorization request that must not redirect (unknown client or
/// redirect URI), or any other service failure.
fn authorization_error(status: &tonic::Status) -> Response {
    let reason = coffer_server::status::reason(status).unwrap_or_default();
    match reason.as_str() {
        "INVALID_CLIENT" | "INVALID_REDIRECT_URI" => html(
            StatusCode::BAD_REQUEST,
            &pages::error("This application cannot sign in", status.message()),
        ),
        _ => service_error(status),
    }
}

fn service_error(status: &tonic::Status) -> Response {
    let code = match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
        tonic::Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    html(
        code,
        &pages::error(
            "Something went wrong",
            "Coffer cannot answer now; try again later.",
        ),
    )
}

/// Token endpoint client authentication, as sent.
struct ClientAuth {
    client_id: String,
    client_secret: String,
    basic: bool,
    /// RFC 7523.
    assertion_type: String,
    assertion: String,
}

/// A form's parameters in order, and its `resource` values apart.
type Parameters = (Vec<(String, String)>, Vec<String>);

/// Parses a form body into unique parameters (`resource` may repeat); OAuth forbids
/// repeating any other.
fn form_parameters(body: &[u8]) -> Result<Parameters, String> {
    if body.len() > MAX_BODY {
        return Err(format!("the body is over {MAX_BODY} bytes"));
    }
    let mut seen = std::collections::HashSet::new();
    let mut parameters = Vec::new();
    let mut resources = Vec::new();
    for (name, value) in form_urlencoded::parse(body) {
        if name == "resource" {
            resources.push(value.into_owned());
            continue;
        }
        if !seen.insert(name.clone().into_owned()) {
            return Err(format!("{name} is repeated"));
        }
        parameters.push((name.into_owned(), value.into_owned()));
    }
    Ok((parameters, resources))
}

fn parameter(parameters: &[(String, String)], name: &str) -> String {
    parameters
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// The client's credentials: HTTP Basic (RFC 6749 section 2.3.1: both parts form-encoded)
/// or the form's `client_id` and `client_secret`; never both.
fn client_auth(headers: &HeaderMap, parameters: &[(String, String)]) -> Result<ClientAuth, String> {
    let form_id = parameter(parameters, "client_id");
    let form_secret = parameter(parameters, "client_secret");
    let assertion_type = parameter(parameters, "client_assertion_type");
    let assertion = parameter(parameters, "client_assertion");
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(ClientAuth {
            client_id: form_id,
            client_secret: form_secret,
            basic: false,
            assertion_type,
            assertion,
        });
    };
    if !assertion.is_empty() {
        return Err("a client assertion and HTTP Basic".to_owned());
    }
    let basic = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| STANDARD.decode(b64.trim()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or("the Authorization header is not HTTP Basic")?;
    let (id, secret) = basic.split_once(':').ok_or("HTTP Basic without a colon")?;
    let decode = |part: &str| {
        form_urlencoded::parse(format!("x={part}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let (id, secret) = (decode(id), decode(secret));
    if !form_secret.is_empty() || (!form_id.is_empty() && form_id != id) {
        return Err("client credentials both in HTTP Basic and in the form".to_owned());
    }
    Ok(ClientAuth {
        client_id: id,
        client_secret: secret,
        basic: true,
        assertion_type,
        assertion,
    })
}

async fn token(
    State(gateway): State<Gateway>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (parameters, resource) = match form_parameters(&body) {
        Ok(parsed) => parsed,
        Err(why) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &why),
    };
    let auth = match client_auth(&headers, &parameters) {
        Ok(auth) => auth,
        Err(why) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &why),
    };
    let get = |name| parameter(&parameters, name);
    let request = pb::ExchangeTokenRequest {
        grant_type: get("grant_type"),
        client_id: auth.client_id,
        client_secret: auth.client_secret,
        code: get("code"),
        redirect_uri: get("redirect_uri"),
        code_verifier: get("code_verifier"),
        refresh_token: get("refresh_token"),
        scope: get("scope"),
        resource,
        basic_auth: auth.basic,
        client_assertion_type: auth.assertion_type,
        client_assertion: auth.assertion,
    };
    let basic = request.basic_auth;
    let reply = call(&gateway, client, request, |mut auth, request| async move {
        auth.exchange_token(request).await
    })
    .await;
    match reply {
        Ok(tokens) => {
            let mut body = json!({
                "access_token": tokens.access_token,
                "token_type": tokens.token_type,
                "expires_in": tokens.expires_in,
                "scope": tokens.scope,
            });
            if !tokens.refresh_token.is_empty() {
                body["refresh_token"] = Value::String(tokens.refresh_token);
            }
            json(StatusCode::OK, &body)
        }
        Err(status) => token_error(&status, basic),
    }
}

/// A client's request with a `token` (revocation, introspection): its credentials and the
/// token, or the error answer.
fn token_request(headers: &HeaderMap, body: &[u8]) -> Result<(ClientAuth, String), Box<Response>> {
    let refuse = |why: &str| Box::new(oauth_error(StatusCode::BAD_REQUEST, "invalid_request", why));
    let (parameters, _) = form_parameters(body).map_err(|why| refuse(&why))?;
    let auth = client_auth(headers, &parameters).map_err(|why| refuse(&why))?;
    let token = parameter(&parameters, "token");
    if token.is_empty() {
        return Err(refuse("token is required"));
    }
    Ok((auth, token))
}

async fn revoke(
    State(gateway): State<Gateway>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (auth, token) = match token_request(&headers, &body) {
        Ok(parsed) => parsed,
        Err(answer) => return *answer,
    };
    let basic = auth.basic;
    let request = pb::RevokeClientTokenRequest {
        token,
        client_id: auth.client_id,
        client_secret: auth.client_secret,
        basic_auth: auth.basic,
        client_assertion_type: auth.assertion_type,
        client_assertion: auth.assertion,
    };
    let reply = call(&gateway, client, request, |mut auth, request| async move {
        auth.revoke_client_token(request).await
    })
    .await;
    match reply {
        Ok(_) => json(StatusCode::OK, &json!({})),
        Err(status) => token_error(&status, basic),
    }
}

/// Token introspection (RFC 7662) for a resource server's client.
async fn introspect(
    State(gateway): State<Gateway>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (auth, token) = match token_request(&headers, &body) {
        Ok(parsed) => parsed,
        Err(answer) => return *answer,
    };
    let basic = auth.basic;
    let request = pb::IntrospectClientTokenRequest {
        token,
        client_id: auth.client_id,
        client_secret: auth.client_secret,
        basic_auth: auth.basic,
        client_assertion_type: auth.assertion_type,
        client_assertion: auth.assertion,
    };
    let reply = call(&gateway, client, request, |mut auth, request| async move {
        auth.introspect_client_token(request).await
    })
    .await;
    match reply {
        Ok(found) if found.active => json(
            StatusCode::OK,
            &json!({
                "active": true,
                "token_type": "Bearer",
                "scope": found.scope,
                "client_id": found.client_id,
                "sub": found.sub,
                "tenant": found.tenant,
                "aud": found.aud,
                "iss": found.iss,
                "exp": found.exp,
                "iat": found.iat,
                "jti": found.jti,
            }),
        ),
        Ok(_) => json(StatusCode::OK, &json!({"active": false})),
        Err(status) => token_error(&status, basic),
    }
}

#[derive(Debug, Default, serde::Deserialize)]
struct RegistrationBody {
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    client_name: String,
    #[serde(default)]
    grant_types: Vec<String>,
    #[serde(default)]
    response_types: Vec<String>,
    #[serde(default)]
    token_endpoint_auth_method: String,
    #[serde(default)]
    application_type: String,
}

async fn register(
    State(gateway): State<Gateway>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    if body.len() > MAX_BODY {
        return oauth_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_client_metadata",
            "the registration is over 16 KiB",
        );
    }
    let registration: RegistrationBody = match serde_json::from_slice(&body) {
        Ok(registration) => registration,
        Err(error) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client_metadata",
                &format!("not a registration request: {error}"),
            );
        }
    };
    let request = pb::RegisterClientRequest {
        redirect_uris: registration.redirect_uris,
        client_name: registration.client_name,
        grant_types: registration.grant_types,
        response_types: registration.response_types,
        token_endpoint_auth_method: registration.token_endpoint_auth_method,
        application_type: registration.application_type,
    };
    let reply = call(&gateway, client, request, |mut auth, request| async move {
        auth.register_client(request).await
    })
    .await;
    match reply {
        Ok(registered) => {
            let issued_at = registered.create_time.map_or(0, |t| t.seconds);
            json(
                StatusCode::CREATED,
                &json!({
                    "client_id": registered.client_id,
                    "client_id_issued_at": issued_at,
                    "client_name": registered.client_name,
                    "redirect_uris": registered.redirect_uris,
                    "grant_types": registered.grant_types,
                    "response_types": ["code"],
                    "token_endpoint_auth_method": "none",
                    "application_type": registered.application_type,
                }),
            )
        }
        Err(status) if status.code() == tonic::Code::ResourceExhausted => oauth_error(
            StatusCode::TOO_MANY_REQUESTS,
            "invalid_request",
            status.message(),
        ),
        Err(status) => token_error(&status, false),
    }
}

/// An RFC 6749 error body from a service status: the ErrorInfo reason in lower case; 401
/// for `invalid_client` (with a Basic challenge when the client used Basic), 400 else.
fn token_error(status: &tonic::Status, basic: bool) -> Response {
    let reason = coffer_server::status::reason(status).unwrap_or_default();
    let code = reason.to_ascii_lowercase();
    let known = matches!(
        code.as_str(),
        "invalid_request"
            | "invalid_client"
            | "invalid_grant"
            | "unauthorized_client"
            | "unsupported_grant_type"
            | "invalid_scope"
            | "invalid_target"
            | "invalid_redirect_uri"
            | "invalid_client_metadata"
    );
    if !known {
        return match status.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "try again later",
            ),
            tonic::Code::ResourceExhausted => oauth_error(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                status.message(),
            ),
            _ => oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
            ),
        };
    }
    let http = if code == "invalid_client" {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    let mut response = oauth_error(http, &code, status.message());
    if code == "invalid_client" && basic {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"coffer\""),
        );
    }
    response
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

/// A JSON answer that no cache keeps (tokens, metadata alike).
fn json(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// An HTML page without a form: its own stylesheet is the one thing it may load (pages with
/// a form get their CSP from [`Browser::page`]).
fn html(status: StatusCode, body: &str) -> Response {
    let mut response = (status, body.to_owned()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
             form-action 'none'",
        ),
    );
    response
}

fn redirect(url: &str) -> Response {
    match HeaderValue::from_str(url) {
        Ok(location) => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            response.headers_mut().insert(header::LOCATION, location);
            response
        }
        Err(_) => html(
            StatusCode::BAD_GATEWAY,
            &pages::error("Error", "the redirect is not a valid URL"),
        ),
    }
}

/// A cookie's value from the `Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
        .filter(|value| value.len() <= 128)
}

/// 256 random bits from the OS, base64url (43 characters). Should the OS RNG fail, the
/// empty token: never a predictable one, and no form can match it (see [`Browser::of`]).
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    match coffer_crypto::fill_random(&mut bytes) {
        Ok(()) => URL_SAFE_NO_PAD.encode(bytes),
        Err(_) => String::new(),
    }
}

/// Calls auth-service with the client's address forwarded (for its per-source limits)
/// within the gateway's timeout.
async fn call<R, T, F, Fut>(
    gateway: &Gateway,
    client: SocketAddr,
    message: R,
    rpc: F,
) -> Result<T, tonic::Status>
where
    F: FnOnce(AuthServiceClient<tonic::transport::Channel>, tonic::Request<R>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let channel = gateway
        .upstream(AUTH_SERVICE)
        .ok_or_else(|| tonic::Status::unavailable("auth-service is not configured"))?;
    let mut request = tonic::Request::new(message);
    request.set_timeout(gateway.request_timeout());
    crate::server::forward(&HeaderMap::new(), client, request.metadata_mut());
    let reply = tokio::time::timeout(
        gateway.request_timeout(),
        rpc(AuthServiceClient::new(channel), request),
    )
    .await
    .map_err(|_| tonic::Status::deadline_exceeded("auth-service took too long"))??;
    Ok(reply.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_is_exactly_the_url_the_metadata_is_built_from() {
        let issuer = Issuer::parse("https://auth.example.com/").unwrap();
        assert_eq!(issuer.as_str(), "https://auth.example.com");
        assert_eq!(issuer.metadata()["issuer"], "https://auth.example.com");
        assert_eq!(
            issuer.metadata_paths(),
            vec!["/.well-known/oauth-authorization-server"]
        );
        let tenant = Issuer::parse("https://auth.example.com/acme").unwrap();
        assert_eq!(
            tenant.metadata_paths(),
            vec![
                "/.well-known/oauth-authorization-server/acme",
                "/acme/.well-known/oauth-authorization-server"
            ]
        );
        assert_eq!(
            tenant.resource_metadata(),
            "https://auth.example.com/.well-known/oauth-protected-resource/acme"
        );
        assert!(Issuer::parse("http://auth.example.com").is_err());
        assert!(Issuer::parse("http://127.0.0.1:8080").is_ok());
        assert!(Issuer::parse("https://a.example/?x=1").is_err());
    }

    #[test]
    fn basic_client_credentials_are_form_decoded_and_never_doubled() {
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode("my%20client:s%3Acret");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        let auth = client_auth(&headers, &[]).unwrap();
        assert_eq!(
            (auth.client_id.as_str(), auth.client_secret.as_str()),
            ("my client", "s:cret")
        );
        assert!(auth.basic);
        let doubled = [("client_secret".to_owned(), "x".to_owned())];
        assert!(client_auth(&headers, &doubled).is_err());
        assert!(form_parameters(b"a=1&a=2").is_err());
        let (_, resources) = form_parameters(b"resource=x&resource=y").unwrap();
        assert_eq!(resources.len(), 2);
    }
}
