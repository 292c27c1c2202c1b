//! Bearer authentication shared by Coffer services.
//!
//! - [`scope`]: the scopes (`mcp:read`, `credential:reveal`, ...) and the roles that grant them.
//! - [`jwt`]: RS256 access tokens: [`jwt::SigningKey`] issues them (auth-service), and
//!   [`jwt::Verifier`] checks them strictly against a fixed set of public keys: RS256 only,
//!   required `exp iss aud sub nbf iat`, a small leeway, no `crit`, no key-carrying headers,
//!   unknown `kid` rejected without any lookup, and a size cap before any parsing.
//! - [`jwks`]: JSON Web Keys with RFC 7638 thumbprints as `kid`.
//! - [`authenticator::Authenticator`]: what a service uses on each request: a bearer JWT is
//!   verified locally against auth-service's JWKS (fetched, cached, refetched on an unknown
//!   `kid` at most every few seconds), an `mcp_sk_` key through auth-service's VerifyApiKey
//!   (cached briefly).
//! - [`forwarded`]: which callers (the gateway) may name the client they forward, for the
//!   per-source limits.
//! - [`layer::AuthnLayer`]: the same as a tower layer in front of a tonic server.
//! - [`Principal`]: who a verified credential speaks for. The tenant always comes from here,
//!   never from a request body.

pub mod authenticator;
pub mod forwarded;
pub mod jwks;
pub mod jwt;
pub mod layer;
mod revocations;
pub mod scope;

pub use scope::{Role, Scope, Scopes};

/// Who a verified bearer credential speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant the principal belongs to.
    pub tenant: String,
    /// The principal's id (a user or service account).
    pub subject: String,
    /// What it may do.
    pub scopes: Scopes,
    /// The roles its scopes came from (empty for service accounts with explicit scopes).
    pub roles: Vec<Role>,
    /// The API key the credential is or derives from (an `mcp_sk_` key, or a token exchanged
    /// for one): whatever the principal creates with it is derived from that key too.
    pub api_key: Option<String>,
}

impl Principal {
    /// The one tenant-and-scope rule of every service: the principal may act on a resource
    /// of `tenant` with `scope` only in its own tenant and only holding the scope. The
    /// tenant is checked first, so a caller learns nothing about another tenant's
    /// resources from which scopes it lacks.
    ///
    /// # Errors
    /// [`Denied::OtherTenant`] (NOT_FOUND to the caller) or [`Denied::Missing`]
    /// (PERMISSION_DENIED).
    pub fn authorize(&self, tenant: &str, scope: Scope) -> Result<(), Denied> {
        if self.tenant != tenant {
            return Err(Denied::OtherTenant);
        }
        Ok(self.require(scope)?)
    }

    /// Checks that the principal holds `scope`.
    ///
    /// # Errors
    /// [`MissingScope`] naming the scope (scopes are not secret; callers map this to
    /// PERMISSION_DENIED).
    pub fn require(&self, scope: Scope) -> Result<(), MissingScope> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(MissingScope(scope))
        }
    }
}

/// Why [`Principal::authorize`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The resource is in another tenant: answer NOT_FOUND, so its existence does not leak.
    #[error("another tenant")]
    OtherTenant,
    /// The principal's own tenant, but a scope is missing: answer PERMISSION_DENIED.
    #[error(transparent)]
    Missing(#[from] MissingScope),
}

/// The principal lacks a scope an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("missing scope {0}")]
pub struct MissingScope(pub Scope);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_tenant_is_refused_before_any_scope_is_looked_at() {
        let principal = Principal {
            tenant: "acme".into(),
            subject: "ada".into(),
            scopes: Scopes::parse("mcp:read").unwrap(),
            roles: Vec::new(),
            api_key: None,
        };
        assert_eq!(principal.authorize("acme", Scope::McpRead), Ok(()));
        assert_eq!(
            principal.authorize("acme", Scope::CredentialReveal),
            Err(Denied::Missing(MissingScope(Scope::CredentialReveal)))
        );
        // Even with the scope, and even without it: another tenant is only ever "not there".
        assert_eq!(
            principal.authorize("globex", Scope::McpRead),
            Err(Denied::OtherTenant)
        );
        assert_eq!(
            principal.authorize("globex", Scope::CredentialReveal),
            Err(Denied::OtherTenant)
        );
    }
}
