//! Coffer key-service: a KMS for per-tenant keys.
//!
//! Tenant keys (`tenants/{tenant}/keys/{key}`) have numbered versions of random 256-bit
//! material, stored wrapped under a per-tenant KEK derived from the root keyring
//! (`HKDF-SHA256(root, "coffer/kek/v1" || tenant)`). Callers encrypt, decrypt, generate data
//! keys and re-wrap through `coffer.v1.KeyService` over mutual TLS; the caller's SPIFFE ID
//! decides which RPCs it may use ([`authz`]), except for a forwarder's (the REST gateway's),
//! which the bearer credential it passes on decides: that principal's tenant and scopes.
//!
//! [`serve`] runs the whole service on a listener the caller bound, so the binary, `coffer up`
//! and the tests all start the same server.

pub(crate) mod api;
pub(crate) mod authz;
pub(crate) mod cache;
pub(crate) mod config;
mod error;
pub(crate) mod names;
pub(crate) mod ops;
pub(crate) mod store;

use std::future::Future;
use std::sync::Arc;

use coffer_proto::pb::key_service_server::KeyServiceServer;
use coffer_server::Listeners;
use coffer_server::task::{self, Start};

pub use authz::Policy;
pub use config::Config;
pub use error::{DOMAIN, Error, Result, reasons};

use crate::api::KeyServiceApi;
use crate::cache::KeyCache;
use crate::ops::Kms;
use crate::store::Store;

/// How soon a failed connection to auth-service (for forwarded bearers) is tried again.
const BEARER_RETRY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs the key-service on `listeners` until `shutdown` resolves, then drains in-flight calls.
///
/// Connects to the database and applies migrations, checks that every stored key version's
/// root key is in the keyring, and serves `coffer.v1.KeyService` on the common server stack
/// ([`coffer_server::serve()`]).
///
/// # Errors
/// Start-up failures ([`Error::Open`], [`Error::Database`], [`Error::RootKeyMissing`],
/// [`Error::RootKeyMismatch`]) and a failed server ([`Error::Serve`]).
pub async fn serve(
    config: Config,
    listeners: impl Into<Listeners>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let store = Store::connect(
        &config.database,
        config.cache_capacity,
        config.record_cache_ttl,
    )
    .await?;
    // On PostgreSQL, other replicas' changes evict cached key records as they are announced.
    let change_listener = (store.backend() == coffer_db::Backend::Postgres).then(|| {
        let (on_connect, on_change) = (store.clone(), store.clone());
        task::spawn(coffer_db::listen(
            config.database.url.clone(),
            store::CHANGES_CHANNEL,
            move || on_connect.forget_records(),
            move |payload| {
                on_change.evict_announced(&payload);
                std::future::ready(())
            },
        ))
    });
    let cache = KeyCache::new(config.cache_capacity, config.cache_ttl);
    let mut registry = coffer_server::metrics::Registry::default();
    let kms = Arc::new(Kms::new(
        store,
        config.keyring,
        cache,
        config.clock,
        config.deletion_waiting_period,
        &mut registry,
    ));
    kms.check_root_keys().await?;

    let reaper = {
        let kms = Arc::clone(&kms);
        task::every(
            "deletion reaper",
            config.reaper_interval,
            Start::Now,
            move || {
                let kms = Arc::clone(&kms);
                async move {
                    let destroyed = kms.destroy_due_keys().await?;
                    if destroyed > 0 {
                        tracing::info!(destroyed, "destroyed keys past their deletion time");
                    }
                    Ok::<(), Error>(())
                }
            },
        )
    };
    let bearers = match &config.auth_service {
        Some(auth_service) if !config.authn.forwarders.is_empty() => Some(api::Bearers {
            forwarders: config.authn.forwarders.clone(),
            authenticator: coffer_authn::authenticator::Deferred::new(
                auth_service.connect_lazy(&config.server.tls)?,
                config.authn.clone(),
                BEARER_RETRY_INTERVAL,
            ),
        }),
        _ => None,
    };
    let api = KeyServiceServer::new(KeyServiceApi::new(Arc::clone(&kms), config.authz, bearers));
    let served = coffer_server::serve(&config.server, api, registry, listeners.into(), shutdown)
        .await
        .map_err(Error::Serve);
    drop((reaper, change_listener));
    kms.store().close().await;
    served
}
