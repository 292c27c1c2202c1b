//! The HTTP side: one axum handler for every route of the table. It matches the route,
//! reads the body within its limit, transcodes, forwards the caller's bearer, request id, trace
//! context and address as gRPC metadata, calls the service and answers JSON; every answer,
//! errors included, carries the security headers.
//!
//! Before any of that, admission ([`admit`]): headers past [`MAX_HEADER_BYTES`] are 431; the
//! per-address and per-API-key rate limits 429 with `Retry-After`; past the cap on requests in
//! flight the request is shed at once with 503 and `Retry-After: 1` rather than queued. A call
//! that outlasts the timeout is 504 (the service's deadline is 100 ms later, so it stops too).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::Channel;

use std::time::Duration;

use crate::bearer::Bearer;
use crate::error::JsonError;
use crate::limit::RateLimit;
use crate::routes::{Miss, Routes};
use crate::{grpc, transcode};

/// The largest request body accepted, in bytes (a credential's environment with its sealed
/// values fits many times over).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The request headers forwarded to the services as gRPC metadata; no other header is.
const FORWARDED: &[&str] = &["authorization", "x-request-id", "traceparent", "tracestate"];

/// The metadata key carrying the client's address (for the services' per-source limits).
pub const CLIENT_ADDRESS: &str = "x-forwarded-for";

/// The most bytes of request headers (names and values) accepted; more is 431. hyper's own
/// bound on the header buffer (about 400 KiB) holds before this check runs.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The default longest time a REST call may take (504 after it).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How much longer than the gateway's timeout the service's deadline is.
const UPSTREAM_DEADLINE_MARGIN: Duration = Duration::from_millis(100);

/// The default most requests in flight; past it, requests are shed with 503.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// What the handler needs: the routes and one channel per service (by the service's full
/// proto name, `coffer.v1.KeyService`).
#[derive(Debug, Clone)]
pub struct Gateway {
    routes: Arc<Routes>,
    upstreams: Arc<HashMap<String, Channel>>,
    /// `/openapi.json`, generated once from the routes.
    openapi: bytes::Bytes,
    /// `/docs`, the same document as HTML.
    docs: bytes::Bytes,
    /// Browser origins allowed to call (CORS); empty denies every cross-origin call.
    cors: Cors,
    /// Requests per client address per minute (none: unlimited).
    limit: Option<Arc<RateLimit>>,
    /// Requests per API key id per minute (none: unlimited).
    key_limit: Option<Arc<RateLimit<String>>>,
    /// The longest a REST call may take.
    timeout: Duration,
    /// One permit per request in flight.
    in_flight: Arc<tokio::sync::Semaphore>,
    /// Request counts and latencies, if a registry was given.
    metrics: Option<crate::metrics::HttpMetrics>,
    /// The metric label of every route template and fixed endpoint.
    labels: Arc<HashMap<String, Arc<String>>>,
    /// The OAuth authorization server's issuer, when it serves one (see [`crate::oauth`]).
    issuer: Option<Arc<crate::oauth::Issuer>>,
}

/// The endpoints served beside the route table (the OAuth ones are labelled "oauth").
const FIXED: [&str; 4] = ["/openapi.json", "/docs", "/healthz", "/readyz"];
/// The metric label of the OAuth endpoints and metadata documents.
const OAUTH_LABEL: &str = "oauth";

/// The route a response answered, for the metrics (set by the handler).
#[derive(Clone)]
struct RouteLabel(Arc<String>);

/// Which browser origins may call the gateway from their pages (CORS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Cors {
    /// None (the default): no CORS headers, so browsers refuse cross-origin calls.
    #[default]
    Denied,
    /// Exactly these origins (`https://app.example`).
    Origins(Vec<HeaderValue>),
    /// Any origin, never with credentials (the bearer is a header a page sets itself, not a
    /// cookie the browser adds).
    Any,
}

