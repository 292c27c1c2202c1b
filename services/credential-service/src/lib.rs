//! Coffer credential-service: encrypted credential rows for MCP servers.
//!
//! Each credential's environment map is encrypted with its own data key from key-service
//! (AES-256-GCM, the AAD binding tenant, credential id and row version); the row holds the
//! wrapped data key and the ciphertext, never a plaintext. Reads are masked; reveals are
//! audited first; every change and every reveal, denial and failed decryption is in a
//! keyed audit chain, per tenant. Bearers are verified with `coffer_authn` against
//! auth-service; without key-service or auth-service the service does not start, and a data
//! key not in the cache while key-service is down is UNAVAILABLE.

pub(crate) mod api;
pub(crate) mod audit_key;
mod authz;
pub(crate) mod config;
pub(crate) mod content;
pub(crate) mod dek;
pub(crate) mod env;
mod error;
pub(crate) mod hydrate;
pub(crate) mod metrics;
pub(crate) mod names;
pub(crate) mod ops;
pub(crate) mod sealing;
pub(crate) mod store;

use std::future::Future;
use std::sync::Arc;

use coffer_authn::authenticator::Authenticator;
use coffer_key_client::KeyClient;
use coffer_proto::pb::credential_service_server::CredentialServiceServer;
use coffer_server::Listeners;
use coffer_server::task::{self, Start};
use coffer_server::upstream::Upstream;
use tonic::transport::Channel;

pub use config::Config;

/// The PostgreSQL schema of credential-service's tables unless `DATABASE_SCHEMA` says
/// otherwise (on SQLite the service has a file of its own).
pub const DATABASE_SCHEMA: &str = "coffer_credential";
pub use error::{DOMAIN, Error, Result, reasons};

use crate::api::CredentialServiceApi;
use crate::dek::DataKeys;
use crate::metrics::Metrics;
use crate::ops::Credentials;
use crate::sealing::SealingKeys;
use crate::store::Store;

/// Runs the credential-service on `listeners` until `shutdown` resolves.
///
/// # Errors
/// Start-up failures ([`Error::Open`], [`Error::Connect`], [`Error::Unauthenticated`] when
/// auth-service's JWKS cannot be fetched) and a failed server ([`Error::Serve`]).
pub async fn serve(
    config: Config,
    listeners: impl Into<Listeners>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let mut registry = coffer_server::metrics::Registry::default();
    let metrics = Metrics::register(&mut registry);
    let store = Store::connect(
        &config.database,
        config.row_cache_ttl,
        metrics.audit_groups.clone(),
    )
    .await?;
    // On PostgreSQL, other replicas' changes evict cached credential rows as they are
    // announced.
    let change_listener = (store.backend() == coffer_db::Backend::Postgres).then(|| {
        let (on_connect, on_change) = (store.clone(), store.clone());
        task::spawn(coffer_db::listen(
            config.database.url.clone(),
            store::CHANGES_CHANNEL,
            move || on_connect.forget_rows(),
            move |payload| {
                on_change.evict_announced(&payload);
                std::future::ready(())
            },
        ))
    });
    let key_service = KeyClient::new(connect(&config, &config.key_service, "key-service").await?);
    let auth_service = connect(&config, &config.auth_service, "auth-service").await?;
    let authenticator = Arc::new(Authenticator::connect(auth_service, config.authn.clone()).await?);
    let audit_keys = crate::audit_key::AuditKeys::new(key_service.clone(), config.clock.clone());
    let keys = DataKeys::new(
        key_service,
        config.data_key_id.clone(),
        config.dek_cache_capacity,
        config.dek_cache_ttl,
        config.clock.clone(),
    );
    let credentials = Arc::new(Credentials::new(
        store,
        keys,
        audit_keys,
        config.rewrap_page_size,
        metrics,
        config.clock.clone(),
    ));
    // Chains written before keyed audit chains are re-linked before anything is served.
    credentials.upgrade_legacy_chains().await?;
    let tasks = [
        sweep(Arc::clone(&credentials), config.rewrap_interval),
        watch_key_changes(Arc::clone(&credentials)),
    ];

    let sealing = Arc::new(SealingKeys::new(
        config.sealing_key_lifetime,
        config.clock.clone(),
    ));
    let api = CredentialServiceServer::new(CredentialServiceApi::new(
        Arc::clone(&credentials),
        authenticator,
        sealing,
    ));
    let served = coffer_server::serve(&config.server, api, registry, listeners.into(), shutdown)
        .await
        .map_err(Error::Serve);
    drop((tasks, change_listener));
    credentials.store().close().await;
    served
}

/// Evicts cached data keys of changed tenant keys every [`dek::KEY_CHANGE_POLL`] (see
/// [`dek`]).
fn watch_key_changes(credentials: Arc<Credentials>) -> task::Task {
    task::every(
        "key change poll",
        dek::KEY_CHANGE_POLL,
        Start::Now,
        move || {
            let credentials = Arc::clone(&credentials);
            async move { credentials.watch_key_changes().await }
        },
    )
}

/// The background re-wrap sweep: every `interval`, every tenant.
fn sweep(credentials: Arc<Credentials>, interval: std::time::Duration) -> task::Task {
    task::every("re-wrap sweep", interval, Start::AfterPeriod, move || {
        let credentials = Arc::clone(&credentials);
        async move {
            let moved = credentials.rewrap_all().await?;
            if moved > 0 {
                tracing::info!(moved, "re-wrapped credentials to their primary key version");
            }
            Ok::<(), Error>(())
        }
    })
}

async fn connect(config: &Config, upstream: &Upstream, name: &'static str) -> Result<Channel> {
    upstream
        .connect(&config.server.tls)
        .await
        .map_err(|e| Error::Connect(name, e))
}
