//! The root keyring: numbered 256-bit root keys, the highest being primary.
//!
//! Text form (the `COFFER_ROOT_KEYS` variable or a key file): entries `{version}:{base64}`
//! separated by commas or whitespace, e.g. `1:q83v...=,2:Zm9v...=`. Versions are positive and
//! unique; each key decodes to exactly 32 bytes. New tenant key versions are wrapped under the
//! primary (highest) version; older versions stay to unwrap what they wrapped until
//! RotateRootKey has moved everything to the primary.

use std::collections::BTreeMap;

use crate::RootKey;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

/// A parsed root keyring: a primary (highest) version and any older ones.
pub struct RootKeyring {
    primary_version: u32,
    primary: RootKey,
    older: BTreeMap<u32, RootKey>,
}

/// Why a keyring text was refused. Never quotes key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// No entries at all.
    #[error("the root keyring is empty")]
    Empty,
    /// An entry without `{version}:`.
    #[error("entry {0}: expected {{version}}:{{base64 key}}")]
    Syntax(usize),
    /// A version that is not a positive integer.
    #[error("entry {0}: the version must be a positive integer")]
    Version(usize),
    /// A version listed twice.
    #[error("root key version {0} appears twice")]
    Duplicate(u32),
    /// A key that is not base64 of 32 bytes.
    #[error("root key version {0}: must be base64 of exactly 32 bytes")]
    Key(u32),
}

impl RootKeyring {
    /// Parses the text form.
    ///
    /// # Errors
    /// [`KeyringError`] for the first malformed entry.
    pub fn parse(text: &SecretString) -> Result<Self, KeyringError> {
        let mut keys = BTreeMap::new();
        let entries = text
            .expose_secret()
            .split(|c: char| c == ',' || c.is_whitespace());
        for (index, entry) in entries.filter(|e| !e.is_empty()).enumerate() {
            let position = index + 1;
            let (version, encoded) = entry
                .split_once(':')
                .ok_or(KeyringError::Syntax(position))?;
            let version: u32 = version
                .parse()
                .ok()
                .filter(|v| *v > 0)
                .ok_or(KeyringError::Version(position))?;
            let bytes = Zeroizing::new(
                STANDARD
                    .decode(encoded)
                    .map_err(|_| KeyringError::Key(version))?,
            );
            let key = RootKey::from_bytes(&bytes).map_err(|_| KeyringError::Key(version))?;
            if keys.insert(version, key).is_some() {
                return Err(KeyringError::Duplicate(version));
            }
        }
        Self::from_map(keys).ok_or(KeyringError::Empty)
    }

    fn from_map(mut keys: BTreeMap<u32, RootKey>) -> Option<Self> {
        let (primary_version, primary) = keys.pop_last()?;
        Some(Self {
            primary_version,
            primary,
            older: keys,
        })
    }

    /// Every version and its key, oldest first.
    pub fn versions(&self) -> impl Iterator<Item = (u32, &RootKey)> {
        self.older
            .iter()
            .map(|(v, k)| (*v, k))
            .chain([(self.primary_version, &self.primary)])
    }

    /// Generates a keyring with one random version-1 key (dev mode only).
    ///
    /// # Errors
    /// If the OS RNG fails.
    pub fn generate() -> Result<Self, crate::Error> {
        Ok(Self {
            primary_version: 1,
            primary: RootKey::generate()?,
            older: BTreeMap::new(),
        })
    }

    /// Returns a copy with one more, freshly generated version that becomes primary.
    ///
    /// # Errors
    /// If the OS RNG fails.
    pub fn with_new_version(&self) -> Result<Self, crate::Error> {
        let mut older = BTreeMap::new();
        for (version, key) in self.versions() {
            older.insert(version, RootKey::from_bytes(key.expose_secret())?);
        }
        Ok(Self {
            primary_version: self.primary_version + 1,
            primary: RootKey::generate()?,
            older,
        })
    }

    /// Returns a copy with only the versions `keep` accepts (for retiring an old root key).
    pub fn retain(&self, keep: impl Fn(u32) -> bool) -> Option<Self> {
        let keys: BTreeMap<u32, RootKey> = self
            .versions()
            .filter(|(version, _)| keep(*version))
            .filter_map(|(version, key)| {
                Some((version, RootKey::from_bytes(key.expose_secret()).ok()?))
            })
            .collect();
        Self::from_map(keys)
    }

    /// The text form, for writing a generated keyring to a 0600 file.
    pub fn to_text(&self) -> SecretString {
        let entries: Vec<String> = self
            .versions()
            .map(|(version, key)| format!("{version}:{}", STANDARD.encode(key.expose_secret())))
            .collect();
        SecretString::from(entries.join("\n") + "\n")
    }

    /// The version new material is wrapped under.
    pub fn primary_version(&self) -> u32 {
        self.primary_version
    }

    /// The primary root key and its version.
    pub fn primary(&self) -> (u32, &RootKey) {
        (self.primary_version, &self.primary)
    }

    /// The root key of `version`, if the keyring holds it.
    pub fn get(&self, version: u32) -> Option<&RootKey> {
        if version == self.primary_version {
            Some(&self.primary)
        } else {
            self.older.get(&version)
        }
    }

    /// Whether the keyring holds `version`.
    pub fn contains(&self, version: u32) -> bool {
        self.get(version).is_some()
    }
}

impl std::fmt::Debug for RootKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let versions: Vec<u32> = self.versions().map(|(v, _)| v).collect();
        f.debug_struct("RootKeyring")
            .field("versions", &versions)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RootKeyring, KeyringError> {
        RootKeyring::parse(&SecretString::from(text.to_owned()))
    }

    #[test]
    fn highest_version_is_primary_and_text_roundtrips() {
        let a = STANDARD.encode([1u8; 32]);
        let b = STANDARD.encode([2u8; 32]);
        let ring = parse(&format!("2:{b}, 1:{a}\n")).unwrap();
        assert_eq!(ring.primary().0, 2);
        assert!(ring.contains(1));
        let again = RootKeyring::parse(&ring.to_text()).unwrap();
        assert_eq!(again.primary().1.expose_secret(), &[2u8; 32]);
    }

    #[test]
    fn malformed_keyrings_are_refused_without_quoting_keys() {
        let key = STANDARD.encode([1u8; 32]);
        assert_eq!(parse(" ").unwrap_err(), KeyringError::Empty);
        assert_eq!(parse(&key).unwrap_err(), KeyringError::Syntax(1));
        assert_eq!(
            parse(&format!("0:{key}")).unwrap_err(),
            KeyringError::Version(1)
        );
        assert_eq!(
            parse(&format!("1:{key},1:{key}")).unwrap_err(),
            KeyringError::Duplicate(1)
        );
        let short = STANDARD.encode([1u8; 16]);
        let err = parse(&format!("3:{short}")).unwrap_err();
        assert_eq!(err, KeyringError::Key(3));
        assert!(!err.to_string().contains(&short));
    }

    #[test]
    fn debug_lists_versions_only() {
        let ring = RootKeyring::generate().unwrap();
        assert_eq!(format!("{ring:?}"), "RootKeyring { versions: [1] }");
    }
}