impl Gateway {
    /// Serves `routes`, calling each RPC's service on its channel in `upstreams`.
    pub fn new(routes: Routes, upstreams: HashMap<String, Channel>) -> Self {
        let document = crate::openapi::document(&routes);
        let labels = routes
            .iter()
            .map(|route| route.template.as_str().to_owned())
            .chain(FIXED.iter().map(|path| (*path).to_owned()))
            .chain(["-".to_owned(), OAUTH_LABEL.to_owned()])
            .map(|label| (label.clone(), Arc::new(label)))
            .collect();
        Self {
            metrics: None,
            labels: Arc::new(labels),
            docs: crate::openapi::html(&document).into(),
            openapi: document.to_string().into(),
            routes: Arc::new(routes),
            upstreams: Arc::new(upstreams),
            cors: Cors::Denied,
            limit: RateLimit::per_minute(crate::limit::DEFAULT_PER_MINUTE),
            key_limit: RateLimit::per_minute(crate::limit::DEFAULT_PER_KEY_PER_MINUTE),
            timeout: DEFAULT_TIMEOUT,
            in_flight: Arc::new(tokio::sync::Semaphore::new(DEFAULT_MAX_IN_FLIGHT)),
            issuer: None,
        }
    }

    /// The same gateway serving the OAuth authorization server of `issuer` (see
    /// [`crate::oauth`]): its metadata, endpoints and pages, and `resource_metadata` in the
    /// `WWW-Authenticate` challenges of refused calls.
    #[must_use]
    pub fn issuer(mut self, issuer: crate::oauth::Issuer) -> Self {
        self.issuer = Some(Arc::new(issuer));
        self
    }

    /// The OAuth issuer, if it serves one.
    pub(crate) fn oauth_issuer(&self) -> Option<&crate::oauth::Issuer> {
        self.issuer.as_deref()
    }

    /// The channel to a service (by its full gRPC name).
    pub(crate) fn upstream(&self, service: &str) -> Option<Channel> {
        self.upstreams.get(service).cloned()
    }

    /// The longest a call may take.
    pub(crate) fn request_timeout(&self) -> Duration {
        self.timeout
    }

    /// The same gateway counting its requests in `registry` (see [`crate::metrics`]).
    #[must_use]
    pub fn metrics(mut self, registry: &mut prometheus_client::registry::Registry) -> Self {
        self.metrics = Some(crate::metrics::HttpMetrics::register(registry));
        self
    }

    /// The same gateway allowing `per_minute` requests per API key per minute (0: no limit).
    #[must_use]
    pub fn key_rate_limit(mut self, per_minute: u32) -> Self {
        self.key_limit = RateLimit::per_minute(per_minute);
        self
    }

    /// The same gateway giving each REST call at most `timeout` (more than zero).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The same gateway with at most `requests` in flight (at least one).
    #[must_use]
    pub fn max_in_flight(mut self, requests: usize) -> Self {
        self.in_flight = Arc::new(tokio::sync::Semaphore::new(requests.max(1)));
        self
    }

    /// The same gateway allowing `per_minute` requests per client address per minute (0: no
    /// limit, for benchmarks and test suites that need more).
    #[must_use]
    pub fn rate_limit(mut self, per_minute: u32) -> Self {
        self.limit = RateLimit::per_minute(per_minute);
        self
    }

    /// The same gateway with CORS `cors`.
    #[must_use]
    pub fn cors(mut self, cors: Cors) -> Self {
        self.cors = cors;
        self
    }

