//! Typed resource names, parsed once at the API edge of every service, so operations take
//! values that are already valid.
//!
//! Every resource lives under a tenant: `tenants/{tenant}` ([`TenantId`]) and
//! `tenants/{tenant}/{collection}/{id}` ([`Name`], one type per collection, defined by the
//! service that owns it through [`Collection`]). Tenant ids, and the ids of most collections,
//! follow one rule ([`is_valid_id`]), so an id is safe in a resource name, a SPIFFE path, an
//! HKDF `info` and a log line alike.

use std::fmt;
use std::marker::PhantomData;

/// Longest id in a resource name.
pub const MAX_ID_LEN: usize = 64;

/// The rule [`is_valid_id`] checks, for error messages.
pub const ID_PATTERN: &str = "[a-z0-9_-]{1,64}";

/// Whether `id` may name a tenant, principal or key: `[a-z0-9_-]{1,64}`.
pub fn is_valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A request field that does not hold a valid name or id: which field, and the rule it breaks
/// (never the value). Each service turns it into its INVALID_ARGUMENT error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct Invalid {
    /// The request field.
    pub field: &'static str,
    /// What the field must be.
    pub reason: String,
}

impl Invalid {
    /// `field` breaks the rule `reason`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// Validates a bare id against [`ID_PATTERN`]; `field` names the request field.
///
/// # Errors
/// [`Invalid`] stating the pattern.
pub fn parse_id(field: &'static str, id: &str) -> Result<String, Invalid> {
    if is_valid_id(id) {
        Ok(id.to_owned())
    } else {
        Err(Invalid {
            field,
            reason: format!("must match {ID_PATTERN}"),
        })
    }
}

/// A tenant's id, valid by construction.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// Validates a bare tenant id (`acme`).
    ///
    /// # Errors
    /// [`Invalid`] on `field`, stating the pattern.
    pub fn parse(field: &'static str, id: &str) -> Result<Self, Invalid> {
        parse_id(field, id).map(Self)
    }

