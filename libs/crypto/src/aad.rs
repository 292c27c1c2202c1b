//! Canonical associated data (AAD).
//!
//! Everything a ciphertext must be bound to (a purpose label, the tenant, the key name, the key
//! version, the caller's encryption context) is encoded into one byte string that AES-GCM
//! authenticates. The encoding is injective: every field is length-prefixed (u32 big-endian), and
//! the encryption context is sorted by key and prefixed with its entry count. So `{"a": "bc"}`
//! and `{"ab": "c"}` encode differently, and the order in which a caller lists the context
//! entries does not matter — as AWS KMS treats its encryption context.

/// An encoded AAD. Build it with [`Aad::new`] and the chained `field`/`context` methods.
#[derive(Clone, PartialEq, Eq)]
pub struct Aad(Vec<u8>);

impl Aad {
    /// Starts an AAD with a purpose label (domain separation), e.g. `"coffer/data/v1"`.
    pub fn new(purpose: &str) -> Self {
        Self(Vec::with_capacity(128)).field(purpose.as_bytes())
    }

    /// Appends one length-prefixed field.
    pub fn field(mut self, value: &[u8]) -> Self {
        push_len(&mut self.0, value.len());
        self.0.extend_from_slice(value);
        self
    }

    /// Appends an encryption context: the entry count, then each key and value
    /// (length-prefixed) in byte order of the keys. Duplicate keys are kept in input order; a
    /// map has none.
    pub fn context<'a, I, K, V>(mut self, entries: I) -> Self
    where
        I: IntoIterator<Item = (&'a K, &'a V)>,
        K: AsRef<str> + ?Sized + 'a,
        V: AsRef<str> + ?Sized + 'a,
    {
        let mut sorted: Vec<(&str, &str)> = entries
            .into_iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        push_len(&mut self.0, sorted.len());
        for (key, value) in sorted {
            self = self.field(key.as_bytes()).field(value.as_bytes());
        }
        self
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Aad {
    // The AAD holds no secret, but it may hold caller metadata: print only its size.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Aad({} bytes)", self.0.len())
    }
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    // Inputs are bounded far below 4 GiB by every caller; saturating keeps the encoding total.
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn context_order_does_not_matter() {
        let a: HashMap<&str, &str> = [("x", "1"), ("y", "2"), ("z", "3")].into();
        let b: BTreeMap<&str, &str> = [("z", "3"), ("x", "1"), ("y", "2")].into();
        assert_eq!(Aad::new("p").context(&a), Aad::new("p").context(&b));
    }

    #[test]
    fn shifting_bytes_between_key_and_value_changes_the_encoding() {
        let a: BTreeMap<&str, &str> = [("a", "bc")].into();
        let b: BTreeMap<&str, &str> = [("ab", "c")].into();
        assert_ne!(Aad::new("p").context(&a), Aad::new("p").context(&b));
    }

    #[test]
    fn splitting_fields_differently_changes_the_encoding() {
        assert_ne!(
            Aad::new("p").field(b"ab").field(b"c"),
            Aad::new("p").field(b"a").field(b"bc")
        );
        assert_ne!(Aad::new("p").field(b""), Aad::new("p"));
    }

    proptest! {
        #[test]
        fn distinct_contexts_encode_distinctly(
            a in proptest::collection::btree_map(".{0,6}", ".{0,6}", 0..4),
            b in proptest::collection::btree_map(".{0,6}", ".{0,6}", 0..4),
        ) {
            let encoded_a = Aad::new("p").context(&a);
            let encoded_b = Aad::new("p").context(&b);
            prop_assert_eq!(a == b, encoded_a == encoded_b);
        }
    }
}