    /// Serves HTTP on `listener` until `shutdown` completes, then drains.
    ///
    /// # Errors
    /// If accepting connections fails.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.serve_on(listener, shutdown).await
    }

    /// As [`Gateway::serve`], with TLS `config` on `listener` (see [`crate::tls`]).
    ///
    /// # Errors
    /// If the listener has no local address.
    pub async fn serve_tls(
        self,
        listener: tokio::net::TcpListener,
        config: Arc<rustls::ServerConfig>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let listener = crate::tls::TlsListener::new(listener, config)?;
        self.serve_on(listener, shutdown).await
    }

    /// Serves on any listener that knows its clients' addresses.
    async fn serve_on<L>(
        self,
        listener: L,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()>
    where
        L: axum::serve::Listener<Addr = SocketAddr>,
    {
        use axum::serve::ListenerExt as _;
        // `tap_io` makes the connect info (the client's address) of any such listener what
        // axum knows for plain TCP.
        axum::serve(
            listener.tap_io(|_| {}),
            self.router()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }

    /// The axum router: `/openapi.json`, `/docs`, `/healthz` and `/readyz` for probes, every
    /// other path to the route table.
    pub fn router(self) -> axum::Router {
        let cors = cors_layer(&self.cors);
        let admission = Admission {
            limit: self.limit.clone(),
            key_limit: self.key_limit.clone(),
            in_flight: Arc::clone(&self.in_flight),
            metrics: self.metrics.clone(),
            labels: Arc::clone(&self.labels),
        };
        let oauth = self
            .issuer
            .as_deref()
            .map_or_else(axum::Router::new, crate::oauth::routes);
        let router = axum::Router::new()
            .merge(oauth)
            .route("/openapi.json", axum::routing::get(openapi))
            .route("/docs", axum::routing::get(docs))
            .route("/healthz", axum::routing::get(healthz))
            .route("/readyz", axum::routing::get(readyz))
            .fallback(handle)
            .with_state(self)
            .layer(axum::middleware::from_fn(move |request, next| {
                admit(admission.clone(), request, next)
            }));
        // The security headers outermost, so CORS preflight answers carry them too.
        match cors {
            Some(cors) => router.layer(cors),
            None => router,
        }
        .layer(axum::middleware::map_response(security_headers))
    }
}

impl Cors {
    /// The CORS of a list of allowed origins as an operator writes them: none is
    /// [`Cors::Denied`], `*` alone is [`Cors::Any`], else each must be an origin
    /// (`https://host[:port]`, no path).
    ///
    /// # Errors
    /// The first entry that is not an origin, or `*` beside other origins.
    pub fn parse(origins: &[String]) -> Result<Self, String> {
        match origins {
            [] => Ok(Self::Denied),
            [any] if any == "*" => Ok(Self::Any),
            _ => origins
                .iter()
                .map(|origin| {
                    let rest = origin
                        .strip_prefix("https://")
                        .or_else(|| origin.strip_prefix("http://"))
                        .ok_or_else(|| format!("{origin:?}: an origin starts with https://"))?;
                    if rest.is_empty() || rest.contains(['/', '?', '#', '*', ' ']) {
                        return Err(format!(
                            "{origin:?}: an origin is scheme://host[:port], with no path \
                             (and * only alone)"
                        ));
                    }
                    HeaderValue::from_str(origin)
                        .map_err(|_| format!("{origin:?}: not a header value"))
                })
                .collect::<Result<_, _>>()
                .map(Self::Origins),
        }
    }
}

/// The CORS layer of `cors`, none when denied. Preflights may ask for the methods the routes
/// use and the headers a client sends; credentials are never allowed.
fn cors_layer(cors: &Cors) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins = match cors {
        Cors::Denied => return None,
        Cors::Origins(origins) => AllowOrigin::list(origins.iter().cloned()),
        Cors::Any => AllowOrigin::any(),
    };
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PATCH,
                Method::PUT,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("traceparent"),
                HeaderName::from_static("tracestate"),
            ])
            // What a page's script may read of an answer beyond the safelisted headers: the
            // challenge naming a missing scope, and when to retry.
            .expose_headers([header::WWW_AUTHENTICATE, header::RETRY_AFTER])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// What [`admit`] checks.
#[derive(Clone)]
struct Admission {
    limit: Option<Arc<RateLimit>>,
    key_limit: Option<Arc<RateLimit<String>>>,
    in_flight: Arc<tokio::sync::Semaphore>,
    metrics: Option<crate::metrics::HttpMetrics>,
    labels: Arc<HashMap<String, Arc<String>>>,
}

/// Admits the request (or answers for it) and counts the answer in the metrics.
async fn admit(
    admission: Admission,
    request: Request<Body>,
    next: axum::middleware::Next,
) -> Response {
    let Some(metrics) = admission.metrics.clone() else {
        return admitted(&admission, request, next).await;
    };
    let started = std::time::Instant::now();
    let path = request.uri().path();
    let fixed = if FIXED.contains(&path) {
        path
    } else if path.starts_with("/oauth/") || path.starts_with("/.well-known/oauth-") {
        OAUTH_LABEL
    } else {
        "-"
    };
    let unrouted = admission.labels.get(fixed).cloned();
    let response = admitted(&admission, request, next).await;
    let label = match response.extensions().get::<RouteLabel>() {
        Some(RouteLabel(label)) => Some(Arc::clone(label)),
        None => unrouted,
    };
    if let Some(label) = label {
        metrics.record(&label, response.status().as_u16(), started.elapsed());
    }
    response
}

