//! Coffer key-service: a KMS for per-tenant keys.
//!
//! Tenant keys (`tenants/{tenant}/keys/{key}`) have numbered versions of random 256-bit
//! material, stored wrapped under a per-tenant KEK derived from the root keyring
//! (`HKDF-SHA256(root, "coffer/kek/v1" || tenant)`). Callers encrypt, decrypt, generate data
//! keys and re-wrap through `coffer.v1.KeyService` over mutual TLS; the caller's SPIFFE ID
//! decides which RPCs it may use ([`authz`]).
//!
//! [`serve`] runs the whole service on a listener the caller bound, so the binary, `coffer up`
//! and the tests all start the same server.

pub mod api;
pub mod authz;
pub mod cache;
pub mod clock;
pub mod config;
mod error;
pub mod keyring;
pub mod names;
pub mod ops;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use coffer_proto::pb::key_service_server::KeyServiceServer;
use tokio::net::TcpListener;
use tonic::server::NamedService as _;
use tonic::transport::Server;

pub use config::Config;
pub use error::{Error, Result};

use crate::api::KeyServiceApi;
use crate::cache::KeyCache;
use crate::ops::Kms;
use crate::store::Store;

/// Runs the key-service on `listener` until `shutdown` resolves, then drains in-flight calls.
///
/// Connects to the database and applies migrations, checks that every stored key version's
/// root key is in the keyring, and serves `coffer.v1.KeyService`, `grpc.health.v1.Health` and
/// server reflection (v1 and v1alpha) over mutual TLS.
///
/// # Errors
/// Start-up failures ([`Error::Open`], [`Error::Database`], [`Error::RootKeyMissing`],
/// [`Error::Tls`]) and a failed server ([`Error::Serve`]).
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let store = Store::connect(&config.database_url, config.database_max_connections).await?;
    let cache = KeyCache::new(config.cache_capacity, config.cache_ttl);
    let kms = Arc::new(Kms::new(
        store,
        config.keyring,
        cache,
        config.clock,
        config.deletion_waiting_period,
    ));
    kms.check_root_keys().await?;

    let reaper = tokio::spawn(reap_deletions(Arc::clone(&kms), config.reaper_interval));
    let api = KeyServiceApi::new(Arc::clone(&kms), config.authz);
    let router = Server::builder()
        .tls_config(config.tls.server_config())
        .map_err(Error::Tls)?
        .timeout(config.request_timeout)
        .trace_fn(coffer_telemetry::propagation::grpc_span)
        .add_service(KeyServiceServer::new(api));
    let served = coffer_proto::serve(
        router,
        KeyServiceServer::<KeyServiceApi>::NAME,
        listener,
        shutdown,
    )
    .await
    .map_err(Error::Serve);
    reaper.abort();
    kms.store().close().await;
    served
}

/// Destroys keys past their deletion time every `interval`, until aborted.
async fn reap_deletions(kms: Arc<Kms>, interval: std::time::Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match kms.destroy_due_keys().await {
            Ok(0) => {}
            Ok(destroyed) => tracing::info!(destroyed, "destroyed keys past their deletion time"),
            Err(error) => {
                tracing::warn!(error = %coffer_telemetry::error_chain(&error), "deletion reaper failed")
            }
        }
    }
}
