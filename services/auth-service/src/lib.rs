//! Coffer auth-service: tenants, principals and roles; RS256 access tokens with a JWKS;
//! rotating refresh tokens with reuse detection; revocation and introspection.
//!
//! Signing keys are generated here and stored only encrypted by key-service (this service's
//! certificate identity must be allowed to CreateKey, Encrypt and Decrypt there, as the
//! key-service's default table allows `spiffe://{td}/auth-service`). Without key-service the
//! service does not start, and never falls back to a plaintext key.
//!
//! [`serve`] runs the service on a listener the caller bound.

pub(crate) mod api;
pub(crate) mod audit_key;
pub(crate) mod authz;
pub(crate) mod config;
mod error;
pub(crate) mod ids;
mod oauth_api;
pub(crate) mod ops;
pub(crate) mod password;
pub(crate) mod signing;
pub(crate) mod source;
pub(crate) mod store;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use coffer_key_client::KeyClient;
use coffer_proto::pb::auth_service_server::AuthServiceServer;
use coffer_server::Listeners;
use coffer_server::task::{self, Start};

pub use authz::Policy;
pub use config::Config;
pub use error::{DOMAIN, Error, Result, SECOND_FACTOR_REQUIRED};
pub use ops::Lockout;
pub use ops::oauth::documents::TestAllowance;
pub use ops::oauth::{OAuthError, OAuthSettings, Resource};
pub use signing::TokenSettings;

use crate::api::AuthServiceApi;
use crate::authz::Identities;
use crate::ops::Auth;
use crate::ops::Parts;
use crate::ops::api_keys::KeyCache;
use crate::password::Passwords;
use crate::signing::{KeyServiceVault, SigningKeys};
use crate::store::Store;

/// Runs the auth-service on `listeners` until `shutdown` resolves, then drains in-flight
/// calls.
///
/// # Errors
/// Start-up failures: [`Error::Open`] (database), [`Error::KeyServiceConnect`] or
/// [`Error::KeyService`] (key-service unreachable or refusing); and a failed server
/// ([`Error::Serve`]).
pub async fn serve(
    config: Config,
    listeners: impl Into<Listeners>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let store = Store::connect(&config.database).await?;
    let replicas_notify = store.backend() == coffer_db::Backend::Postgres;
    let channel = config
        .key_service
        .connect(&config.server.tls)
        .await
        .map_err(Error::KeyServiceConnect)?;
    let key_service = KeyClient::new(channel);
    let audit_key = audit_key::load_or_create(&store, &key_service, &config.clock).await?;
    let vault = KeyServiceVault::open(key_service.clone(), config.signing_key_name.clone()).await?;
    // Tokens for the OAuth resources are this server's too: revocable and introspectable.
    let mut tokens = config.tokens.clone();
    tokens.other_audiences = config
        .oauth
        .resources
        .iter()
        .map(|r| r.uri.clone())
        .collect();
    let keys = SigningKeys::load(
        store.clone(),
        vault,
        tokens,
        Arc::clone(&audit_key),
        config.clock.clone(),
    )
    .await?;
    let passwords = Passwords::new(
        config.bcrypt_concurrency,
        config.bcrypt_per_source,
        config.bcrypt_cost,
    )?;
    let api_key_cache = KeyCache::new(config.api_key_cache_capacity, config.api_key_cache_ttl);
    let auth = Arc::new(
        Auth::new(Parts {
            store,
            passwords,
            keys,
            refresh_token_ttl: config.refresh_token_ttl,
            lockout: config.lockout,
            api_key_cache,
            audit_key,
            key_service,
        })
        .with_oauth(config.oauth.clone()),
    );

    let mut tasks = vec![
        reload_signing_keys(Arc::clone(&auth), config.signing_key_refresh),
        evict_changed_api_keys(Arc::clone(&auth), config.api_key_change_poll),
    ];
    if replicas_notify {
        tasks.push(task::spawn(listen_for_changes(
            Arc::clone(&auth),
            config.database.url.clone(),
        )));
    }
    let policy = config
        .authz
        .clone()
        .unwrap_or_else(|| Policy::default_for(&config.trust_domain));
    let forwarders = config
        .forwarders
        .clone()
        .unwrap_or_else(|| coffer_authn::forwarded::default_for(&config.trust_domain));
    let identities = Identities::new(&config.trust_domain, policy, forwarders);
    let api = AuthServiceServer::new(AuthServiceApi::new(Arc::clone(&auth), identities));
    let served = coffer_server::serve(
        &config.server,
        api,
        coffer_server::metrics::Registry::default(),
        listeners.into(),
        shutdown,
    )
    .await
    .map_err(Error::Serve);
    drop(tasks);
    auth.store().close().await;
    served
}

/// Re-reads the signing keys (and drops forgettable revocations) every `interval`.
fn reload_signing_keys(auth: Arc<Auth>, interval: std::time::Duration) -> task::Task {
    task::every(
        "signing key reload",
        interval,
        Start::AfterPeriod,
        move || {
            let auth = Arc::clone(&auth);
            async move {
                auth.keys().reload().await?;
                // Housekeeping on the same beat: revocations whose tokens have all expired,
                // and expired OAuth requests, sessions and codes.
                auth.store().forget_revocations(auth.now()).await?;
                auth.store().forget_expired_oauth(auth.now()).await
            }
        },
    )
}

/// Every `interval`, evicts cached API keys that any replica revoked or rolled since the last
/// look. (One second of overlap: change times have one-second resolution.)
fn evict_changed_api_keys(auth: Arc<Auth>, interval: std::time::Duration) -> task::Task {
    let since = Arc::new(AtomicI64::new(auth.now()));
    task::every(
        "API key change poll",
        interval,
        Start::AfterPeriod,
        move || {
            let (auth, since) = (Arc::clone(&auth), Arc::clone(&since));
            async move {
                let looked = auth.now();
                auth.evict_changed_api_keys(since.load(Ordering::SeqCst).saturating_sub(1))
                    .await?;
                since.store(looked, Ordering::SeqCst);
                Ok::<(), Error>(())
            }
        },
    )
}

/// On PostgreSQL: applies the changes other replicas announce with NOTIFY (API-key
/// revocations and rolls, signing-key rotations) as they happen, until aborted. The polls
/// remain the backstop for notifications lost while disconnected.
async fn listen_for_changes(auth: Arc<Auth>, url: secrecy::SecretString) {
    coffer_db::listen(
        url,
        store::CHANGES_CHANNEL,
        || {},
        |change| {
            let auth = Arc::clone(&auth);
            async move {
                if let Err(error) = auth.apply_change(&change).await {
                    tracing::warn!(error = %coffer_telemetry::error_chain(&error), "applying a change failed");
                }
            }
        },
    )
    .await;
}
