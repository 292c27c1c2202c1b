//! Typed resource names of auth-service, on the shared [`coffer_server::names`]: tenants,
//! `tenants/{tenant}/principals/{id}` and `tenants/{tenant}/apiKeys/{id}`. Parsed at the API
//! edge, so operations get ids that are already valid.

use coffer_crypto::apikey::ApiKeyId;
use coffer_server::names::{Collection, Name};

pub(crate) use coffer_server::names::TenantId;

/// The principal collection; ids match [`coffer_server::names::ID_PATTERN`].
pub(crate) struct Principals;

impl Collection for Principals {
    const SEGMENT: &'static str = "principals";
    const ID: &'static str = "principal";
}

/// `tenants/{tenant}/principals/{id}`.
pub(crate) type PrincipalName = Name<Principals>;

/// The API-key collection; ids are the 12 letters and digits of the key's public id.
pub(crate) struct ApiKeys;

impl Collection for ApiKeys {
    const SEGMENT: &'static str = "apiKeys";
    const ID: &'static str = "apiKey";
    const ID_RULE: &'static str = "12 letters and digits";

    fn is_valid(id: &str) -> bool {
        ApiKeyId::parse(id).is_ok()
    }
}

/// `tenants/{tenant}/apiKeys/{id}`.
pub(crate) type ApiKeyName = Name<ApiKeys>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_bad_ones_name_the_field_and_rule() {
        let principal = PrincipalName::parse("name", "tenants/acme/principals/alice").unwrap();
        assert_eq!(
            (principal.tenant().as_str(), principal.id()),
            ("acme", "alice")
        );
        assert!(PrincipalName::parse("name", "tenants/acme/principals/").is_err());
        assert!(PrincipalName::parse("name", "tenants/acme/users/alice").is_err());
        let key = ApiKeyName::parse("name", "tenants/acme/apiKeys/abcDEF012345").unwrap();
        assert_eq!(key.id(), "abcDEF012345");
        let err = ApiKeyName::parse("name", "tenants/acme/apiKeys/short").unwrap_err();
        assert!(
            err.to_string()
                .ends_with("the apiKey 12 letters and digits"),
            "{err}"
        );
        assert!(ApiKeyName::parse("name", "tenants/acme/apiKeys/abcDEF01234_").is_err());
    }
}
