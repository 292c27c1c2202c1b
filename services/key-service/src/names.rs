//! Validated request inputs: key names (the shared [`coffer_server::names`] with the `keys`
//! collection), encryption contexts. Parsed once at the
//! API edge, so operations take types that are already valid.

use std::collections::{BTreeMap, HashMap};

use crate::{Error, Result};

/// Most entries in an encryption context.
pub(crate) const MAX_CONTEXT_ENTRIES: usize = 32;
/// Longest encryption-context key, in bytes.
pub(crate) const MAX_CONTEXT_KEY_LEN: usize = 128;
/// Longest encryption-context value, in bytes.
pub(crate) const MAX_CONTEXT_VALUE_LEN: usize = 1024;

pub(crate) use coffer_server::names::TenantId;
use coffer_server::names::{Collection, Name};

/// The key collection: `tenants/{tenant}/keys/{key}`, the key id matching
/// [`coffer_server::names::ID_PATTERN`].
pub(crate) struct Keys;

impl Collection for Keys {
    const SEGMENT: &'static str = "keys";
    const ID: &'static str = "key";
}

/// `tenants/{tenant}/keys/{key}`.
pub(crate) type KeyName = Name<Keys>;

/// A key name from a stored row's tenant and key columns.
///
/// # Errors
/// [`Error::InvalidArgument`] if either is not a valid id.
pub(crate) fn stored_key_name(tenant: &str, key: &str) -> Result<KeyName> {
    Ok(KeyName::new(
        TenantId::parse("tenant", tenant)?,
        "key",
        key,
    )?)
}

/// A validated encryption context: at most 32 entries, keys 1 to 128 bytes, values up to 1024
/// bytes. Kept sorted, which is also the order the AAD encodes it in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// Validates a request's context map.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on `encryption_context` for too many or too long entries.
    pub(crate) fn parse(map: HashMap<String, String>) -> Result<Self> {
        const FIELD: &str = "encryption_context";
        if map.len() > MAX_CONTEXT_ENTRIES {
            return Err(Error::invalid(
                FIELD,
                format!("at most {MAX_CONTEXT_ENTRIES} entries"),
            ));
        }
        for (key, value) in &map {
            if key.is_empty() || key.len() > MAX_CONTEXT_KEY_LEN {
                return Err(Error::invalid(
                    FIELD,
                    format!("keys must be 1 to {MAX_CONTEXT_KEY_LEN} bytes"),
                ));
            }
            if value.len() > MAX_CONTEXT_VALUE_LEN {
                return Err(Error::invalid(
                    FIELD,
                    format!("values must be at most {MAX_CONTEXT_VALUE_LEN} bytes"),
                ));
            }
        }
        Ok(Self(map.into_iter().collect()))
    }

    /// The entries, sorted by key.
    pub(crate) fn entries(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_parse_and_print_back() {
        let name = KeyName::parse("name", "tenants/acme/keys/db_key-1").unwrap();
        assert_eq!((name.tenant().as_str(), name.id()), ("acme", "db_key-1"));
        assert_eq!(name.to_string(), "tenants/acme/keys/db_key-1");
        let err = KeyName::parse("name", "tenants/acme/credentials/k").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid name: must be tenants/{tenant}/keys/{key}")
        );
        assert!(stored_key_name("acme", "Bad").is_err());
    }

    #[test]
    fn contexts_are_bounded() {
        let too_many: HashMap<_, _> = (0..33).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(EncryptionContext::parse(too_many).is_err());
        assert!(EncryptionContext::parse([(String::new(), "v".into())].into()).is_err());
        assert!(EncryptionContext::parse([("k".into(), "v".repeat(1025))].into()).is_err());
        assert!(EncryptionContext::parse([("k".repeat(128), "v".repeat(1024))].into()).is_ok());
    }
}
