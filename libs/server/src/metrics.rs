//! Prometheus metrics: every service registers its own counters in a [`Registry`], and
//! [`crate::serve()`] adds a request count and a latency histogram per RPC and status code
//! ([`RpcMetrics`]), and serves them all in the OpenMetrics text format at `/metrics` on a
//! listener of its own (plain HTTP, meant for a scraper on the internal network; it carries
//! counts, never secrets).
//!
//! Label values are bounded: the `rpc` label is one of the served methods (from the descriptor
//! set) or `unknown`, the `code` one of the 17 gRPC codes, so a caller cannot grow the registry
//! by calling made-up paths.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::header::CONTENT_TYPE;
use http_body::{Body, Frame, SizeHint};
use prometheus_client::encoding::EncodeLabelSet;
pub use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::histogram::Histogram;
pub use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets, in seconds: 100 µs to 10 s.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The labels of an RPC metric.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    /// `package.Service/Method`, or `unknown`.
    rpc: Arc<String>,
    /// The gRPC status code name, `OK` to `UNAUTHENTICATED`.
    code: &'static str,
}

/// Request count and latency per RPC and status code.
#[derive(Clone)]
pub struct RpcMetrics {
    requests: Family<RpcLabels, Counter>,
    latency: Family<RpcLabels, Histogram, fn() -> Histogram>,
    /// `/package.Service/Method` to its label value.
    known: Arc<HashMap<String, Arc<String>>>,
    unknown: Arc<String>,
}

impl RpcMetrics {
    /// Metrics for the methods of `services` (full names, e.g. `coffer.v1.KeyService`) found
    /// in the encoded descriptor sets, registered in `registry` as `coffer_rpc_requests` and
    /// `coffer_rpc_duration_seconds`.
    pub fn register(registry: &mut Registry, descriptor_sets: &[&[u8]], services: &[&str]) -> Self {
        let mut known = HashMap::new();
        for set in descriptor_sets {
            let Ok(set) = <prost_types::FileDescriptorSet as prost::Message>::decode(*set) else {
                continue;
            };
            for file in &set.file {
                for service in &file.service {
                    let full = format!("{}.{}", file.package(), service.name());
                    if !services.contains(&full.as_str()) {
                        continue;
                    }
                    for method in &service.method {
                        let rpc = format!("{full}/{}", method.name());
                        known.insert(format!("/{rpc}"), Arc::new(rpc));
                    }
                }
            }
        }
        let requests = Family::<RpcLabels, Counter>::default();
        let latency: Family<RpcLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        registry.register(
            "coffer_rpc_requests",
            "gRPC calls answered, by RPC and status code",
            requests.clone(),
        );
        registry.register(
            "coffer_rpc_duration_seconds",
            "Time from a gRPC call's arrival to the end of its response, by RPC and status code",
            latency.clone(),
        );
        Self {
            requests,
            latency,
            known: Arc::new(known),
            unknown: Arc::new("unknown".to_owned()),
        }
    }

    fn label(&self, path: &str) -> Arc<String> {
        Arc::clone(self.known.get(path).unwrap_or(&self.unknown))
    }

    fn record(&self, rpc: Arc<String>, code: tonic::Code, started: Instant) {
        let labels = RpcLabels {
            rpc,
            code: crate::status::code_name(code),
        };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
    }
}

impl<S> tower::Layer<S> for RpcMetrics {
    type Service = RpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetricsService {
            inner,
            metrics: self.clone(),
        }
    }
}

/// The [`RpcMetrics`] layer around a service.
#[derive(Clone)]
pub struct RpcMetricsService<S> {
    inner: S,
    metrics: RpcMetrics,
}

impl<S, B, R> tower::Service<http::Request<B>> for RpcMetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Body + Unpin,
{
    type Response = http::Response<MeteredBody<R>>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let rpc = self.metrics.label(request.uri().path());
        let metrics = self.metrics.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            // A trailers-only response (most errors) has its status in the headers.
            let code = grpc_status(response.headers());
            Ok(response.map(|inner| MeteredBody {
                inner,
                pending: Some((metrics, rpc, started)),
                code,
            }))
        })
    }
}

/// A response body that records its RPC's metrics when it ends (or is dropped unfinished,
/// which counts as CANCELLED unless a status was already seen).
pub struct MeteredBody<B> {
    inner: B,
    pending: Option<(RpcMetrics, Arc<String>, Instant)>,
    code: Option<tonic::Code>,
}

impl<B> MeteredBody<B> {
    fn finish(&mut self, default: tonic::Code) {
        if let Some((metrics, rpc, started)) = self.pending.take() {
            metrics.record(rpc, self.code.unwrap_or(default), started);
        }
    }
}

impl<B> Drop for MeteredBody<B> {
    fn drop(&mut self) {
        self.finish(tonic::Code::Cancelled);
    }
}

impl<B: Body + Unpin> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    self.code = grpc_status(trailers).or(self.code);
                    self.finish(tonic::Code::Ok);
                }
            }
            Poll::Ready(Some(Err(_))) => self.finish(tonic::Code::Internal),
            Poll::Ready(None) => self.finish(tonic::Code::Ok),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    Some(tonic::Code::from(value.parse::<i32>().ok()?))
}

/// Serves `registry` at `/metrics` on `listener` until `shutdown` resolves.
///
/// # Errors
/// If the server fails.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = Arc::clone(&registry);
            async move {
                let mut body = String::new();
                match prometheus_client::encoding::text::encode(&mut body, &registry) {
                    Ok(()) => Ok(([(CONTENT_TYPE, CONTENT_TYPE_OPENMETRICS)], body)),
                    Err(_) => Err(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
                }
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Reads `http://{addr}/metrics` once (tests and the CLI; plain HTTP/1.1 on loopback).
///
/// # Errors
/// If the connection fails or the answer is not a 200.
pub async fn scrape(addr: std::net::SocketAddr) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream
        .take(16 * 1024 * 1024)
        .read_to_string(&mut response)
        .await?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_owned()),
        _ => Err(std::io::Error::other("metrics endpoint did not answer 200")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counters_are_scraped_in_the_openmetrics_format() {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        registry.register(
            "coffer_test_events",
            "Events seen by the test",
            counter.clone(),
        );
        counter.inc_by(3);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, Arc::new(registry), async {
            let _ = stopped.await;
        }));
        let body = scrape(addr).await.unwrap();
        assert!(body.contains("coffer_test_events_total 3"), "{body}");
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }

    #[test]
    fn only_served_methods_get_their_own_label() {
        let mut registry = Registry::default();
        let metrics = RpcMetrics::register(
            &mut registry,
            &[coffer_proto::FILE_DESCRIPTOR_SET],
            &["coffer.v1.KeyService"],
        );
        assert_eq!(
            *metrics.label("/coffer.v1.KeyService/Encrypt"),
            "coffer.v1.KeyService/Encrypt"
        );
        assert_eq!(*metrics.label("/coffer.v1.KeyService/Nope"), "unknown");
        assert_eq!(*metrics.label("/coffer.v1.AuthService/Login"), "unknown");
        metrics.record(metrics.label("/x"), tonic::Code::NotFound, Instant::now());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"coffer_rpc_requests_total{rpc="unknown",code="NOT_FOUND"} 1"#),
            "{text}"
        );
    }
}
