//! Validated request inputs: key names, tenant names, encryption contexts. Parsed once at the
//! API edge, so operations take types that are already valid.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::{Error, Result};

/// Most entries in an encryption context.
pub const MAX_CONTEXT_ENTRIES: usize = 32;
/// Longest encryption-context key, in bytes.
pub const MAX_CONTEXT_KEY_LEN: usize = 128;
/// Longest encryption-context value, in bytes.
pub const MAX_CONTEXT_VALUE_LEN: usize = 1024;

/// `tenants/{tenant}/keys/{key}`, both identifiers `[a-z0-9_-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyName {
    tenant: String,
    key: String,
}

impl KeyName {
    /// Parses a full key name; `field` names the request field for the error.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] saying what is wrong.
    pub fn parse(field: &'static str, name: &str) -> Result<Self> {
        let invalid = || {
            Error::invalid(
                field,
                format!(
                    "must be tenants/{{tenant}}/keys/{{key}}, each id matching {}",
                    coffer_server::names::ID_PATTERN
                ),
            )
        };
        let rest = name.strip_prefix("tenants/").ok_or_else(invalid)?;
        let (tenant, key) = rest.split_once("/keys/").ok_or_else(invalid)?;
        Ok(Self {
            tenant: parse_id(field, "tenant", tenant)?,
            key: parse_id(field, "key", key)?,
        })
    }

    /// The key `key_id` of `tenant`; `field` names the request field of the id.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid id.
    pub fn child(tenant: &TenantName, field: &'static str, key_id: &str) -> Result<Self> {
        Ok(Self {
            tenant: tenant.as_str().to_owned(),
            key: parse_id(field, "key id", key_id)?,
        })
    }

    /// Builds a name from its parts, validating both.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid identifier.
    pub fn new(tenant: &str, key: &str) -> Result<Self> {
        Ok(Self {
            tenant: parse_id("name", "tenant", tenant)?,
            key: parse_id("name", "key", key)?,
        })
    }

    /// The tenant identifier.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The key identifier within the tenant.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tenants/{}/keys/{}", self.tenant, self.key)
    }
}

/// `tenants/{tenant}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantName(String);

impl TenantName {
    /// Parses `tenants/{tenant}`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] saying what is wrong.
    pub fn parse(field: &'static str, name: &str) -> Result<Self> {
        let tenant = name.strip_prefix("tenants/").ok_or_else(|| {
            Error::invalid(
                field,
                format!(
                    "must be tenants/{{tenant}}, the id matching {}",
                    coffer_server::names::ID_PATTERN
                ),
            )
        })?;
        Ok(Self(parse_id(field, "tenant", tenant)?))
    }

    /// The tenant identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated encryption context: at most 32 entries, keys 1 to 128 bytes, values up to 1024
/// bytes. Kept sorted, which is also the order the AAD encodes it in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// Validates a request's context map.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on `encryption_context` for too many or too long entries.
    pub fn parse(map: HashMap<String, String>) -> Result<Self> {
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
    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

/// Validates one identifier; `what` is "tenant" or "key".
pub(crate) fn parse_id(field: &'static str, what: &str, id: &str) -> Result<String> {
    if coffer_server::names::is_valid_id(id) {
        Ok(id.to_owned())
    } else {
        Err(Error::invalid(
            field,
            format!("{what} must match {}", coffer_server::names::ID_PATTERN),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_parse_and_print_back() {
        let name = KeyName::parse("name", "tenants/acme/keys/db_key-1").unwrap();
        assert_eq!((name.tenant(), name.key()), ("acme", "db_key-1"));
        assert_eq!(name.to_string(), "tenants/acme/keys/db_key-1");
    }

    #[test]
    fn bad_key_names_name_the_field_and_the_rule() {
        let long = "a".repeat(65);
        for bad in [
            "",
            "acme/keys/k",
            "tenants/acme/k",
            "tenants//keys/k",
            "tenants/acme/keys/",
            "tenants/Acme/keys/k",
            "tenants/acme/keys/k/x",
            "tenants/acme/keys/k.1",
            &format!("tenants/acme/keys/{long}"),
        ] {
            let err = KeyName::parse("name", bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid name:"), "{bad}: {err}");
        }
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
