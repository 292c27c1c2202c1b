//! Root key rotation: re-wrap every stored tenant key version under the primary root key.

use coffer_crypto::{KeyCheckValue, envelope};

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
    /// [`Error::StoredVersionCorrupt`] if stored material fails to authenticate; [`Error::Database`].
    pub(crate) async fn rotate_root_key(&self) -> Result<(u32, u64)> {
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
                    .and_then(|w| w.open(&old_root.derive_kek(row.name.tenant().as_str()), &aad))
                    .map_err(|_| Error::StoredVersionCorrupt(row.name.to_string(), row.version))?;
                let wrapped = envelope::seal(
                    &primary.derive_kek(row.name.tenant().as_str()),
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

    /// Checks at start-up that the keyring is the one the data was wrapped under, before
    /// anything is written:
    /// - every configured root version with a stored check value must match it (a wrong key
    ///   with a known version number is refused: [`Error::RootKeyMismatch`]);
    /// - every root version that wraps stored versions must be configured
    ///   ([`Error::RootKeyMissing`]);
    /// - a configured version without a check value (a new version, or a database from
    ///   before check values) must open a version it wrapped, if there is one; only then,
    ///   after every configured key has passed, are the missing check values recorded.
    ///
    /// # Errors
    /// [`Error::RootKeyMismatch`] or [`Error::RootKeyMissing`] naming the version;
    /// [`Error::Database`].
    pub(crate) async fn check_root_keys(&self) -> Result<()> {
        let mut unrecorded = Vec::new();
        for (version, key) in self.keyring.versions() {
            let expected = key.check_value(version);
            match self.store.root_key_check(version).await? {
                Some(stored) => {
                    let stored = KeyCheckValue::from_bytes(&stored)
                        .map_err(|_| Error::RootKeyMismatch(version))?;
                    if !stored.matches(&expected) {
                        return Err(Error::RootKeyMismatch(version));
                    }
                }
                None => {
                    if let Some(row) = self.store.a_version_under(version).await? {
                        let aad = version_aad(&row.name, row.version);
                        let opened = envelope::Envelope::parse(&row.stored.wrapped).and_then(|w| {
                            w.open(&key.derive_kek(row.name.tenant().as_str()), &aad)
                        });
                        if opened.is_err() {
                            return Err(Error::RootKeyMismatch(version));
                        }
                    }
                    unrecorded.push((version, expected));
                }
            }
        }
        for version in self.store.root_versions_in_use().await? {
            if !self.keyring.contains(version) {
                return Err(Error::RootKeyMissing(version));
            }
        }
        let now = self.clock.now();
        for (version, expected) in unrecorded {
            self.store
                .insert_root_key_check(version, expected.as_bytes(), now)
                .await?;
            // Another replica may have recorded its own key for this version meanwhile.
            let stored = self.store.root_key_check(version).await?;
            let agreed = stored
                .and_then(|s| KeyCheckValue::from_bytes(&s).ok())
                .is_some_and(|s| s.matches(&expected));
            if !agreed {
                return Err(Error::RootKeyMismatch(version));
            }
        }
        Ok(())
    }
}
