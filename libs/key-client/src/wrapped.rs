//! A key made once as a key-service data key, stored only wrapped, and unwrapped through
//! key-service when loaded (the services' audit keys): every replica ends up with the same
//! stored key, even when several make one at the same moment.

use std::future::Future;

use coffer_crypto::SecretBytes;

use crate::{Ciphertext, Context, KeyClient};

/// Where the wrapped key is stored (a row in the service's own database).
pub trait WrappedKeyStore {
    /// The service's error type, which a key-service error converts into.
    type Error: From<crate::Error>;

    /// The stored wrapped key, if any.
    fn load(&self) -> impl Future<Output = Result<Option<Vec<u8>>, Self::Error>> + Send;

    /// Stores `wrapped` unless a key is stored already (the first writer wins).
    fn insert(&self, wrapped: &[u8]) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// The key stored in `store`, made on first use as a data key of the key-service key `name`
/// (created if missing, never deletable) bound to `context`.
///
/// # Errors
/// The store's error, or a key-service [`crate::Error`] converted into it (fail closed:
/// without key-service there is no key).
pub async fn load_or_create<S: WrappedKeyStore + Sync>(
    client: &KeyClient,
    store: &S,
    name: &str,
    context: &Context,
) -> Result<SecretBytes, S::Error> {
    if let Some(wrapped) = store.load().await? {
        return unwrap(client, name, &wrapped, context).await;
    }
    client.ensure_key(name, false).await?;
    let generated = client.generate_data_key(name, context.clone()).await?;
    store.insert(&generated.wrapped).await?;
    // Another replica may have stored its key first: every replica uses the stored one.
    match store.load().await? {
        Some(stored) if stored == generated.wrapped => Ok(generated.plaintext),
        Some(stored) => unwrap(client, name, &stored, context).await,
        None => Err(crate::Error::Rejected(tonic::Status::internal(
            "the stored wrapped key vanished",
        ))
        .into()),
    }
}

async fn unwrap<E: From<crate::Error>>(
    client: &KeyClient,
    name: &str,
    wrapped: &[u8],
    context: &Context,
) -> Result<SecretBytes, E> {
    Ok(client
        .decrypt(name, Ciphertext::Binary(wrapped), context.clone())
        .await?)
}
