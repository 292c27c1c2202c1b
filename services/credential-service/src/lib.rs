//! Coffer credential-service: encrypted credential rows for MCP servers.
//!
//! Each credential's environment map is encrypted with its own data key from key-service
//! (AES-256-GCM, the AAD binding tenant, credential id and row version); the row holds the
//! wrapped data key and the ciphertext, never a plaintext. Reads are masked; reveals are
//! audited first; every change and every reveal, denial and failed decryption is in a
//! keyed audit chain, per tenant. Bearers are verified with `coffer_authn` against
//! auth-service; without key-service or auth-service the service does not start, and a data
//! key not in the cache while key-service is down is UNAVAILABLE.

pub mod api;
pub mod audit_key;
pub mod config;
pub mod content;
pub mod dek;
pub mod env;
mod error;
pub mod hydrate;
pub mod metrics;
pub mod names;
pub mod ops;
pub mod sealing;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use coffer_authn::authenticator::Authenticator;
use coffer_proto::pb::credential_service_server::CredentialServiceServer;
use tokio::net::TcpListener;
use tonic::server::NamedService as _;
use tonic::transport::{Channel, Server};

pub use config::Config;
pub use error::{Error, Result};

use crate::api::CredentialServiceApi;
use crate::dek::DataKeys;
use crate::metrics::Metrics;
use crate::ops::Credentials;
use crate::sealing::SealingKeys;
use crate::store::Store;
use coffer_transport::Upstream;

/// Runs the credential-service on `listener` until `shutdown` resolves.
///
/// # Errors
/// Start-up failures ([`Error::Open`], [`Error::Connect`], [`Error::Unauthenticated`] when
/// auth-service's JWKS cannot be fetched, [`Error::Tls`]) and a failed server ([`Error::Serve`]).
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    serve_with_metrics(config, listener, None, shutdown).await
}

/// As [`serve`], also serving Prometheus metrics at `/metrics` on `metrics_listener`.
///
/// # Errors
/// As [`serve`].
pub async fn serve_with_metrics(
    config: Config,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let store = Store::connect(&config.database_url, config.database_max_connections).await?;
    let key_service = connect(&config, &config.key_service, "key-service").await?;
    let auth_service = connect(&config, &config.auth_service, "auth-service").await?;
    let authenticator = Arc::new(Authenticator::connect(auth_service, config.authn.clone()).await?);
    let audit_keys = crate::audit_key::AuditKeys::new(key_service.clone());
    let keys = DataKeys::new(
        key_service,
        config.data_key_id.clone(),
        config.dek_cache_capacity,
        config.dek_cache_ttl,
    );
    let mut registry = coffer_telemetry::metrics::Registry::default();
    let metrics = Metrics::register(&mut registry);
    let credentials = Arc::new(Credentials::new(
        store,
        keys,
        audit_keys,
        config.rewrap_page_size,
        metrics,
    ));
    // Chains written before keyed audit chains are re-linked before anything is served.
    credentials.upgrade_legacy_chains().await?;
    let (metrics_stop, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics_server = metrics_listener.map(|listener| {
        tokio::spawn(coffer_telemetry::metrics::serve(
            listener,
            Arc::new(registry),
            async {
                let _ = metrics_stopped.await;
            },
        ))
    });
    let sweeper = tokio::spawn(sweep(Arc::clone(&credentials), config.rewrap_interval));
    let key_watcher = tokio::spawn(watch_key_changes(Arc::clone(&credentials)));

    let sealing = Arc::new(SealingKeys::new(config.sealing_key_lifetime));
    let api = CredentialServiceApi::new(Arc::clone(&credentials), authenticator, sealing);
    let router = Server::builder()
        .tls_config(config.tls.server_config())
        .map_err(Error::Tls)?
        .timeout(config.request_timeout)
        .trace_fn(coffer_telemetry::propagation::grpc_span)
        .add_service(CredentialServiceServer::new(api));
    let served = coffer_proto::serve(
        router,
        CredentialServiceServer::<CredentialServiceApi>::NAME,
        listener,
        shutdown,
    )
    .await
    .map_err(Error::Serve);
    sweeper.abort();
    key_watcher.abort();
    let _ = metrics_stop.send(());
    if let Some(metrics_server) = metrics_server {
        let _ = metrics_server.await;
    }
    credentials.store().close().await;
    served
}

/// Evicts cached data keys of changed tenant keys every [`dek::KEY_CHANGE_POLL`], until
/// aborted (see [`dek`]).
async fn watch_key_changes(credentials: Arc<Credentials>) {
    let mut ticker = tokio::time::interval(dek::KEY_CHANGE_POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticker.tick().await;
        match credentials.watch_key_changes().await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("key change poll recovered");
            }
            Ok(()) => {}
            // Logged once per outage, not four times a second.
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(error = %coffer_telemetry::error_chain(&error), "key change poll failed; data-key cache bypassed until it recovers");
            }
            Err(_) => {}
        }
    }
}

/// The background re-wrap sweep: every `interval`, every tenant, until aborted.
async fn sweep(credentials: Arc<Credentials>, interval: std::time::Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        match credentials.rewrap_all().await {
            Ok(0) => {}
            Ok(moved) => {
                tracing::info!(moved, "re-wrapped credentials to their primary key version")
            }
            Err(error) => {
                tracing::warn!(error = %coffer_telemetry::error_chain(&error), "re-wrap sweep failed")
            }
        }
    }
}

async fn connect(config: &Config, upstream: &Upstream, name: &'static str) -> Result<Channel> {
    upstream
        .connect(&config.tls)
        .await
        .map_err(|e| Error::Connect(name, e))
}

/// Now, in unix seconds.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
