//! Validated names and CreateCredential input.

use coffer_proto::pb;
use coffer_server::names::{Collection, Name};

use crate::content::{Content, Opaque};
use crate::env::Env;
use crate::ops::NewCredential;
use crate::{Error, Result};

pub(crate) use coffer_server::names::TenantId;

/// The credential collection; ids are 32 lowercase hex digits (128 random bits).
pub(crate) struct Credentials;

impl Collection for Credentials {
    const SEGMENT: &'static str = "credentials";
    const ID: &'static str = "credential";
    const ID_RULE: &'static str = "32 lowercase hex digits";

    fn is_valid(id: &str) -> bool {
        id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }
}

/// `tenants/{tenant}/credentials/{id}`.
pub(crate) type CredentialName = Name<Credentials>;

/// Validates a CreateCredential request for `tenant`.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the first bad field.
pub(crate) fn validate_new(
    tenant: String,
    request: pb::CreateCredentialRequest,
    now: i64,
) -> Result<NewCredential> {
    label("server_id", &request.server_id, 1)?;
    label("template_id", &request.template_id, 0)?;
    if request.server_name.chars().count() > 200 {
        return Err(Error::invalid("server_name", "at most 200 characters"));
    }
    if request.configured_integrations.len() > 100
        || request
            .configured_integrations
            .iter()
            .any(|i| i.is_empty() || i.chars().count() > 128)
    {
        return Err(Error::invalid(
            "configured_integrations",
            "at most 100 names of 1 to 128 characters",
        ));
    }
    Ok(NewCredential {
        tenant,
        server_id: request.server_id,
        template_id: request.template_id,
        server_name: request.server_name,
        content: match request.opaque {
            Some(opaque) if request.env.is_empty() => {
                Content::Opaque(Opaque::parse("opaque", opaque.blob, opaque.metadata)?)
            }
            Some(_) => {
                return Err(Error::invalid(
                    "opaque",
                    "a zero-knowledge credential has no env",
                ));
            }
            None => Content::Env(Env::parse("env", request.env)?),
        },
        configured_integrations: request.configured_integrations,
        expire_time: match request.expire_time {
            Some(time) if time.seconds <= now => {
                return Err(Error::invalid("expire_time", "must be in the future"));
            }
            time => time.map(|t| t.seconds),
        },
    })
}

/// `[A-Za-z0-9._-]{min,128}`.
fn label(field: &'static str, value: &str, min: usize) -> Result<()> {
    let valid = (min..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("must match [A-Za-z0-9._-]{{{min},128}}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_bad_ones_name_the_field() {
        let id = "0123456789abcdef0123456789abcdef";
        let name =
            CredentialName::parse("name", &format!("tenants/acme/credentials/{id}")).unwrap();
        assert_eq!((name.tenant().as_str(), name.id()), ("acme", id));
        for bad in [
            "tenants/acme/credentials/xyz",
            "tenants/acme/credentials/0123456789ABCDEF0123456789abcdef",
            "tenants/acme",
            "acme/credentials/x",
        ] {
            let err = CredentialName::parse("name", bad).unwrap_err().to_string();
            assert!(
                err.ends_with("the credential 32 lowercase hex digits"),
                "{bad}: {err}"
            );
        }
    }
}
