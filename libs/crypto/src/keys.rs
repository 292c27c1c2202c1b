//! Key newtypes. Each kind of key is its own type so that the compiler refuses, for example, to
//! encrypt data directly under a root key or to wrap a tenant key under a data key.
//!
//! All of them hold 32 bytes in a [`Zeroizing`] buffer behind a private field, print as
//! `Name(..)` in `Debug`, and expose their bytes only through a loudly named `expose_secret`.

use aes_gcm::{Aes256Gcm, KeyInit as _};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::{Error, Result};

/// Length in bytes of every Coffer key (AES-256).
pub const KEY_LEN: usize = 32;

/// Domain-separation label of KEK derivation: `info = KEK_INFO_PREFIX || tenant`.
pub const KEK_INFO_PREFIX: &[u8] = b"coffer/kek/v1";

macro_rules! key_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name(Zeroizing<[u8; KEY_LEN]>);

        impl $name {
            /// Builds the key from exactly 32 bytes.
            ///
            /// # Errors
            /// [`Error::KeyLength`] if `bytes` is not 32 bytes long.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
                let array: [u8; KEY_LEN] = bytes.try_into().map_err(|_| Error::KeyLength {
                    expected: KEY_LEN,
                    actual: bytes.len(),
                })?;
                Ok(Self(Zeroizing::new(array)))
            }

            /// Generates a fresh key from the OS random number generator.
            ///
            /// # Errors
            /// [`Error::Rng`] if the generator is unavailable.
            pub fn generate() -> Result<Self> {
                let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
                crate::fill_random(bytes.as_mut())?;
                Ok(Self(bytes))
            }

            /// The raw key bytes. Use only to wrap or persist the key encrypted, never to log.
            pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
                &self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }
    };
}

key_type! {
    /// A root key from the keyring. It never encrypts anything itself: it only derives the
    /// per-tenant [`Kek`]s with [`RootKey::derive_kek`].
    RootKey
}

key_type! {
    /// A key-encryption key: wraps the versions of one tenant's keys. Derived, never stored.
    Kek
}

key_type! {
    /// The material of one version of a tenant key: encrypts data and wraps data keys.
    TenantKey
}

key_type! {
    /// A data encryption key (DEK) handed to a caller for local envelope encryption.
    DataKey
}

impl RootKey {
    /// Derives the tenant's key-encryption key:
    /// `HKDF-SHA256(ikm = root, salt = none, info = "coffer/kek/v1" || tenant)`.
    ///
    /// Tenant names are validated by the caller (`[a-z0-9_-]{1,64}`), so the fixed-length prefix
    /// followed by the name is unambiguous.
    pub fn derive_kek(&self, tenant: &str) -> Kek {
        let hkdf = Hkdf::<Sha256>::new(None, self.expose_secret());
        let mut info = Vec::with_capacity(KEK_INFO_PREFIX.len() + tenant.len());
        info.extend_from_slice(KEK_INFO_PREFIX);
        info.extend_from_slice(tenant.as_bytes());
        let mut okm = Zeroizing::new([0u8; KEY_LEN]);
        // 32 bytes is far below HKDF-SHA256's limit of 255 * 32, so expand cannot fail; the
        // all-zero fallback is unreachable and would fail every unwrap rather than leak.
        if hkdf.expand(&info, okm.as_mut()).is_err() {
            okm.fill(0);
        }
        Kek(okm)
    }
}

/// Domain-separation label of root key check values: `info = CHECK_INFO_PREFIX || version`.
pub const CHECK_INFO_PREFIX: &[u8] = b"coffer/root-check/v1";

impl RootKey {
    /// The key check value of this key as root version `version`:
    /// `HKDF-SHA256(ikm = root, salt = none, info = "coffer/root-check/v1" || u32be(version))`,
    /// a PRF output under the root key (HKDF-Expand is HMAC-SHA256) that reveals nothing
    /// about it. Stored beside the data, it tells at start-up whether a configured key is the
    /// one the data was wrapped under, before anything is written with a wrong one.
    pub fn check_value(&self, version: u32) -> KeyCheckValue {
        let hkdf = Hkdf::<Sha256>::new(None, self.expose_secret());
        let mut info = Vec::with_capacity(CHECK_INFO_PREFIX.len() + 4);
        info.extend_from_slice(CHECK_INFO_PREFIX);
        info.extend_from_slice(&version.to_be_bytes());
        let mut okm = [0u8; KEY_LEN];
        // As in derive_kek: 32 bytes cannot exceed HKDF's limit. An all-zero value would only
        // fail the comparison.
        if hkdf.expand(&info, &mut okm).is_err() {
            okm.fill(0);
        }
        KeyCheckValue(okm)
    }
}

