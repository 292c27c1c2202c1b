//! Envelope cryptography with tenant keys: Encrypt, Decrypt, Rewrap, GenerateDataKey, batches.
//!
//! Data ciphertexts are bound to `coffer/data/v1`, the tenant, the key id and the encryption
//! context, so they decrypt only under the same tenant, key and context.

use coffer_crypto::{Aad, DataKey, SecretBytes, envelope};

use super::Kms;
use crate::error::reasons;
use crate::names::{EncryptionContext, KeyName};
use crate::store::KeyRecord;
use crate::{Error, Result};

/// A decrypted plaintext and the key version that had encrypted it.
#[derive(Debug)]
pub(crate) struct Decrypted {
    /// The plaintext; zeroized on drop.
    pub(crate) plaintext: SecretBytes,
    /// The version the ciphertext named.
    pub(crate) key_version: u32,
}

/// A ciphertext moved to the primary version.
#[derive(Debug)]
pub(crate) struct Rewrapped {
    /// The new ciphertext.
    pub(crate) ciphertext: Vec<u8>,
    /// The primary version that made it.
    pub(crate) key_version: u32,
    /// The version of the input ciphertext.
    pub(crate) source_key_version: u32,
}

/// A generated data key.
#[derive(Debug)]
pub(crate) struct DataKeyOutcome {
    /// The data key, unless only the wrapped form was asked for.
    pub(crate) plaintext: Option<DataKey>,
    /// The data key wrapped under `key_version`.
    pub(crate) ciphertext: Vec<u8>,
    /// The wrapping version.
    pub(crate) key_version: u32,
}

/// One item of a batch, parsed (or refused) at the API edge.
pub(crate) type BatchInput = Result<(EncryptionContext, Vec<u8>)>;

impl Kms {
    /// Encrypts under the primary version, or `version` if given.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on `key_version` above the primary; [`Error::FailedPrecondition`]
    /// below `min_encryption_version` or for an unusable key; [`Error::NotFound`].
    pub(crate) async fn encrypt(
        &self,
        name: &KeyName,
        context: &EncryptionContext,
        plaintext: &[u8],
        version: Option<u32>,
    ) -> Result<(Vec<u8>, u32)> {
        let record = self.enabled_record(name).await?;
        let version = version.unwrap_or(record.primary_version);
        if version == 0 || version > record.primary_version {
            return Err(Error::invalid(
                "key_version",
                format!(
                    "must be between 1 and the primary version ({})",
                    record.primary_version
                ),
            ));
        }
        if version < record.min_encryption_version {
            return Err(Error::FailedPrecondition(
                reasons::VERSION_RETIRED,
                format!(
                    "key version {version} is below min_encryption_version ({})",
                    record.min_encryption_version
                ),
            ));
        }
        let key = self.tenant_key(name, version).await?;
        let ciphertext = envelope::seal(&*key, version, &data_aad(name, context), plaintext)
            .map_err(Error::Crypto)?;
        Ok((ciphertext, version))
    }

    /// Generates a 256-bit data key and wraps it under the primary version.
    ///
    /// # Errors
    /// As [`Kms::encrypt`].
    pub(crate) async fn generate_data_key(
        &self,
        name: &KeyName,
        context: &EncryptionContext,
        wrapped_only: bool,
    ) -> Result<DataKeyOutcome> {
        let data_key = DataKey::generate().map_err(Error::Crypto)?;
        let (ciphertext, key_version) = self
            .encrypt(name, context, data_key.expose_secret(), None)
            .await?;
        Ok(DataKeyOutcome {
            plaintext: (!wrapped_only).then_some(data_key),
            ciphertext,
            key_version,
        })
    }

    /// Decrypts a ciphertext of `name` made with `context`.
    ///
    /// # Errors
    /// [`Error::Undecryptable`] for anything that does not authenticate;
    /// [`Error::FailedPrecondition`] for a retired version or an unusable key.
    pub(crate) async fn decrypt(
        &self,
        name: &KeyName,
        context: &EncryptionContext,
        ciphertext: &[u8],
    ) -> Result<Decrypted> {
        let record = self.enabled_record(name).await?;
        self.decrypt_with(&record, context, ciphertext).await
    }

