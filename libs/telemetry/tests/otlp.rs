//! OTLP export end to end: a span started from an incoming request's `traceparent` reaches a
//! real OTLP/gRPC collector (an in-process `TraceService`) with the caller's trace id.
//!
//! One test per binary: `init` installs the process-wide subscriber.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::sync::mpsc;

struct Collector(mpsc::UnboundedSender<ExportTraceServiceRequest>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let _ = self.0.send(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn server_spans_are_exported_with_the_callers_trace_id() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (sender, mut received) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(sender)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let telemetry = coffer_telemetry::init(
        "coffer-test",
        coffer_telemetry::LogFormat::Json,
        Some(&format!("http://{addr}")),
    )
    .unwrap();
    assert!(telemetry.exports_traces());

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let request = http::Request::builder()
        .uri("/coffer.v1.KeyService/Encrypt")
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .body(())
        .unwrap();
    {
        let span = coffer_telemetry::propagation::grpc_span(&request);
        let _entered = span.enter();
        tracing::info!("handling");
    }
    // Shutting down flushes the batch to the collector.
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();

    let export = tokio::time::timeout(std::time::Duration::from_secs(10), received.recv())
        .await
        .expect("the collector received an export")
        .unwrap();
    let spans: Vec<_> = export
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    let grpc = spans
        .iter()
        .find(|s| s.name == "grpc")
        .expect("the grpc span was exported");
    let exported_trace_id: String = grpc.trace_id.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(exported_trace_id, trace_id);
    let parent: String = grpc
        .parent_span_id
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(parent, "00f067aa0ba902b7");
    let service_name = export.resource_spans[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref())
        .map(|v| format!("{v:?}"))
        .unwrap();
    assert!(service_name.contains("coffer-test"), "{service_name}");
}