/// A root key's check value (see [`RootKey::check_value`]): public, but compared in constant
/// time all the same.
#[derive(Debug, Clone, Copy)]
pub struct KeyCheckValue([u8; KEY_LEN]);

impl KeyCheckValue {
    /// A stored check value.
    ///
    /// # Errors
    /// [`Error::KeyLength`] unless `bytes` is 32 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let array: [u8; KEY_LEN] = bytes.try_into().map_err(|_| Error::KeyLength {
            expected: KEY_LEN,
            actual: bytes.len(),
        })?;
        Ok(Self(array))
    }

    /// The bytes, for storing.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Whether two check values are equal, in constant time.
    pub fn matches(&self, other: &KeyCheckValue) -> bool {
        use subtle::ConstantTimeEq as _;
        self.0.ct_eq(&other.0).into()
    }
}

/// A key that encrypts with AES-256-GCM in the [`crate::envelope`] format.
///
/// Implemented for [`Kek`], [`TenantKey`] and [`DataKey`], never for [`RootKey`].
pub trait AeadKey: private::Sealed {
    /// The AES-256-GCM cipher keyed with this key.
    fn cipher(&self) -> Aes256Gcm;
}

macro_rules! aead_key {
    ($($name:ident),*) => {$(
        impl private::Sealed for $name {}
        impl AeadKey for $name {
            fn cipher(&self) -> Aes256Gcm {
                Aes256Gcm::new(self.expose_secret().into())
            }
        }
    )*};
}

aead_key!(Kek, TenantKey, DataKey);

mod private {
    pub trait Sealed {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_key_bytes() {
        let key = TenantKey::from_bytes(&[0x41; KEY_LEN]).unwrap();
        assert_eq!(format!("{key:?}"), "TenantKey(..)");
    }

    #[test]
    fn wrong_length_is_rejected() {
        assert_eq!(
            RootKey::from_bytes(&[0; 31]).unwrap_err(),
            Error::KeyLength {
                expected: 32,
                actual: 31
            }
        );
    }

    #[test]
    fn kek_depends_on_root_and_tenant() {
        let root = RootKey::from_bytes(&[7; KEY_LEN]).unwrap();
        let other_root = RootKey::from_bytes(&[8; KEY_LEN]).unwrap();
        let a = root.derive_kek("acme");
        assert_eq!(a.expose_secret(), root.derive_kek("acme").expose_secret());
        assert_ne!(a.expose_secret(), root.derive_kek("acme2").expose_secret());
        assert_ne!(
            a.expose_secret(),
            other_root.derive_kek("acme").expose_secret()
        );
    }

    #[test]
    fn kek_matches_an_independent_hkdf_sha256_computation() {
        // RFC 5869 HKDF with an empty salt (a block of zeros) computed step by step with HMAC,
        // independently of the hkdf crate's Hkdf type.
        use hkdf::hmac::{Hmac, KeyInit, Mac};
        let root = RootKey::from_bytes(&[0x0b; KEY_LEN]).unwrap();
        let mut extract = <Hmac<Sha256> as KeyInit>::new_from_slice(&[0u8; 32]).unwrap();
        extract.update(&[0x0b; KEY_LEN]);
        let prk = extract.finalize().into_bytes();
        let mut expand = <Hmac<Sha256> as KeyInit>::new_from_slice(&prk).unwrap();
        expand.update(b"coffer/kek/v1acme");
        expand.update(&[1]);
        let t1 = expand.finalize().into_bytes();
        assert_eq!(
            root.derive_kek("acme").expose_secret().as_slice(),
            t1.as_slice()
        );
    }

    #[test]
    fn check_values_tell_keys_and_versions_apart_and_leak_no_kek() {
        let root = RootKey::from_bytes(&[7; KEY_LEN]).unwrap();
        let other = RootKey::from_bytes(&[8; KEY_LEN]).unwrap();
        assert!(root.check_value(1).matches(&root.check_value(1)));
        assert!(!root.check_value(1).matches(&other.check_value(1)));
        assert!(!root.check_value(1).matches(&root.check_value(2)));
        let stored = KeyCheckValue::from_bytes(root.check_value(3).as_bytes()).unwrap();
        assert!(stored.matches(&root.check_value(3)));
        assert!(KeyCheckValue::from_bytes(&[0; 31]).is_err());
        // Domain-separated from every KEK (a tenant can be named anything valid).
        assert_ne!(
            root.check_value(1).as_bytes(),
            root.derive_kek("").expose_secret()
        );
    }

    #[test]
    fn generated_keys_differ() {
        let a = DataKey::generate().unwrap();
        let b = DataKey::generate().unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
    }
}
