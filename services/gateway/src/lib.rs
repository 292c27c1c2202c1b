//! Coffer's REST gateway: applications, browsers and MCP clients speak
//! REST and JSON; the services speak gRPC over mTLS. The routes come from the protos'
//! `google.api.http` annotations in the descriptor set ([`routes`]), so an annotated RPC is
//! reachable over REST with no code here.
//!
//! The parts: path templates ([`template`]) and the route table ([`routes`]); the JSON
//! transcoding of requests and responses ([`transcode`]); calls of any RPC with a dynamic
//! message ([`grpc`]); Google's JSON error format ([`error`]); rate limits per address and
//! per API key ([`limit`]); what an unverified bearer may tell the gateway ([`bearer`]);
//! `/openapi.json` and `/docs` ([`openapi`]); and the axum handler with admission (header
//! size, rate limits, load shedding), timeouts, the security headers, CORS, probes and the
//! access log ([`server`]). The services verify every bearer; the gateway holds no secret but
//! its client certificate. The production binary (`coffer-gateway`, [`serve`], configured by
//! [`config`]) serves it with TLS on the public listener ([`tls`]) and Prometheus metrics
//! ([`metrics`]); `coffer up` runs it on loopback in dev mode.

pub mod bearer;
pub mod config;
pub mod error;
pub mod grpc;
pub mod limit;
pub mod metrics;
pub mod oauth;
pub mod openapi;
pub mod pages;
pub mod routes;
pub mod server;
pub mod template;
pub mod tls;
pub mod transcode;

use std::collections::HashMap;
use std::sync::Arc;

pub use config::Config;

/// Why the gateway did not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// TLS material or an upstream's address is unusable.
    #[error(transparent)]
    Transport(#[from] coffer_transport::Error),
    /// The route table could not be built from the descriptors.
    #[error("the route table: {0}")]
    Routes(#[from] routes::RouteError),
    /// Serving HTTP failed.
    #[error("serving HTTP failed")]
    Serve(#[source] std::io::Error),
}

impl coffer_server::Failure for Error {
    /// Unusable files and routes are the operator's to fix.
    fn is_misconfiguration(&self) -> bool {
        matches!(self, Error::Transport(_) | Error::Routes(_))
    }
}

/// Runs the production gateway on `listeners` until `shutdown` resolves, then drains: REST
/// on the main listener (TLS when configured), Prometheus `/metrics` on the metrics one. The
/// services are dialled on first use, so the gateway starts before or without them (their
/// routes answer 503 until they are up; `/readyz` says which).
///
/// # Errors
/// Unusable TLS files or upstream addresses, and a failed server.
pub async fn serve(
    config: Config,
    listeners: coffer_server::Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let mut upstreams = HashMap::new();
    for (service, upstream) in &config.upstreams {
        upstreams.insert(
            (*service).to_owned(),
            upstream.connect_lazy(&config.server.tls)?,
        );
    }
    let also = config.route_also.clone();
    let routes = routes::Routes::coffer(move |rpc| {
        routes::public(rpc) || also.iter().any(|name| name == rpc.full_name())
    })?;
    let public_tls = config
        .public_tls
        .as_ref()
        .map(|tls| coffer_transport::public_server_config(&tls.cert, &tls.key, &[b"http/1.1"]))
        .transpose()?;
    let mut registry = prometheus_client::registry::Registry::default();
    let mut gateway = server::Gateway::new(routes, upstreams)
        .cors(config.cors.clone())
        .rate_limit(config.rate_limit)
        .key_rate_limit(config.key_rate_limit)
        .timeout(config.server.request_timeout)
        .max_in_flight(config.max_in_flight)
        .metrics(&mut registry);
    if let Some(issuer) = config.issuer.clone() {
        gateway = gateway.issuer(issuer);
    }

    // One stop signal for both listeners.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let metrics = listeners.metrics.map(|listener| {
        tokio::spawn(coffer_server::metrics::serve(
            listener,
            Arc::new(registry),
            until_stopped(stopped.clone()),
        ))
    });
    if let Some(ready) = listeners.ready {
        let _ = ready.send(());
    }
    let served = match public_tls {
        Some(tls) => {
            gateway
                .serve_tls(listeners.grpc, Arc::new(tls), until_stopped(stopped))
                .await
        }
        None => gateway.serve(listeners.grpc, until_stopped(stopped)).await,
    };
    if let Some(metrics) = metrics {
        let _ = metrics.await;
    }
    served.map_err(Error::Serve)
}
