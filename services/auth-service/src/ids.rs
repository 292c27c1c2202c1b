//! Validated identifiers and resource names, parsed at the API edge.

use crate::{Error, Result};

/// Validates an id: `[a-z0-9_-]{1,64}`.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `field`.
pub fn parse_id(field: &'static str, id: &str) -> Result<String> {
    if coffer_server::names::is_valid_id(id) {
        Ok(id.to_owned())
    } else {
        Err(Error::invalid(
            field,
            format!("must match {}", coffer_server::names::ID_PATTERN),
        ))
    }
}

/// Parses `tenants/{tenant}` into the tenant id.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `field`.
pub fn parse_tenant_name(field: &'static str, name: &str) -> Result<String> {
    let id = name
        .strip_prefix("tenants/")
        .ok_or_else(|| Error::invalid(field, "must be tenants/{tenant}"))?;
    parse_id(field, id)
}

/// Parses `tenants/{tenant}/principals/{id}` into (tenant, principal id).
///
/// # Errors
/// [`Error::InvalidArgument`] naming `field`.
pub fn parse_principal_name(field: &'static str, name: &str) -> Result<(String, String)> {
    let invalid = || Error::invalid(field, "must be tenants/{tenant}/principals/{id}");
    let rest = name.strip_prefix("tenants/").ok_or_else(invalid)?;
    let (tenant, id) = rest.split_once("/principals/").ok_or_else(invalid)?;
    Ok((parse_id(field, tenant)?, parse_id(field, id)?))
}

/// Parses `tenants/{tenant}/apiKeys/{id}` into (tenant, key id).
///
/// # Errors
/// [`Error::InvalidArgument`] naming `field`.
pub fn parse_api_key_name(field: &'static str, name: &str) -> Result<(String, String)> {
    let invalid = || Error::invalid(field, "must be tenants/{tenant}/apiKeys/{id}");
    let rest = name.strip_prefix("tenants/").ok_or_else(invalid)?;
    let (tenant, id) = rest.split_once("/apiKeys/").ok_or_else(invalid)?;
    let id = coffer_crypto::apikey::ApiKeyId::parse(id).map_err(|_| invalid())?;
    Ok((parse_id(field, tenant)?, id.as_str().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_bad_ones_name_the_field() {
        assert_eq!(parse_tenant_name("name", "tenants/acme").unwrap(), "acme");
        assert_eq!(
            parse_principal_name("name", "tenants/acme/principals/alice").unwrap(),
            ("acme".to_owned(), "alice".to_owned())
        );
        for bad in ["acme", "tenants/", "tenants/Acme", "tenants/a/b"] {
            assert!(
                parse_tenant_name("parent", bad)
                    .unwrap_err()
                    .to_string()
                    .starts_with("invalid parent")
            );
        }
        assert!(parse_principal_name("name", "tenants/acme/principals/").is_err());
        assert!(parse_principal_name("name", "tenants/acme/users/alice").is_err());
        assert_eq!(
            parse_api_key_name("name", "tenants/acme/apiKeys/abcDEF012345")
                .unwrap()
                .1,
            "abcDEF012345"
        );
        assert!(parse_api_key_name("name", "tenants/acme/apiKeys/short").is_err());
    }
}
