use zeroize::Zeroizing;

/// Secret bytes (a decrypted plaintext or a data key handed to a caller): zeroized on drop,
/// `[REDACTED]` in `Debug`, readable only through [`SecretBytes::expose_secret`].
///
/// No `Clone`, `PartialEq` or `Display`: copies and variable-time comparisons of secrets must be
/// deliberate.
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `bytes`; they are zeroized when the value is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret bytes. Call it only where the plaintext is needed, never to log it.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Moves the bytes out, for handing them to an API that takes a `Vec<u8>` (for example a
    /// protobuf message). The caller takes over the duty to zeroize.
    pub fn into_inner(mut self) -> Vec<u8> {
        std::mem::take(&mut *self.0)
    }

    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes([REDACTED; {}])", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_bytes() {
        let secret = SecretBytes::new(b"hunter2-hunter2".to_vec());
        let printed = format!("{secret:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("REDACTED"));
    }
}
