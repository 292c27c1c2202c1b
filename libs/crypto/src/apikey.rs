//! The `mcp_sk_` API-key format:
//!
//! ```text
//! mcp_sk_{id}_{secret}{checksum}
//!        |    |       |
//!        |    |       +-- 6 base62 chars: CRC32 of everything before it
//!        |    +---------- 43 base62 chars: 256 random bits
//!        +--------------- 12 base62 chars: the public key id, for the database lookup
//! ```
//!
//! The checksum lets a malformed or mistyped key be refused before any database or bcrypt
//! work, and lets secret scanners recognise a leaked key with few false positives
//! (`mcp_sk_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}` plus the CRC). It is not a security boundary:
//! only the bcrypt check of the secret authenticates.

use std::fmt;

use zeroize::Zeroizing;

use crate::Result as CryptoResult;

/// The fixed prefix.
pub const PREFIX: &str = "mcp_sk_";
/// Length of the public id, in base62 characters.
pub const ID_LEN: usize = 12;
/// Length of the secret, in base62 characters (256 bits: 62^43 > 2^256).
pub const SECRET_LEN: usize = 43;
/// Length of the checksum, in base62 characters (62^6 > 2^32).
pub const CHECKSUM_LEN: usize = 6;
/// Length of a whole key.
pub const KEY_LEN: usize = PREFIX.len() + ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a string is not a well-formed API key. Never quotes the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    /// It does not start with `mcp_sk_`.
    #[error("an API key starts with mcp_sk_")]
    Prefix,
    /// It has the wrong length or shape.
    #[error("an API key is {KEY_LEN} characters: mcp_sk_, a 12-character id, _, 49 characters")]
    Length,
    /// A character outside `[0-9A-Za-z]` where base62 is expected.
    #[error("an API key holds only letters and digits after its prefix")]
    Character,
    /// The checksum does not match: a typo or a truncated copy.
    #[error("the API key's checksum does not match (mistyped or truncated?)")]
    Checksum,
}

/// The public id of an API key: safe to log, store and show.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiKeyId(String);

impl ApiKeyId {
    /// Validates an id on its own (for example from a URL path).
    ///
    /// # Errors
    /// [`ApiKeyError::Length`] or [`ApiKeyError::Character`].
    pub fn parse(id: &str) -> Result<Self, ApiKeyError> {
        if id.len() != ID_LEN {
            return Err(ApiKeyError::Length);
        }
        if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ApiKeyError::Character);
        }
        Ok(Self(id.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A whole, well-formed API key: a secret. `Debug` shows only the id; the key itself is
/// zeroized on drop and readable only through [`ApiKey::expose_secret`].
pub struct ApiKey {
    key: Zeroizing<String>,
    id: ApiKeyId,
}

impl ApiKey {
    /// Generates a key with a fresh random id and secret from the OS RNG.
    ///
    /// # Errors
    /// [`crate::Error::Rng`] if the OS generator is unavailable.
    pub fn generate() -> CryptoResult<Self> {
        let mut id_bytes = Zeroizing::new([0u8; 9]);
        crate::fill_random(id_bytes.as_mut())?;
        let id = ApiKeyId(base62_fixed(id_bytes.as_ref(), ID_LEN).to_string());
        Self::generate_with_id(&id)
    }

    /// Generates a fresh secret for an existing id (rolling a key keeps its id).
    ///
    /// # Errors
    /// [`crate::Error::Rng`] if the OS generator is unavailable.
    pub fn generate_with_id(id: &ApiKeyId) -> CryptoResult<Self> {
        let mut secret_bytes = Zeroizing::new([0u8; 32]);
        crate::fill_random(secret_bytes.as_mut())?;
        let id = id.as_str();
        let secret = base62_fixed(secret_bytes.as_ref(), SECRET_LEN);
        let mut key = Zeroizing::new(String::with_capacity(KEY_LEN));
        key.push_str(PREFIX);
        key.push_str(id);
        key.push('_');
        key.push_str(&secret);
        let checksum = checksum(&key);
        key.push_str(&checksum);
        Ok(Self {
            key,
            id: ApiKeyId(id.to_owned()),
        })
    }

    /// Parses and checks a presented key: prefix, shape, alphabet and checksum, in constant
    /// work per character and without touching any storage.
    ///
    /// # Errors
    /// [`ApiKeyError`] saying which check failed (never echoing the input).
    pub fn parse(presented: &str) -> Result<Self, ApiKeyError> {
        let rest = presented.strip_prefix(PREFIX).ok_or(ApiKeyError::Prefix)?;
        if presented.len() != KEY_LEN || rest.as_bytes().get(ID_LEN) != Some(&b'_') {
            return Err(ApiKeyError::Length);
        }
        let (id, body) = (&rest[..ID_LEN], &rest[ID_LEN + 1..]);
        if !id
            .bytes()
            .chain(body.bytes())
            .all(|b| b.is_ascii_alphanumeric())
        {
            return Err(ApiKeyError::Character);
        }
        let (signed, given) = presented.split_at(KEY_LEN - CHECKSUM_LEN);
        // The checksum is not secret, so a plain comparison is fine.
        if checksum(signed).as_str() != given {
            return Err(ApiKeyError::Checksum);
        }
        Ok(Self {
            key: Zeroizing::new(presented.to_owned()),
            id: ApiKeyId(id.to_owned()),
        })
    }

    /// The public id.
    pub fn id(&self) -> &ApiKeyId {
        &self.id
    }

    /// The secret part (secret and checksum), which is what gets bcrypt-hashed.
    pub fn expose_secret_part(&self) -> &str {
        &self.key[PREFIX.len() + ID_LEN + 1..]
    }

    /// The whole key. Show it once, at creation; never log it.
    pub fn expose_secret(&self) -> &str {
        &self.key
    }

    /// A display hint that identifies the key without revealing it: `mcp_sk_{id}_...{last 4}`.
    pub fn hint(&self) -> String {
        format!("{PREFIX}{}_...{}", self.id, &self.key[KEY_LEN - 4..])
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}, [REDACTED])", self.id)
    }
}

/// CRC32 (IEEE) of `text`, as 6 base62 characters.
fn checksum(text: &str) -> Zeroizing<String> {
    base62_fixed(
        &crc32fast::hash(text.as_bytes()).to_be_bytes(),
        CHECKSUM_LEN,
    )
}

/// `bytes` as a big-endian number in base62, left-padded with `0` to exactly `width` digits.
/// Callers pass widths that fit every value of their byte length.
fn base62_fixed(bytes: &[u8], width: usize) -> Zeroizing<String> {
    let mut number = Zeroizing::new(bytes.to_vec());
    let mut digits = Zeroizing::new(vec![b'0'; width]);
    for slot in digits.iter_mut().rev() {
        let mut remainder = 0u32;
        for byte in number.iter_mut() {
            let value = (remainder << 8) | u32::from(*byte);
            // value < 62 * 256, so the quotient fits in a byte.
            *byte = u8::try_from(value / 62).unwrap_or(u8::MAX);
            remainder = value % 62;
        }
        *slot = ALPHABET[remainder as usize];
    }
    Zeroizing::new(digits.iter().map(|&b| char::from(b)).collect())
}

#[cfg(test)]
mod tests;
