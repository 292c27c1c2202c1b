//! Root key rotation: re-wrap every stored tenant key version under the primary root key.

use coffer_crypto::envelope;

use super::{Kms, version_aad};
use crate::store::StoredVersion;
use crate::{Error, Result};

/// Versions re-wrapped per database round trip.
const BATCH: u32 = 256;

impl Kms {
    /// Re-wraps every version not yet under the primary root key. Idempotent and resumable:
    /// each version is replaced with a compare-and-set, so concurrent runs or a run cut short
    /// leave every version wrapped under one root key or the other, never lost.
    /// Returns the primary root version and how many versions this call re-wrapped.
    ///
    /// # Errors
    /// [`Error::RootKeyMissing`] if a version is wrapped under a root key not in the keyring;
    /// [`Error::Crypto`] if stored material fails to authenticate; [`Error::Database`].
    pub async fn rotate_root_key(&self) -> Result<(u32, u64)> {
        let (primary_version, primary) = self.keyring.primary();
        let mut rewrapped = 0u64;
        loop {
            let rows = self
                .store
                .versions_not_under(primary_version, BATCH)
                .await?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                let old_root = self
                    .keyring
                    .get(row.stored.root_version)
                    .ok_or(Error::RootKeyMissing(row.stored.root_version))?;
                let aad = version_aad(&row.name, row.version);
                let material = envelope::Envelope::parse(&row.stored.wrapped)
                    .and_then(|w| w.open(&old_root.derive_kek(row.name.tenant()), &aad))
                    .map_err(Error::Crypto)?;
                let wrapped = envelope::seal(
                    &primary.derive_kek(row.name.tenant()),
                    primary_version,
                    &aad,
                    material.expose_secret(),
                )
                .map_err(Error::Crypto)?;
                let new = StoredVersion {
                    root_version: primary_version,
                    wrapped,
                };
                // A lost compare-and-set means a concurrent run re-wrapped the version or the
                // key was destroyed; either way the next page no longer lists it.
                if self.store.rewrap_version(&row, &new).await? {
                    rewrapped += 1;
                }
            }
        }
        self.cache.clear();
        tracing::info!(primary_version, rewrapped, "root key rotation complete");
        Ok((primary_version, rewrapped))
    }

    /// Checks at start-up that every stored version's root key is in the keyring, so a
    /// missing root key is found before serving rather than on some later request.
    ///
    /// # Errors
    /// [`Error::RootKeyMissing`] naming the first missing version; [`Error::Database`].
    pub async fn check_root_keys(&self) -> Result<()> {
        for version in self.store.root_versions_in_use().await? {
            if !self.keyring.contains(version) {
                return Err(Error::RootKeyMissing(version));
            }
        }
        Ok(())
    }
}
