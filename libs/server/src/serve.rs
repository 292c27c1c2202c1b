//! The server stack every Coffer service runs on.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic_health::ServingStatus;

use crate::metrics::{Registry, RpcMetrics};
use crate::process::Listeners;

/// Why [`serve`] stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Reflection could not be built (a build problem, not a runtime one).
    #[error("reflection setup failed")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The TLS configuration was refused.
    #[error("TLS configuration refused")]
    Tls(#[source] tonic::transport::Error),
    /// The gRPC server failed.
    #[error("gRPC server failed")]
    Transport(#[source] tonic::transport::Error),
    /// The metrics endpoint failed.
    #[error("metrics endpoint failed")]
    Metrics(#[source] std::io::Error),
}

/// Serves `service` on `listeners` until `shutdown` resolves, then drains in-flight calls.
///
/// Beside the service: mutual TLS with `config.tls` (a client certificate from its CA is
/// required), `config.request_timeout` on every call, a trace span per call continuing the
/// caller's W3C trace context, `grpc.health.v1.Health` (SERVING until `shutdown`, then
/// NOT_SERVING while calls drain), server reflection v1 and v1alpha (listing only this
/// service, health and reflection), TCP_NODELAY on every connection, and, when
/// `listeners.metrics` is set, `/metrics` with `registry` and a request count and latency per
/// RPC and status code.
///
/// # Errors
/// [`ServeError`].
pub async fn serve<S>(
    config: &crate::Config,
    service: S,
    mut registry: Registry,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let (reflection_v1, reflection_v1alpha) = reflection(S::NAME)?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status(S::NAME, ServingStatus::Serving)
        .await;
    let rpc_metrics = RpcMetrics::register(
        &mut registry,
        &[
            coffer_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ],
        &[S::NAME, "grpc.health.v1.Health"],
    );
    let (stopping, stop_signal) = tokio::sync::watch::channel(false);
    let grpc_shutdown = {
        let mut stop_signal = stop_signal.clone();
        async move {
            let _ = stop_signal.wait_for(|stop| *stop).await;
            health
                .set_service_status(S::NAME, ServingStatus::NotServing)
                .await;
        }
    };
    let metrics = listeners.metrics.map(|listener| {
        let mut stop_signal = stop_signal.clone();
        tokio::spawn(crate::metrics::serve(
            listener,
            Arc::new(registry),
            async move {
                let _ = stop_signal.wait_for(|stop| *stop).await;
            },
        ))
    });
    let stop = tokio::spawn(async move {
        shutdown.await;
        let _ = stopping.send(true);
    });

    if let Some(ready) = listeners.ready {
        let _ = ready.send(());
    }
    // Without TCP_NODELAY, small responses wait on Nagle's algorithm and the client's delayed
    // ACK: about 40 ms per call.
    let incoming =
        tonic::transport::server::TcpIncoming::from(listeners.grpc).with_nodelay(Some(true));
    let served = Server::builder()
        .tls_config(config.tls.server_config())
        .map_err(ServeError::Tls)?
        .timeout(config.request_timeout)
        .trace_fn(coffer_telemetry::propagation::grpc_span)
        .layer(rpc_metrics)
        .add_service(service)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, grpc_shutdown)
        .await
        .map_err(ServeError::Transport);
    stop.abort();
    if let Some(metrics) = metrics {
        // The gRPC server may have stopped on its own: stop the metrics endpoint with it.
        metrics.abort();
        if let Ok(Err(error)) = metrics.await {
            served?;
            return Err(ServeError::Metrics(error));
        }
    }
    served
}

/// gRPC server reflection, v1 and v1alpha (grpcurl before 1.9, as on PyPI, speaks only
/// v1alpha), advertising `service` with the health and reflection services and nothing else:
/// the descriptor set describes every Coffer proto, but a server lists only what it serves.
///
/// # Errors
/// If the descriptor sets do not decode (a build problem, not a runtime one).
#[allow(clippy::type_complexity)]
fn reflection(
    service: &str,
) -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    tonic_reflection::server::Error,
> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(coffer_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(service)
            .with_service_name("grpc.health.v1.Health")
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .with_service_name("grpc.reflection.v1alpha.ServerReflection")
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}
