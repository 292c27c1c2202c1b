/// Why a cryptographic operation failed.
///
/// The variants say what kind of input was wrong, never anything about key material or
/// plaintext, so they are safe to log and to map to a status message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a Coffer ciphertext: too short, or an unknown format byte.
    #[error("malformed ciphertext: {0}")]
    Malformed(&'static str),
    /// Authentication failed: the ciphertext was changed, or the key, tenant, key name or
    /// encryption context differs from the one used to encrypt. Deliberately not more specific.
    #[error("decryption failed")]
    Decrypt,
    /// Key material of the wrong length.
    #[error("invalid key length: expected {expected} bytes, got {actual}")]
    KeyLength {
        /// The required length.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// A text-form ciphertext that does not parse.
    #[error("malformed text ciphertext: {0}")]
    Text(&'static str),
    /// The OS random number generator failed.
    #[error("the operating system's random number generator is unavailable")]
    Rng,
    /// A plaintext or associated data too large for AES-GCM.
    #[error("input too large to encrypt")]
    TooLarge,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
