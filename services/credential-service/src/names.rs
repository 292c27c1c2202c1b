//! Validated names and CreateCredential input.

use coffer_proto::pb;

use crate::content::{Content, Opaque};
use crate::env::Env;
use crate::ops::NewCredential;
use crate::{Error, Result};

/// `tenants/{tenant}` -> tenant id (`[a-z0-9_-]{1,64}`).
///
/// # Errors
/// [`Error::InvalidArgument`] on `field`.
pub fn parse_tenant_name(field: &'static str, name: &str) -> Result<String> {
    let id = name
        .strip_prefix("tenants/")
        .ok_or_else(|| Error::invalid(field, "must be tenants/{tenant}"))?;
    tenant_id(field, id)
}

/// `tenants/{tenant}/credentials/{id}` -> (tenant, id); ids are 32 lowercase hex digits.
///
/// # Errors
/// [`Error::InvalidArgument`] on `field`.
pub fn parse_credential_name(field: &'static str, name: &str) -> Result<(String, String)> {
    let invalid = || Error::invalid(field, "must be tenants/{tenant}/credentials/{id}");
    let (tenant, id) = name
        .strip_prefix("tenants/")
        .and_then(|rest| rest.split_once("/credentials/"))
        .ok_or_else(invalid)?;
    if id.len() != 32
        || !id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(invalid());
    }
    Ok((tenant_id(field, tenant)?, id.to_owned()))
}

/// Validates a CreateCredential request for `tenant`.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the first bad field.
pub fn validate_new(
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

fn tenant_id(field: &'static str, id: &str) -> Result<String> {
    if coffer_server::names::is_valid_id(id) {
        Ok(id.to_owned())
    } else {
        Err(Error::invalid(
            field,
            format!("tenant must match {}", coffer_server::names::ID_PATTERN),
        ))
    }
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
        assert_eq!(
            parse_credential_name("name", &format!("tenants/acme/credentials/{id}")).unwrap(),
            ("acme".to_owned(), id.to_owned())
        );
        for bad in [
            "tenants/acme/credentials/xyz",
            "tenants/acme",
            "acme/credentials/x",
        ] {
            assert!(
                parse_credential_name("name", bad)
                    .unwrap_err()
                    .to_string()
                    .starts_with("invalid name")
            );
        }
        assert!(parse_tenant_name("parent", "tenants/Acme").is_err());
    }
}
