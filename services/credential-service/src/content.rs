//! What a credential holds: an environment map the server can read (and mask, validate,
//! reveal, hydrate), or a zero-knowledge entry the client encrypted, which the server only
//! stores (still under the credential's data key) and returns as is.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::env::Env;
use crate::error::reasons;
use crate::{Error, Result};

/// Largest opaque blob.
pub(crate) const MAX_BLOB_BYTES: usize = 65_536;
/// Most metadata entries of an opaque entry.
pub(crate) const MAX_METADATA_ENTRIES: usize = 32;

/// A credential's decrypted content.
#[derive(Debug)]
pub(crate) enum Content {
    /// Variables the server can read.
    Env(Env),
    /// A client-encrypted entry.
    Opaque(Opaque),
}

/// A client-encrypted entry and its metadata.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Opaque {
    /// The client's ciphertext.
    pub(crate) blob: Vec<u8>,
    /// The client's description of it.
    pub(crate) metadata: BTreeMap<String, String>,
}

impl std::fmt::Debug for Opaque {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opaque")
            .field("blob_len", &self.blob.len())
            .finish_non_exhaustive()
    }
}

impl Opaque {
    /// Validates sizes.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on `field`.
    pub(crate) fn parse(
        field: &'static str,
        blob: Vec<u8>,
        metadata: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let metadata: BTreeMap<String, String> = metadata.into_iter().collect();
        if blob.is_empty() || blob.len() > MAX_BLOB_BYTES {
            return Err(Error::invalid(
                field,
                format!("the blob must be 1 to {MAX_BLOB_BYTES} bytes"),
            ));
        }
        if metadata.len() > MAX_METADATA_ENTRIES
            || metadata
                .iter()
                .any(|(k, v)| k.is_empty() || k.len() > 128 || v.len() > 1024)
        {
            return Err(Error::invalid(
                field,
                format!(
                    "metadata: at most {MAX_METADATA_ENTRIES} entries, keys 1 to 128 bytes, values up to 1024"
                ),
            ));
        }
        Ok(Self { blob, metadata })
    }
}

/// What a credential row holds, as stored (`env`, `opaque`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContentKind {
    /// An environment map the server can mask, validate, reveal and hydrate.
    Env,
    /// A zero-knowledge entry, encrypted by the client.
    Opaque,
}

impl ContentKind {
    /// The stored form.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ContentKind::Env => "env",
            ContentKind::Opaque => "opaque",
        }
    }

    /// The kind a stored form names.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        [ContentKind::Env, ContentKind::Opaque]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

impl Content {
    /// The kind.
    pub(crate) fn kind(&self) -> ContentKind {
        match self {
            Content::Env(_) => ContentKind::Env,
            Content::Opaque(_) => ContentKind::Opaque,
        }
    }

    /// The form that gets encrypted.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if serialization fails.
    pub(crate) fn to_json(&self) -> Result<Zeroizing<Vec<u8>>> {
        match self {
            Content::Env(env) => env.to_json(),
            Content::Opaque(opaque) => {
                let value = serde_json::json!({ "blob": STANDARD.encode(&opaque.blob), "metadata": opaque.metadata });
                serde_json::to_vec(&value)
                    .map(Zeroizing::new)
                    .map_err(|_| Error::Corrupt("opaque entry"))
            }
        }
    }

    /// Parses the decrypted form of a row of `kind`.
    ///
    /// # Errors
    /// [`Error::Corrupt`].
    pub(crate) fn from_json(kind: ContentKind, bytes: &[u8]) -> Result<Self> {
        match kind {
            ContentKind::Env => Env::from_json(bytes).map(Content::Env),
            ContentKind::Opaque => {
                #[derive(serde::Deserialize)]
                struct Stored {
                    blob: String,
                    metadata: BTreeMap<String, String>,
                }
                let stored: Stored =
                    serde_json::from_slice(bytes).map_err(|_| Error::Corrupt("opaque entry"))?;
                let blob = STANDARD
                    .decode(stored.blob)
                    .map_err(|_| Error::Corrupt("opaque entry"))?;
                Ok(Content::Opaque(Opaque {
                    blob,
                    metadata: stored.metadata,
                }))
            }
        }
    }

    /// The environment, or FAILED_PRECONDITION for a zero-knowledge credential named `name`.
    ///
    /// # Errors
    /// [`Error::FailedPrecondition`].
    pub(crate) fn into_env(self, name: &str) -> Result<Env> {
        match self {
            Content::Env(env) => Ok(env),
            Content::Opaque(_) => Err(zero_knowledge(name)),
        }
    }
}

/// The answer to reading values of a zero-knowledge credential.
pub(crate) fn zero_knowledge(name: &str) -> Error {
    Error::FailedPrecondition(
        reasons::ZERO_KNOWLEDGE,
        format!(
            "{name} is a zero-knowledge credential: its values are encrypted by the client, so the \
         server cannot mask, validate, reveal or hydrate them"
        ),
    )
}