/// Lets the request in or answers for it (see the module docs): header size, the rate
/// limits by address and by API key, then a permit held until the answer is made.
async fn admitted(
    admission: &Admission,
    mut request: Request<Body>,
    next: axum::middleware::Next,
) -> Response {
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        let error = JsonError::new(
            tonic::Code::InvalidArgument,
            format!("request headers over {MAX_HEADER_BYTES} bytes"),
        )
        .at(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        return json_response(error.http, &error.body);
    }
    let now = std::time::Instant::now();
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let (Some(limit), Some(client)) = (&admission.limit, client)
        && let Err(limited) = limit.check(client, now)
    {
        return too_many("too many requests from this address", limited);
    }
    // Looked at once: the per-key limit here, the access log's principal in the handler.
    let bearer = crate::bearer::identify(request.headers().get(header::AUTHORIZATION));
    if let Some(key_limit) = &admission.key_limit
        && let Some(Bearer::ApiKey(id)) = &bearer
        && let Err(limited) = key_limit.check(id.clone(), now)
    {
        return too_many("too many requests with this API key", limited);
    }
    if let Some(bearer) = bearer {
        request.extensions_mut().insert(bearer);
    }
    let Ok(_permit) = admission.in_flight.try_acquire() else {
        let error = JsonError::new(
            tonic::Code::Unavailable,
            "the gateway is at capacity; try again",
        );
        let mut response = json_response(error.http, &error.body);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(1));
        return response;
    };
    next.run(request).await
}

