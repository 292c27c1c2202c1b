//! The auth-service operations, on validated inputs.

pub(crate) mod api_keys;
pub(crate) mod audit;
pub(crate) mod directory;
pub(crate) mod factors;
mod limits;
pub(crate) mod oauth;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

use coffer_crypto::AuditKey;
use coffer_key_client::KeyClient;

pub(crate) use tokens::{Introspection, PasswordChecked, Tokens};

use crate::ops::api_keys::KeyCache;
use crate::password::Passwords;
use crate::signing::SigningKeys;
use crate::store::Store;

/// Failed-attempt policy.
///
/// Logins lock per account (passwords are guessable) after `max_failures`. Every source (see
/// [`crate::source`]) is also limited: after `source_max_failures` failed logins or API-key
/// verifications within `duration`, that source is refused for `duration`. API keys have no
/// per-key lockout (a 256-bit secret cannot be guessed; a per-key lockout only let anyone who
/// knows a key's public id lock its legitimate users out).
#[derive(Debug, Clone, Copy)]
pub struct Lockout {
    /// Failures in a row that lock a login.
    pub max_failures: u32,
    /// How long a login or source stays locked, and the window failures are counted in.
    pub duration: Duration,
    /// Failures within `duration` that block a source.
    pub source_max_failures: u32,
}

/// The token service: storage, password pool, signing keys and policies.
pub(crate) struct Auth {
    store: Store,
    passwords: Passwords,
    keys: SigningKeys,
    refresh_token_ttl: Duration,
    lockout: Lockout,
    api_key_cache: KeyCache,
    audit_key: Arc<AuditKey>,
    /// Encrypts and decrypts second-factor secrets.
    key_service: KeyClient,
    oauth: oauth::OAuthSettings,
    documents: oauth::documents::Documents,
}

/// What [`Auth`] is made of.
pub(crate) struct Parts {
    pub(crate) store: Store,
    pub(crate) passwords: Passwords,
    pub(crate) keys: SigningKeys,
    pub(crate) refresh_token_ttl: Duration,
    pub(crate) lockout: Lockout,
    pub(crate) api_key_cache: KeyCache,
    pub(crate) audit_key: Arc<AuditKey>,
    pub(crate) key_service: KeyClient,
}

impl Auth {
    /// Assembles the service.
    pub(crate) fn new(parts: Parts) -> Self {
        let Parts {
            store,
            passwords,
            keys,
            refresh_token_ttl,
            lockout,
            api_key_cache,
            audit_key,
            key_service,
        } = parts;
        Self {
            store,
            passwords,
            keys,
            refresh_token_ttl,
            lockout,
            api_key_cache,
            audit_key,
            key_service,
            oauth: oauth::OAuthSettings::default(),
            documents: oauth::documents::Documents::new(None),
        }
    }

    /// With these authorization-server settings (the defaults otherwise).
    pub(crate) fn with_oauth(self, oauth: oauth::OAuthSettings) -> Self {
        Self {
            documents: oauth::documents::Documents::new(oauth.document_test_allowance.clone()),
            oauth,
            ..self
        }
    }

    /// Now, in unix seconds, on the service's clock.
    pub(crate) fn now(&self) -> i64 {
        self.keys.clock().now()
    }

    /// The signing keys (for bearer verification, the JWKS and rotation).
    pub(crate) fn keys(&self) -> &SigningKeys {
        &self.keys
    }

    /// How long a revocation that ends live tokens (of an API key, or a role change) stays
    /// in the feed: until every token it concerns is past its expiry and the leeway.
    fn forget_after(&self) -> i64 {
        let settings = self.keys.settings();
        seconds(settings.access_token_ttl).saturating_add(seconds(settings.leeway))
    }

    /// The audit key of the privilege-change chains.
    pub(crate) fn audit_key(&self) -> &AuditKey {
        &self.audit_key
    }

    /// The store (for shutdown).
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }
}

/// `n` random bytes as lowercase hex, for ids.
fn random_id(n: usize) -> crate::Result<String> {
    let mut bytes = vec![0u8; n];
    coffer_crypto::fill_random(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Seconds of a duration as i64, saturating.
fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}
