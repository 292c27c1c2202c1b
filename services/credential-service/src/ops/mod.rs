//! Credential operations on validated inputs: envelope encryption under per-credential data
//! keys, masking, audited reveals, and the audit log.

pub mod audit;
mod credentials;
pub mod sweep;

pub use credentials::{Credentials, NewCredential};

/// Who is acting, for audit events.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Principal id (or service identity).
    pub id: String,
    /// The caller's `x-request-id`, or empty.
    pub request_id: String,
}

/// The resource name of a credential.
pub fn credential_name(tenant: &str, id: &str) -> String {
    format!("tenants/{tenant}/credentials/{id}")
}
