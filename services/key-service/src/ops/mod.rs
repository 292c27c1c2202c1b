//! The key-service operations. They take validated inputs (see [`crate::names`]) and return
//! domain values; [`crate::api`] translates to and from protobuf.

mod crypto;
mod deletion;
mod keys;
mod root;

use std::sync::Arc;
use std::time::Duration;

use coffer_crypto::{Aad, TenantKey, envelope};

pub(crate) use crypto::{BatchInput, Decrypted, Rewrapped};
pub(crate) use keys::PolicyUpdate;

use crate::cache::KeyCache;
use crate::error::reasons;
use crate::names::KeyName;
use crate::store::{KeyRecord, KeyState, Store, StoredVersion};
use crate::{Error, Result};
use coffer_crypto::RootKeyring;
use coffer_server::Clock;
use coffer_server::metrics::{Counter, Registry};
use coffer_server::throttle::Throttle;

/// The KMS: storage, root keyring, cache and clock, shared by every request.
pub(crate) struct Kms {
    store: Store,
    keyring: RootKeyring,
    cache: KeyCache,
    clock: Clock,
    deletion_waiting_period: Duration,
    decrypt_failures: DecryptFailures,
}

/// Failed decryptions: counted in `coffer_key_decrypt_failures`, logged at most once per
/// [`DECRYPT_FAILURE_LOG_INTERVAL`] with the count left out, so a caller sending garbage
/// cannot flood the log.
struct DecryptFailures {
    count: Counter,
    log: Throttle,
}

/// At most one WARN line about failed decryptions per this interval.
pub(crate) const DECRYPT_FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

impl Kms {
    /// Assembles the KMS.
    pub(crate) fn new(
        store: Store,
        keyring: RootKeyring,
        cache: KeyCache,
        clock: Clock,
        deletion_waiting_period: Duration,
        registry: &mut Registry,
    ) -> Self {
        let count = Counter::default();
        registry.register(
            "coffer_key_decrypt_failures",
            "Decrypt, Rewrap and batch items refused because the ciphertext does not authenticate",
            count.clone(),
        );
        Self {
            store,
            keyring,
            cache,
            clock,
            deletion_waiting_period,
            decrypt_failures: DecryptFailures {
                count,
                log: Throttle::new(DECRYPT_FAILURE_LOG_INTERVAL),
            },
        }
    }

    /// Counts and (at a bounded rate) logs a failed decryption, never its input, and returns
    /// the client error.
    fn undecryptable(&self, name: &KeyName) -> Error {
        self.decrypt_failures.count.inc();
        if let Some(suppressed) = self.decrypt_failures.log.admit() {
            tracing::warn!(key = %name, suppressed, "decryption failed (suppressed: failures since the last such line)");
        }
        Error::Undecryptable
    }

    /// The store (for shutdown).
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Loads a key's record, destroying it first if its deletion waiting period is over.
    async fn record(&self, name: &KeyName) -> Result<KeyRecord> {
        let record = self
            .store
            .key(name)
            .await?
            .ok_or_else(|| Error::NotFound(name.to_string()))?;
        let due = record.state == KeyState::PendingDeletion
            && record.destroy_time.is_some_and(|t| t <= self.clock.now());
        if due {
            self.destroy_if_due(name).await
        } else {
            Ok(record)
        }
    }

    /// Loads a key that must be enabled to be used for cryptography.
    async fn enabled_record(&self, name: &KeyName) -> Result<KeyRecord> {
        let record = self.record(name).await?;
        keys::require_enabled(&record)?;
        Ok(record)
    }

    /// The unwrapped material of one version, from the cache or the store.
    async fn tenant_key(&self, name: &KeyName, version: u32) -> Result<Arc<TenantKey>> {
        if let Some(key) = self.cache.get(name, version) {
            return Ok(key);
        }
        let stored = self.store.version(name, version).await?.ok_or_else(|| {
            Error::FailedPrecondition(
                reasons::VERSION_DESTROYED,
                format!("version {version} of key {name} is destroyed"),
            )
        })?;
        let root = self
            .keyring
            .get(stored.root_version)
            .ok_or(Error::RootKeyMissing(stored.root_version))?;
        let kek = root.derive_kek(name.tenant().as_str());
        let material = envelope::Envelope::parse(&stored.wrapped)
            .and_then(|wrapped| wrapped.open(&kek, &version_aad(name, version)))
            .map_err(|_| Error::StoredVersionCorrupt(name.to_string(), version))?;
        let key = Arc::new(TenantKey::from_bytes(material.expose_secret()).map_err(Error::Crypto)?);
        self.cache.insert(name, version, Arc::clone(&key));
        Ok(key)
    }

    /// Generates the material of a new version and wraps it under the primary root key.
    fn new_version(&self, name: &KeyName, version: u32) -> Result<StoredVersion> {
        let material = TenantKey::generate().map_err(Error::Crypto)?;
        let (root_version, root) = self.keyring.primary();
        let wrapped = envelope::seal(
            &root.derive_kek(name.tenant().as_str()),
            root_version,
            &version_aad(name, version),
            material.expose_secret(),
        )
        .map_err(Error::Crypto)?;
        Ok(StoredVersion {
            root_version,
            wrapped,
        })
    }
}

/// The AAD that binds a wrapped version to its tenant, key and version number.
fn version_aad(name: &KeyName, version: u32) -> Aad {
    Aad::new("coffer/key-version/v1")
        .field(name.tenant().as_str().as_bytes())
        .field(name.id().as_bytes())
        .field(&version.to_be_bytes())
}