    /// Parses a tenant's resource name, `tenants/{tenant}`.
    ///
    /// # Errors
    /// [`Invalid`] on `field`, stating the form.
    pub fn from_name(field: &'static str, name: &str) -> Result<Self, Invalid> {
        match name.strip_prefix("tenants/") {
            Some(id) if is_valid_id(id) => Ok(Self(id.to_owned())),
            _ => Err(Invalid {
                field,
                reason: format!("must be tenants/{{tenant}}, the tenant matching {ID_PATTERN}"),
            }),
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The resource name, `tenants/{tenant}`.
    pub fn name(&self) -> String {
        format!("tenants/{}", self.0)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A kind of resource that lives under a tenant: its collection segment in resource names and
/// the rule its ids follow.
pub trait Collection {
    /// The collection segment: `keys` in `tenants/{tenant}/keys/{key}`.
    const SEGMENT: &'static str;
    /// What one id is called in the name's template: `key` in `tenants/{tenant}/keys/{key}`.
    const ID: &'static str;
    /// The id's rule as error messages state it.
    const ID_RULE: &'static str = ID_PATTERN;

    /// Whether `id` follows [`Self::ID_RULE`].
    fn is_valid(id: &str) -> bool {
        is_valid_id(id)
    }
}

/// `tenants/{tenant}/{collection}/{id}`, valid by construction.
pub struct Name<C> {
    tenant: TenantId,
    id: String,
    collection: PhantomData<fn() -> C>,
}

impl<C: Collection> Name<C> {
    /// Parses a full resource name; `field` names the request field for the error.
    ///
    /// # Errors
    /// [`Invalid`] on `field`, stating the form and both id rules.
    pub fn parse(field: &'static str, name: &str) -> Result<Self, Invalid> {
        let invalid = || Invalid {
            field,
            reason: format!(
                "must be tenants/{{tenant}}/{}/{{{id}}}, the tenant matching {ID_PATTERN} and the {id} {}",
                C::SEGMENT,
                C::ID_RULE,
                id = C::ID,
            ),
        };
        let rest = name.strip_prefix("tenants/").ok_or_else(invalid)?;
        let (tenant, rest) = rest.split_once('/').ok_or_else(invalid)?;
        let id = rest
            .strip_prefix(C::SEGMENT)
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(invalid)?;
        if !is_valid_id(tenant) || !C::is_valid(id) {
            return Err(invalid());
        }
        Ok(Self::trusted(TenantId(tenant.to_owned()), id.to_owned()))
    }

    /// The resource `id` of `tenant`; `field` names the request field of the id.
    ///
    /// # Errors
    /// [`Invalid`] on `field`, stating the id rule.
    pub fn new(tenant: TenantId, field: &'static str, id: &str) -> Result<Self, Invalid> {
        if C::is_valid(id) {
            Ok(Self::trusted(tenant, id.to_owned()))
        } else {
            Err(Invalid {
                field,
                reason: format!("must match {}", C::ID_RULE),
            })
        }
    }

    fn trusted(tenant: TenantId, id: String) -> Self {
        Self {
            tenant,
            id,
            collection: PhantomData,
        }
    }

    /// The tenant the resource belongs to.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The resource's id within its tenant and collection.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl<C: Collection> fmt::Display for Name<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tenants/{}/{}/{}", self.tenant, C::SEGMENT, self.id)
    }
}

impl<C: Collection> fmt::Debug for Name<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

// Written out rather than derived: a derive would require `C: Clone` and so on, though `C` is
// only a marker.
impl<C> Clone for Name<C> {
    fn clone(&self) -> Self {
        Self {
            tenant: self.tenant.clone(),
            id: self.id.clone(),
            collection: PhantomData,
        }
    }
}

impl<C> PartialEq for Name<C> {
    fn eq(&self, other: &Self) -> bool {
        (&self.tenant, &self.id) == (&other.tenant, &other.id)
    }
}

impl<C> Eq for Name<C> {}

impl<C> std::hash::Hash for Name<C> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (&self.tenant, &self.id).hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Things;
    impl Collection for Things {
        const SEGMENT: &'static str = "things";
        const ID: &'static str = "thing";
    }

    struct HexThings;
    impl Collection for HexThings {
        const SEGMENT: &'static str = "hexThings";
        const ID: &'static str = "hexThing";
        const ID_RULE: &'static str = "4 lowercase hex digits";
        fn is_valid(id: &str) -> bool {
            id.len() == 4 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }
    }

    #[test]
    fn ids_follow_the_pattern() {
        for good in ["a", "acme", "team_1-b", &"x".repeat(MAX_ID_LEN)] {
            assert!(is_valid_id(good), "{good}");
        }
        for bad in [
            "",
            "Acme",
            "a.b",
            "a/b",
            "a b",
            "é",
            &"x".repeat(MAX_ID_LEN + 1),
        ] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn tenant_names_parse_and_print_back() {
        let tenant = TenantId::from_name("parent", "tenants/acme").unwrap();
        assert_eq!(
            (tenant.as_str(), tenant.name()),
            ("acme", "tenants/acme".into())
        );
        for bad in [
            "acme",
            "tenants/",
            "tenants/Acme",
            "tenants/a/b",
            "tenant/acme",
        ] {
            let err = TenantId::from_name("parent", bad).unwrap_err();
            assert_eq!(err.field, "parent");
            assert_eq!(
                err.to_string(),
                "invalid parent: must be tenants/{tenant}, the tenant matching [a-z0-9_-]{1,64}",
                "{bad}"
            );
        }
    }

    #[test]
    fn names_parse_print_back_and_keep_their_collection() {
        let name = Name::<Things>::parse("name", "tenants/acme/things/db_key-1").unwrap();
        assert_eq!((name.tenant().as_str(), name.id()), ("acme", "db_key-1"));
        assert_eq!(name.to_string(), "tenants/acme/things/db_key-1");
        assert_eq!(format!("{name:?}"), "\"tenants/acme/things/db_key-1\"");
        assert!(Name::<HexThings>::parse("name", "tenants/acme/things/beef").is_err());
        assert!(Name::<HexThings>::parse("name", "tenants/acme/hexThings/beef").is_ok());
    }

    #[test]
    fn bad_names_name_the_field_and_the_rules() {
        let long = "a".repeat(MAX_ID_LEN + 1);
        for bad in [
            "",
            "acme/things/k",
            "tenants/acme/k",
            "tenants//things/k",
            "tenants/acme/things/",
            "tenants/acme/thingsx/k",
            "tenants/Acme/things/k",
            "tenants/acme/things/k/x",
            "tenants/acme/things/k.1",
            &format!("tenants/acme/things/{long}"),
        ] {
            let err = Name::<Things>::parse("name", bad).unwrap_err().to_string();
            assert_eq!(
                err,
                "invalid name: must be tenants/{tenant}/things/{thing}, the tenant matching \
                 [a-z0-9_-]{1,64} and the thing [a-z0-9_-]{1,64}",
                "{bad}"
            );
        }
        let err = Name::<HexThings>::parse("name", "tenants/acme/hexThings/BEEF").unwrap_err();
        assert!(
            err.to_string()
                .ends_with("the hexThing 4 lowercase hex digits")
        );
    }

    #[test]
    fn children_check_the_collection_rule() {
        let tenant = TenantId::parse("tenant_id", "acme").unwrap();
        let name = Name::<HexThings>::new(tenant.clone(), "thing_id", "00ff").unwrap();
        assert_eq!(name.to_string(), "tenants/acme/hexThings/00ff");
        let err = Name::<HexThings>::new(tenant, "thing_id", "zz").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid thing_id: must match 4 lowercase hex digits"
        );
        assert!(TenantId::parse("tenant_id", "A").is_err());
    }
}
