//! Credential operations on validated inputs: envelope encryption under per-credential data
//! keys, masking, audited reveals, and the audit log.

pub(crate) mod audit;
mod credentials;
pub(crate) mod sweep;

pub(crate) use credentials::{Credentials, NewCredential};

/// Who is acting, for audit events.
#[derive(Debug, Clone)]
pub(crate) struct Actor {
    /// Principal id (or service identity).
    pub(crate) id: String,
    /// The caller's `x-request-id`, or empty.
    pub(crate) request_id: String,
}

/// The resource name of a credential.
pub(crate) fn credential_name(tenant: &str, id: &str) -> String {
    format!("tenants/{tenant}/credentials/{id}")
}
