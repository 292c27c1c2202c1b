//! Who may do what in credential-service: the caller's bearer, verified by
//! [`Authenticator`], must belong to the tenant of the resource (another tenant's resource is
//! NOT_FOUND) and hold the operation's scope (a missing scope on a credential of its own tenant
//! is audited as denied, then PERMISSION_DENIED).

use std::sync::Arc;

use coffer_authn::authenticator::Authenticator;
use coffer_authn::{Denied, Principal, Scope};
use tonic::Request;

use crate::names::{CredentialName, TenantId};
use crate::ops::{Actor, Credentials};
use crate::{Error, Result};

/// The authorization of every credential-service call.
pub(crate) struct Gate {
    authenticator: Arc<Authenticator>,
    credentials: Arc<Credentials>,
}

impl Gate {
    /// Authenticates with `authenticator`, audits denials through `credentials`.
    pub(crate) fn new(authenticator: Arc<Authenticator>, credentials: Arc<Credentials>) -> Self {
        Self {
            authenticator,
            credentials,
        }
    }

    /// Parses a `parent` and authorizes the caller in that tenant.
    pub(crate) async fn parent<T>(
        &self,
        request: &Request<T>,
        parent: &str,
        scope: Scope,
    ) -> Result<(TenantId, Actor)> {
        let tenant = TenantId::from_name("parent", parent)?;
        let actor = self
            .authorize(request, scope, Target::Tenant(&tenant))
            .await?;
        Ok((tenant, actor))
    }

    /// Parses a credential `name` and authorizes the caller on it.
    pub(crate) async fn credential<T>(
        &self,
        request: &Request<T>,
        name: &str,
        scope: Scope,
    ) -> Result<(CredentialName, Actor)> {
        let name = CredentialName::parse("name", name)?;
        let actor = self
            .authorize(request, scope, Target::Credential(&name))
            .await?;
        Ok((name, actor))
    }

    /// Authenticates the caller and checks it may act on `target` with `scope`. Another
    /// tenant is NOT_FOUND; a missing scope on a credential of the caller's own tenant is
    /// audited as denied, then PERMISSION_DENIED.
    async fn authorize<T>(
        &self,
        request: &Request<T>,
        scope: Scope,
        target: Target<'_>,
    ) -> Result<Actor> {
        let principal = self.authenticator.authenticate(request).await?;
        let actor = actor(&principal, request);
        let tenant = match target {
            Target::Tenant(tenant) => tenant,
            Target::Credential(name) => name.tenant(),
        };
        match principal.authorize(tenant.as_str(), scope) {
            Ok(()) => Ok(actor),
            Err(Denied::OtherTenant) => Err(Error::NotFound(target.resource())),
            Err(Denied::Missing(missing)) => {
                if let Target::Credential(name) = target {
                    self.credentials
                        .audit_denied(tenant.as_str(), &name.to_string(), scope.as_str(), &actor)
                        .await?;
                }
                Err(Error::ScopeMissing(missing.0))
            }
        }
    }
}

/// What a call acts on.
#[derive(Clone, Copy)]
enum Target<'a> {
    /// A tenant as a whole (`parent`).
    Tenant(&'a TenantId),
    /// One credential.
    Credential(&'a CredentialName),
}

impl Target<'_> {
    /// The resource name, for a NOT_FOUND.
    fn resource(self) -> String {
        match self {
            Target::Tenant(tenant) => tenant.name(),
            Target::Credential(name) => name.to_string(),
        }
    }
}

/// Who acts, as audit events name it, with the caller's request id.
fn actor<T>(principal: &Principal, request: &Request<T>) -> Actor {
    let request_id = request
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 128)
        .unwrap_or_default()
        .to_owned();
    Actor {
        id: principal.subject.clone(),
        request_id,
    }
}
