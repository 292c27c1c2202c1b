//! W3C trace context (`traceparent`, `tracestate`) in gRPC metadata.
//!
//! Servers start each request's span as a child of the caller's trace with [`grpc_span`]
//! (tonic's `Server::trace_fn`); clients add the current span's context to outgoing calls with
//! [`TraceContextInterceptor`]. Without an OTLP exporter the spans are still created, so logs
//! carry the request path, but nothing is exported.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The span of one incoming gRPC request, a child of the trace in its `traceparent` header.
/// Records only the method path.
pub fn grpc_span(request: &http::Request<()>) -> tracing::Span {
    let span = tracing::info_span!("grpc", path = %request.uri().path());
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));
    // Fails only when no OpenTelemetry layer is installed, in which case there is no trace to
    // continue.
    let _ = span.set_parent(parent);
    span
}

/// A tonic client interceptor that adds the current span's trace context to every call.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContextInterceptor;

impl tonic::service::Interceptor for TraceContextInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let context = tracing::Span::current().context();
        TraceContextPropagator::new()
            .inject_context(&context, &mut MetadataInjector(request.metadata_mut()));
        Ok(request)
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let key = tonic::metadata::MetadataKey::from_bytes(key.as_bytes());
        let value = tonic::metadata::MetadataValue::try_from(value.as_str());
        if let (Ok(key), Ok(value)) = (key, value) {
            self.0.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
    use tonic::service::Interceptor as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[test]
    fn an_outgoing_call_carries_the_trace_that_the_next_server_continues() {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let caller = tracing::info_span!("caller");
            let _entered = caller.enter();
            let trace_id = caller.context().span().span_context().trace_id();

            let outgoing = TraceContextInterceptor
                .call(tonic::Request::new(()))
                .unwrap();
            let traceparent = outgoing
                .metadata()
                .get("traceparent")
                .unwrap()
                .to_str()
                .unwrap();
            assert!(traceparent.contains(&trace_id.to_string()), "{traceparent}");

            let mut incoming = http::Request::builder().uri("/coffer.v1.KeyService/Encrypt");
            incoming = incoming.header("traceparent", traceparent);
            let server_span = grpc_span(&incoming.body(()).unwrap());
            assert_eq!(
                server_span.context().span().span_context().trace_id(),
                trace_id
            );
        });
    }

    #[test]
    fn a_request_without_trace_context_starts_a_new_trace() {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let request = http::Request::builder().uri("/x").body(()).unwrap();
            let span = grpc_span(&request);
            assert!(span.context().span().span_context().is_valid());
            let garbage = http::Request::builder()
                .uri("/x")
                .header("traceparent", "00-not-a-trace-01")
                .body(())
                .unwrap();
            assert!(
                grpc_span(&garbage)
                    .context()
                    .span()
                    .span_context()
                    .is_valid()
            );
        });
    }
}
