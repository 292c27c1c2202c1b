//! libsodium sealed boxes (`crypto_box_seal`): X25519 + XSalsa20-Poly1305, the format PyNaCl's
//! `SealedBox` and libsodium.js produce, so a client can encrypt a secret to the server's
//! public key and no one in between (not even a TLS-terminating gateway) sees it.
//!
//! Layout: `ephemeral public key (32) | XSalsa20-Poly1305(message) (len + 16)`, the nonce being
//! BLAKE2b(ephemeral public key || recipient public key).

use crypto_box::aead::OsRng;
use crypto_box::{PublicKey, SecretKey};
use curve25519_dalek::montgomery::MontgomeryPoint;
use zeroize::Zeroizing;

use crate::SecretBytes;

/// X25519 key length.
pub const KEY_LEN: usize = 32;
/// What a sealed box adds to its message: the ephemeral key and the tag.
pub const OVERHEAD: usize = KEY_LEN + 16;

/// Why a sealed box could not be opened. Never quotes the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Shorter than the 48 bytes every sealed box has.
    #[error("a sealed box is at least 48 bytes")]
    TooShort,
    /// The ephemeral key is a low-order point (the shared secret would be all zeros):
    /// libsodium refuses these, and so do we.
    #[error("the sealed box's ephemeral key is invalid")]
    WeakKey,
    /// Authentication failed: sealed to another key, or altered.
    #[error("the sealed box does not open with this key")]
    Decrypt,
    /// Sealing failed (RNG).
    #[error("sealing failed")]
    Seal,
}

/// A sealing key pair, held in memory only. `Debug` shows only the public key.
pub struct SealingKeyPair {
    secret: SecretKey,
    secret_bytes: Zeroizing<[u8; KEY_LEN]>,
    public: [u8; KEY_LEN],
}

impl SealingKeyPair {
    /// Generates a key pair from the OS RNG.
    ///
    /// # Errors
    /// [`crate::Error::Rng`] if the generator is unavailable.
    pub fn generate() -> crate::Result<Self> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        crate::fill_random(bytes.as_mut())?;
        let secret = SecretKey::from_bytes(*bytes);
        let public = *secret.public_key().as_bytes();
        Ok(Self {
            secret,
            secret_bytes: bytes,
            public,
        })
    }

    /// The public key clients seal to.
    pub fn public_key(&self) -> &[u8; KEY_LEN] {
        &self.public
    }

    /// Opens a sealed box.
    ///
    /// # Errors
    /// [`SealError`] saying which check failed.
    pub fn open(&self, sealed: &[u8]) -> Result<SecretBytes, SealError> {
        if sealed.len() < OVERHEAD {
            return Err(SealError::TooShort);
        }
        let mut ephemeral = [0u8; KEY_LEN];
        ephemeral.copy_from_slice(&sealed[..KEY_LEN]);
        let shared = Zeroizing::new(MontgomeryPoint(ephemeral).mul_clamped(*self.secret_bytes).0);
        if shared.iter().all(|b| *b == 0) {
            return Err(SealError::WeakKey);
        }
        self.secret
            .unseal(sealed)
            .map(SecretBytes::new)
            .map_err(|_| SealError::Decrypt)
    }
}

impl std::fmt::Debug for SealingKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealingKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// Seals `message` to `public_key` (what a client does; the CLI's `coffer seal`).
///
/// # Errors
/// [`SealError::Seal`] if the OS RNG fails.
pub fn seal(public_key: &[u8; KEY_LEN], message: &[u8]) -> Result<Vec<u8>, SealError> {
    PublicKey::from_bytes(*public_key)
        .seal(&mut OsRng, message)
        .map_err(|_| SealError::Seal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_boxes_open_only_with_their_key_and_unchanged() {
        let pair = SealingKeyPair::generate().unwrap();
        let sealed = seal(pair.public_key(), b"sk-live-123").unwrap();
        assert_eq!(sealed.len(), OVERHEAD + 11);
        assert_eq!(pair.open(&sealed).unwrap().expose_secret(), b"sk-live-123");
        let other = SealingKeyPair::generate().unwrap();
        assert_eq!(other.open(&sealed).unwrap_err(), SealError::Decrypt);
        for index in [0, 31, 32, 47, sealed.len() - 1] {
            let mut altered = sealed.clone();
            altered[index] ^= 1;
            assert!(pair.open(&altered).is_err(), "byte {index}");
        }
        assert_eq!(pair.open(&sealed[..47]).unwrap_err(), SealError::TooShort);
        assert!(!format!("{pair:?}").contains("secret_bytes"));
    }

    #[test]
    fn low_order_ephemeral_keys_are_refused() {
        let pair = SealingKeyPair::generate().unwrap();
        // 0 and 1 are low-order points on Curve25519: the shared secret is all zeros.
        for low_order in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            let mut sealed = low_order.to_vec();
            sealed.extend_from_slice(&[0u8; 20]);
            assert_eq!(pair.open(&sealed).unwrap_err(), SealError::WeakKey);
        }
    }
}
