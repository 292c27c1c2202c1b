//! The Coffer ciphertext format:
//!
//! ```text
//! format (1 byte) | key version (u32 BE) | nonce (12 bytes) | ciphertext | tag (16 bytes)
//! ```
//!
//! AES-256-GCM with a random 96-bit nonce from the OS RNG. The 5-byte header (format and key
//! version) is authenticated together with the caller's [`Aad`], so neither can be changed
//! without decryption failing. The format is self-describing: the key version travels with the
//! ciphertext, so rotation needs no lookup table.

use aes_gcm::Nonce;
use aes_gcm::aead::{Aead as _, Payload};

use crate::keys::AeadKey;
use crate::{Aad, Error, Result, SecretBytes};

/// The format byte of AES-256-GCM envelopes, version 1.
pub const FORMAT_AES256_GCM_V1: u8 = 0x01;
/// Nonce length in bytes (96 bits).
pub const NONCE_LEN: usize = 12;
/// Authentication tag length in bytes (128 bits).
pub const TAG_LEN: usize = 16;
/// Length of the format byte and key version.
pub const HEADER_LEN: usize = 1 + 4;
/// The size an envelope adds to its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

/// A parsed, not yet authenticated, envelope borrowing the bytes it was parsed from.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    key_version: u32,
    header: &'a [u8],
    nonce: &'a [u8],
    sealed: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Splits `bytes` into header, nonce and sealed body. Nothing is authenticated yet: the key
    /// version it reports is only a hint for choosing the key until [`Envelope::open`] succeeds.
    ///
    /// # Errors
    /// [`Error::Malformed`] if `bytes` is shorter than [`OVERHEAD`] or has an unknown format.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        if bytes.len() < OVERHEAD {
            return Err(Error::Malformed("too short"));
        }
        let (header, rest) = bytes.split_at(HEADER_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        if header[0] != FORMAT_AES256_GCM_V1 {
            return Err(Error::Malformed("unknown format"));
        }
        let key_version = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        Ok(Self {
            key_version,
            header,
            nonce,
            sealed,
        })
    }

    /// The key version named in the header.
    pub fn key_version(&self) -> u32 {
        self.key_version
    }

    /// Authenticates and decrypts.
    ///
    /// # Errors
    /// [`Error::Decrypt`] if any byte was changed or `key`/`aad` differ from encryption.
    pub fn open(&self, key: &impl AeadKey, aad: &Aad) -> Result<SecretBytes> {
        let full_aad = full_aad(self.header, aad);
        key.cipher()
            .decrypt(
                Nonce::from_slice(self.nonce),
                Payload {
                    msg: self.sealed,
                    aad: &full_aad,
                },
            )
            .map(SecretBytes::new)
            .map_err(|_| Error::Decrypt)
    }
}

/// Encrypts `plaintext` under `key`, labelled as `key_version`, bound to `aad`, with a fresh
/// random nonce.
///
/// # Errors
/// [`Error::Rng`] if no nonce can be drawn; [`Error::TooLarge`] beyond AES-GCM's limits.
pub fn seal(key: &impl AeadKey, key_version: u32, aad: &Aad, plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    crate::fill_random(&mut nonce)?;
    seal_with_nonce(key, key_version, aad, plaintext, &nonce)
}

/// [`seal`] with a caller-chosen nonce: only for known-answer tests, never public.
pub(crate) fn seal_with_nonce(
    key: &impl AeadKey,
    key_version: u32,
    aad: &Aad,
    plaintext: &[u8],
    nonce: &[u8; NONCE_LEN],
) -> Result<Vec<u8>> {
    let mut header = [0u8; HEADER_LEN];
    header[0] = FORMAT_AES256_GCM_V1;
    header[1..].copy_from_slice(&key_version.to_be_bytes());
    let full_aad = full_aad(&header, aad);
    let sealed = key
        .cipher()
        .encrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: plaintext,
                aad: &full_aad,
            },
        )
        .map_err(|_| Error::TooLarge)?;
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn full_aad(header: &[u8], aad: &Aad) -> Vec<u8> {
    let mut full = Vec::with_capacity(header.len() + aad.as_bytes().len());
    full.extend_from_slice(header);
    full.extend_from_slice(aad.as_bytes());
    full
}

#[cfg(test)]
mod tests;
