//! Coffer's cryptographic building blocks. Bytes and keys only: no I/O, no async, no storage.
//!
//! - [`envelope`]: the self-describing ciphertext format
//!   `format | key version (u32 BE) | 96-bit nonce | ciphertext | 128-bit tag`, AES-256-GCM.
//! - [`aad`]: the canonical, unambiguous encoding of the associated data (tenant, key name,
//!   encryption context) that binds a ciphertext to where it belongs.
//! - [`keys`]: distinct zeroizing newtypes for each kind of key, so that the compiler refuses to
//!   wrap with the wrong one, and [`keys::RootKey::derive_kek`] (HKDF-SHA256).
//! - [`keyring`]: the root keyring (numbered root keys, the highest primary) and its text form.
//! - [`text`]: the operator text form `coffer:v{N}:{base64}`.
//! - [`apikey`]: the `mcp_sk_` API-key format with its CRC32 checksum.
//! - [`mask`]: masked display of secret values.
//! - [`sealed`]: libsodium sealed boxes (X25519, XSalsa20-Poly1305), as PyNaCl makes them.
//! - [`totp`]: time-based one-time passwords (RFC 6238), as authenticator apps make them.
//! - [`SecretBytes`]: decrypted plaintext, zeroized on drop, redacted in `Debug`.

pub mod aad;
pub mod apikey;
pub mod audit;
pub mod envelope;
mod error;
pub mod keyring;
pub mod keys;
pub mod mask;
pub mod sealed;
mod secret;
pub mod text;
pub mod totp;

pub use aad::Aad;
pub use envelope::Envelope;
pub use error::{Error, Result};
pub use keyring::{KeyringError, RootKeyring};
pub use keys::{AuditKey, DataKey, Kek, KeyCheckValue, RootKey, TenantKey};
pub use secret::SecretBytes;

/// Fills `buf` from the operating system's random number generator.
///
/// # Errors
/// [`Error::Rng`] if the OS generator is unavailable; callers must fail closed.
pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|_| Error::Rng)
}
