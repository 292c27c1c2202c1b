//! Prometheus metrics: a service registers its counters in a [`Registry`] and serves them in
//! the OpenMetrics text format at `/metrics` on a listener of its own (plain HTTP, meant for a
//! scraper on the internal network; it carries counts, never secrets).

use std::future::Future;
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

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

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

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
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(
            response.contains("coffer_test_events_total 3"),
            "{response}"
        );
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }
}
