//! Prometheus metrics of the gateway: requests answered and their latency, by route template
//! and HTTP status. The `route` label is one of the table's templates, a fixed endpoint
//! (`/healthz`...) or `-` for a path no route matches, so a client cannot grow the registry
//! by calling made-up paths; `status` is an HTTP status code.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency buckets, in seconds: 100 µs to 10 s.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    route: Arc<String>,
    status: u16,
}

/// The gateway's request metrics.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
}

impl HttpMetrics {
    /// Registers `coffer_http_requests` and `coffer_http_duration_seconds` in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::<Labels, Counter>::default();
        let latency: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        registry.register(
            "coffer_http_requests",
            "REST requests answered, by route template and HTTP status",
            requests.clone(),
        );
        registry.register(
            "coffer_http_duration_seconds",
            "Time to answer a REST request, by route template and HTTP status",
            latency.clone(),
        );
        Self { requests, latency }
    }

    /// Counts one answered request.
    pub(crate) fn record(&self, route: &Arc<String>, status: u16, took: Duration) {
        let labels = Labels {
            route: Arc::clone(route),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }
}

impl std::fmt::Debug for HttpMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpMetrics").finish_non_exhaustive()
    }
}