/// 429 with `Retry-After` (whole seconds, at least one).
fn too_many(what: &str, limited: crate::limit::Limited) -> Response {
    let error = JsonError::new(
        tonic::Code::ResourceExhausted,
        format!("{what}; see Retry-After"),
    );
    let mut response = json_response(error.http, &error.body);
    let seconds = limited.retry_after.as_secs().max(1);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// The OpenAPI document of the routes.
async fn openapi(State(gateway): State<Gateway>) -> Response {
    document(gateway.openapi, "application/json")
}

/// The OpenAPI document as a page for a person.
async fn docs(State(gateway): State<Gateway>) -> Response {
    document(gateway.docs, "text/html; charset=utf-8")
}

/// A document made at start-up (shared, not copied per request).
fn document(body: bytes::Bytes, content_type: &'static str) -> Response {
    let mut response = Body::from(body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The process is up.
async fn healthz() -> Response {
    json_response(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

/// Every upstream answers `grpc.health.v1.Health/Check` as serving (200), or which do not
/// (503); the checks run at once, each for at most [`READY_TIMEOUT`]. With
/// `?service=coffer.v1.KeyService`, that service alone (404 for a service the gateway does not
/// call): a probe of one dependency, and one REST-to-gRPC round trip with nothing else in it.
async fn readyz(
    State(gateway): State<Gateway>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let only = query.as_deref().and_then(|query| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "service")
            .map(|(_, value)| value.into_owned())
    });
    if let Some(name) = &only
        && !gateway.upstreams.contains_key(name)
    {
        let error = JsonError::new(tonic::Code::NotFound, "the gateway calls no such service");
        return json_response(error.http, &error.body);
    }
    let mut checks = tokio::task::JoinSet::new();
    for (name, channel) in gateway.upstreams.iter() {
        if only.as_ref().is_some_and(|only| only != name) {
            continue;
        }
        let (name, channel) = (name.clone(), channel.clone());
        checks.spawn(async move {
            let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
            let check = client.check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            });
            let serving = matches!(
                tokio::time::timeout(READY_TIMEOUT, check).await,
                Ok(Ok(reply)) if reply.get_ref().status()
                    == tonic_health::pb::health_check_response::ServingStatus::Serving
            );
            (name, serving)
        });
    }
    let mut services = serde_json::Map::new();
    let mut ready = true;
    while let Some(checked) = checks.join_next().await {
        let (name, serving) = checked.unwrap_or_else(|_| ("-".to_owned(), false));
        ready &= serving;
        services.insert(
            name,
            serde_json::Value::from(if serving { "serving" } else { "unavailable" }),
        );
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(
        status,
        &serde_json::json!({"status": if ready { "ready" } else { "not ready" }, "services": services}),
    )
}

/// How long `/readyz` waits for each service.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

async fn handle(
    State(gateway): State<Gateway>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request: Request<Body>,
) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let request_id = loggable_request_id(request.headers().get("x-request-id")).to_owned();
    let principal = request
        .extensions()
        .get::<Bearer>()
        .map_or_else(|| "-".to_owned(), Bearer::to_string);
    let mut route = None;
    let timeout = gateway.timeout;
    let called = tokio::time::timeout(timeout, call(&gateway, client, request, &mut route)).await;
    let mut response = match called {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => error_response(&error),
        Err(_) => {
            let error = JsonError::new(
                tonic::Code::DeadlineExceeded,
                "the call took longer than the gateway allows",
            );
            json_response(error.http, &error.body)
        }
    };
    // One line per request: the route's template and the principal the bearer names (see
    // [`crate::bearer`]), never the path, query, headers or body, which may name or carry
    // secrets.
    tracing::info!(
        target: "coffer_gateway::access",
        method = %method,
        route = route.unwrap_or("-"),
        status = response.status().as_u16(),
        latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        request_id = %request_id,
        principal = %principal,
        "request"
    );
    if let Some(label) = route.and_then(|template| gateway.labels.get(template)) {
        response
            .extensions_mut()
            .insert(RouteLabel(Arc::clone(label)));
    }
    response
}

/// A request id as the access log may print it: at most 128 characters of
/// `[A-Za-z0-9._-]` that do not look like a credential (an `mcp_sk_` key, a JWT); anything
/// else is `-`.
pub fn loggable_request_id(value: Option<&HeaderValue>) -> &str {
    let Some(text) = value.and_then(|v| v.to_str().ok()) else {
        return "-";
    };
    let plain = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    let credential_like = text.to_ascii_lowercase().contains("mcp_sk_") || text.starts_with("eyJ");
    if plain && !credential_like { text } else { "-" }
}

async fn call<'g>(
    gateway: &'g Gateway,
    client: SocketAddr,
    request: Request<Body>,
    route: &mut Option<&'g str>,
) -> Result<Response, Failure> {
    let (parts, body) = request.into_parts();
    let matched = gateway
        .routes
        .find(&parts.method, parts.uri.path())
        .map_err(|miss| match miss {
            Miss::NotFound => Failure::Json(JsonError::new(
                tonic::Code::NotFound,
                "no such REST resource",
            )),
            Miss::MethodNotAllowed(allowed) => Failure::MethodNotAllowed(allowed),
            Miss::BadPath(_) => {
                Failure::Json(JsonError::invalid("path", "invalid percent-encoding"))
            }
        })?;
    *route = Some(matched.route.template.as_str());
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| Failure::TooLarge)?;
    let message = transcode::request(
        matched.route,
        &matched.bindings,
        parts.uri.query().unwrap_or_default(),
        &body,
    )
    .map_err(|invalid| Failure::Json(JsonError::invalid(&invalid.field, &invalid.why)))?;
    let service = matched.route.rpc.parent_service();
    let channel = gateway
        .upstreams
        .get(service.full_name())
        .cloned()
        .ok_or_else(|| {
            Failure::Json(JsonError::new(
                tonic::Code::Unavailable,
                "the service is unavailable; try again",
            ))
        })?;
    let mut grpc_request = tonic::Request::new(message);
    // The service gives up just after the gateway does: a little later, so the client's
    // answer is always the gateway's 504 and never the channel's own cancellation racing it.
    grpc_request.set_timeout(gateway.timeout + UPSTREAM_DEADLINE_MARGIN);
    forward(&parts.headers, client, grpc_request.metadata_mut());
    let presented = parts.headers.contains_key(header::AUTHORIZATION);
    let reply = grpc::unary(channel, &matched.route.rpc, grpc_request)
        .await
        .map_err(|status| Failure::Service {
            challenge: crate::error::challenge(
                &status,
                presented,
                gateway
                    .issuer
                    .as_deref()
                    .map(crate::oauth::Issuer::resource_metadata)
                    .as_deref(),
            ),
            error: JsonError::from_status(&status),
        })?;
    let json = transcode::response(matched.route, reply.get_ref());
    Ok(json_response(StatusCode::OK, &json))
}