    /// Moves a ciphertext to the primary version without revealing its plaintext.
    ///
    /// # Errors
    /// As [`Kms::decrypt`].
    pub(crate) async fn rewrap(
        &self,
        name: &KeyName,
        context: &EncryptionContext,
        ciphertext: &[u8],
    ) -> Result<Rewrapped> {
        let record = self.enabled_record(name).await?;
        self.rewrap_with(&record, context, ciphertext).await
    }

    /// Decrypts each item on its own; fails as a whole only if the key is unusable.
    ///
    /// # Errors
    /// [`Error::NotFound`] or [`Error::FailedPrecondition`] for the key itself.
    pub(crate) async fn batch_decrypt(
        &self,
        name: &KeyName,
        items: Vec<BatchInput>,
    ) -> Result<Vec<Result<Decrypted>>> {
        let record = self.enabled_record(name).await?;
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            results.push(match item {
                Ok((context, ciphertext)) => {
                    self.decrypt_with(&record, &context, &ciphertext).await
                }
                Err(error) => Err(error),
            });
        }
        Ok(results)
    }

    /// Re-wraps each item on its own; fails as a whole only if the key is unusable.
    ///
    /// # Errors
    /// [`Error::NotFound`] or [`Error::FailedPrecondition`] for the key itself.
    pub(crate) async fn batch_rewrap(
        &self,
        name: &KeyName,
        items: Vec<BatchInput>,
    ) -> Result<Vec<Result<Rewrapped>>> {
        let record = self.enabled_record(name).await?;
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            results.push(match item {
                Ok((context, ciphertext)) => self.rewrap_with(&record, &context, &ciphertext).await,
                Err(error) => Err(error),
            });
        }
        Ok(results)
    }

    async fn decrypt_with(
        &self,
        record: &KeyRecord,
        context: &EncryptionContext,
        ciphertext: &[u8],
    ) -> Result<Decrypted> {
        let name = &record.name;
        let parsed = envelope::Envelope::parse(ciphertext).map_err(|_| self.undecryptable(name))?;
        let version = parsed.key_version();
        if version == 0 || version > record.primary_version {
            return Err(self.undecryptable(name));
        }
        if version < record.min_decryption_version {
            return Err(Error::FailedPrecondition(
                reasons::VERSION_RETIRED,
                format!(
                    "key version {version} is retired: min_decryption_version is {}",
                    record.min_decryption_version
                ),
            ));
        }
        let key = self.tenant_key(name, version).await?;
        let plaintext = parsed
            .open(&*key, &data_aad(name, context))
            .map_err(|_| self.undecryptable(name))?;
        Ok(Decrypted {
            plaintext,
            key_version: version,
        })
    }

    async fn rewrap_with(
        &self,
        record: &KeyRecord,
        context: &EncryptionContext,
        ciphertext: &[u8],
    ) -> Result<Rewrapped> {
        let decrypted = self.decrypt_with(record, context, ciphertext).await?;
        let key_version = record.primary_version;
        let key = self.tenant_key(&record.name, key_version).await?;
        let ciphertext = envelope::seal(
            &*key,
            key_version,
            &data_aad(&record.name, context),
            decrypted.plaintext.expose_secret(),
        )
        .map_err(Error::Crypto)?;
        Ok(Rewrapped {
            ciphertext,
            key_version,
            source_key_version: decrypted.key_version,
        })
    }
}

/// The AAD of data ciphertexts and wrapped data keys.
fn data_aad(name: &KeyName, context: &EncryptionContext) -> Aad {
    Aad::new("coffer/data/v1")
        .field(name.tenant().as_str().as_bytes())
        .field(name.id().as_bytes())
        .context(context.entries())
}
