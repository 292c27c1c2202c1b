//! Coffer auth-service: tenants, principals and roles; RS256 access tokens with a JWKS;
//! rotating refresh tokens with reuse detection; revocation and introspection.
//!
//! Signing keys are generated here and stored only encrypted by key-service (this service's
//! certificate identity must be allowed to CreateKey, Encrypt and Decrypt there, as the
//! key-service's default table allows `spiffe://{td}/auth-service`). Without key-service the
//! service does not start, and never falls back to a plaintext key.
//!
//! [`serve`] runs the service on a listener the caller bound.

pub mod api;
pub mod audit_key;
pub mod authz;
pub mod config;
mod error;
pub mod ids;
pub mod ops;
pub mod password;
pub mod signing;
pub mod source;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use coffer_proto::pb::auth_service_server::AuthServiceServer;
use secrecy::ExposeSecret as _;
use tokio::net::TcpListener;
use tonic::server::NamedService as _;
use tonic::transport::Server;

pub use config::Config;
pub use error::{Error, Result};

use crate::api::AuthServiceApi;
use crate::authz::Identities;
use crate::ops::Auth;
use crate::ops::api_keys::KeyCache;
use crate::password::Passwords;
use crate::signing::{KeyServiceVault, SigningKeys};
use crate::store::Store;

/// Runs the auth-service on `listener` until `shutdown` resolves, then drains in-flight calls.
///
/// # Errors
/// Start-up failures: [`Error::Open`] (database), [`Error::KeyServiceConnect`] or
/// [`Error::KeyService`] (key-service unreachable or refusing), [`Error::Tls`]; and a failed
/// server ([`Error::Serve`]).
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let store = Store::connect(&config.database_url, config.database_max_connections).await?;
    let replicas_notify = store.backend() == coffer_db::Backend::Postgres;
    let channel = coffer_transport::Upstream {
        url: config.key_service_url.clone(),
        server_name: config.key_service_server_name.clone(),
        identity: config.key_service_identity.clone(),
    }
    .connect(&config.tls)
    .await
    .map_err(Error::KeyServiceConnect)?;
    let audit_key = audit_key::load_or_create(&store, channel.clone()).await?;
    let vault = KeyServiceVault::open(channel, config.signing_key_name.clone()).await?;
    let keys = SigningKeys::load(
        store.clone(),
        vault,
        config.tokens.clone(),
        Arc::clone(&audit_key),
    )
    .await?;
    let passwords = Passwords::new(
        config.bcrypt_concurrency,
        config.bcrypt_per_source,
        config.bcrypt_cost,
    )?;
    let api_key_cache = KeyCache::new(config.api_key_cache_capacity, config.api_key_cache_ttl);
    let auth = Arc::new(Auth::new(
        store,
        passwords,
        keys,
        config.refresh_token_ttl,
        config.lockout,
        api_key_cache,
        audit_key,
    ));

    let reloader = tokio::spawn(reload_signing_keys(
        Arc::clone(&auth),
        config.signing_key_refresh,
    ));
    let evictor = tokio::spawn(evict_changed_api_keys(
        Arc::clone(&auth),
        config.api_key_change_poll,
    ));
    let change_listener = replicas_notify.then(|| {
        tokio::spawn(listen_for_changes(
            Arc::clone(&auth),
            config.database_url.clone(),
        ))
    });
    let identities = Identities::new(
        &config.trust_domain,
        Identities::default_introspectors(&config.trust_domain),
    );
    let api = AuthServiceApi::new(Arc::clone(&auth), identities);
    let router = Server::builder()
        .tls_config(config.tls.server_config())
        .map_err(Error::Tls)?
        .timeout(config.request_timeout)
        .trace_fn(coffer_telemetry::propagation::grpc_span)
        .add_service(AuthServiceServer::new(api));
    let served = coffer_proto::serve(
        router,
        AuthServiceServer::<AuthServiceApi>::NAME,
        listener,
        shutdown,
    )
    .await
    .map_err(Error::Serve);
    reloader.abort();
    evictor.abort();
    if let Some(listener) = change_listener {
        listener.abort();
    }
    auth.store().close().await;
    served
}

/// Re-reads the signing keys (and drops forgettable revocations) every `interval`, until
/// aborted.
async fn reload_signing_keys(auth: Arc<Auth>, interval: std::time::Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if let Err(error) = auth.keys().reload().await {
            tracing::warn!(error = %coffer_telemetry::error_chain(&error), "signing key reload failed");
        }
        // Housekeeping on the same beat: revocations whose tokens have all expired.
        if let Err(error) = auth.store().forget_revocations(now()).await {
            tracing::warn!(error = %coffer_telemetry::error_chain(&error), "revocation cleanup failed");
        }
    }
}

/// Every `interval`, evicts cached API keys that any replica revoked or rolled since the last
/// look, until aborted. (One second of overlap: change times have one-second resolution.)
async fn evict_changed_api_keys(auth: Arc<Auth>, interval: std::time::Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut since = now();
    loop {
        ticker.tick().await;
        let looked = now();
        match auth.evict_changed_api_keys(since.saturating_sub(1)).await {
            Ok(_) => since = looked,
            Err(error) => {
                tracing::warn!(error = %coffer_telemetry::error_chain(&error), "API key change poll failed")
            }
        }
    }
}

/// On PostgreSQL: applies the changes other replicas announce with NOTIFY (API-key
/// revocations and rolls, signing-key rotations) as they happen, until aborted. The polls
/// remain the backstop for notifications lost while disconnected.
async fn listen_for_changes(auth: Arc<Auth>, url: secrecy::SecretString) {
    loop {
        let Err(error) = listen_once(&auth, &url).await;
        tracing::warn!(%error, "change listener failed; retrying in a second");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Listens until the connection fails.
async fn listen_once(
    auth: &Auth,
    url: &secrecy::SecretString,
) -> std::result::Result<std::convert::Infallible, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect(url.expose_secret()).await?;
    listener.listen(store::CHANGES_CHANNEL).await?;
    loop {
        let notification = listener.recv().await?;
        if let Err(error) = auth.apply_change(notification.payload()).await {
            tracing::warn!(error = %coffer_telemetry::error_chain(&error), "applying a change failed");
        }
    }
}

/// Now, in unix seconds.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