/// Copies the forwarded headers that are valid metadata, and the client's address.
pub(crate) fn forward(headers: &HeaderMap, client: SocketAddr, metadata: &mut MetadataMap) {
    for name in FORWARDED {
        if let Some(value) = headers.get(*name)
            && let Ok(value) = MetadataValue::try_from(value.as_bytes())
        {
            metadata.insert(*name, value);
        }
    }
    if let Ok(address) = MetadataValue::try_from(client.ip().to_string()) {
        metadata.insert(CLIENT_ADDRESS, address);
    }
}

/// Why a request got no service answer.
enum Failure {
    /// A JSON error.
    Json(JsonError),
    /// The service's refusal, with its `WWW-Authenticate` challenge if it has one.
    Service {
        error: JsonError,
        challenge: Option<String>,
    },
    /// 405 with `Allow`.
    MethodNotAllowed(Vec<Method>),
    /// 413.
    TooLarge,
}

fn error_response(failure: &Failure) -> Response {
    match failure {
        Failure::Json(error) => json_response(error.http, &error.body),
        Failure::Service { error, challenge } => {
            let mut response = json_response(error.http, &error.body);
            if let Some(value) = challenge
                .as_deref()
                .and_then(|c| HeaderValue::from_str(c).ok())
            {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
            response
        }
        Failure::MethodNotAllowed(allowed) => {
            let error = JsonError::new(
                tonic::Code::Unimplemented,
                "this resource does not support this method",
            )
            .at(StatusCode::METHOD_NOT_ALLOWED);
            let mut response = json_response(error.http, &error.body);
            let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
            if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            response
        }
        Failure::TooLarge => {
            let error = JsonError::new(
                tonic::Code::InvalidArgument,
                format!("the body is over {MAX_BODY_BYTES} bytes"),
            )
            .at(StatusCode::PAYLOAD_TOO_LARGE);
            json_response(error.http, &error.body)
        }
    }
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The headers on every answer (see the module docs).
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    ("referrer-policy", "no-referrer"),
];

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        // A page that set its own policy (the OAuth pages' form targets) keeps it.
        headers
            .entry(HeaderName::from_static(name))
            .or_insert(HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_logged_only_when_plain_and_not_credential_like() {
        let id = |text: &'static str| {
            loggable_request_id(Some(&HeaderValue::from_static(text))).to_owned()
        };
        assert_eq!(id("req-42.a_b"), "req-42.a_b");
        assert_eq!(loggable_request_id(None), "-");
        for hidden in [
            "mcp_sk_abcdef0123456789",
            "x-MCP_SK_abcdef",
            "eyJhbGciOiJSUzI1NiJ9",
            "has space",
            "quote\"d",
            "",
        ] {
            assert_eq!(id(hidden), "-", "{hidden}");
        }
        let long = "a".repeat(129);
        assert_eq!(
            loggable_request_id(Some(&HeaderValue::from_str(&long).unwrap())),
            "-"
        );
    }

    #[test]
    fn cors_origins_parse_strictly() {
        assert_eq!(Cors::parse(&[]), Ok(Cors::Denied));
        assert_eq!(Cors::parse(&["*".into()]), Ok(Cors::Any));
        assert_eq!(
            Cors::parse(&["https://app.example:8443".into()]),
            Ok(Cors::Origins(vec![HeaderValue::from_static(
                "https://app.example:8443"
            )]))
        );
        for bad in [
            "app.example",
            "https://app.example/",
            "https://*.example",
            "https://",
        ] {
            assert!(Cors::parse(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(Cors::parse(&["*".into(), "https://a.example".into()]).is_err());
    }
}
