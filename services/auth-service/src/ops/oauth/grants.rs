//! A user's grants (remembered consents): listed and withdrawn by the user, with a bearer or
//! through the browser sign-in.

use secrecy::SecretString;
use sha2::{Digest as _, Sha256};

use crate::ops::Auth;
use crate::store::{ClientOrigin, ConsentRow};
use crate::{Error, Result};

/// A grant as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    /// Its id: the first 128 bits of SHA-256 over client id and resource, in hex.
    pub(crate) id: String,
    pub(crate) client_name: String,
    pub(crate) consent: ConsentRow,
}

/// The id of the grant of `client_id` for `resource`.
fn grant_id(client_id: &str, resource: &str) -> String {
    Sha256::digest(format!("{client_id}\n{resource}").as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Auth {
    /// The grants of a user.
    ///
    /// # Errors
    /// Storage errors.
    pub(crate) async fn grants(&self, tenant: &str, principal_id: &str) -> Result<Vec<Grant>> {
        let mut grants = Vec::new();
        for consent in self.store.consents(tenant, principal_id).await? {
            // Names of stored clients; a metadata-document client is shown by its URL, not
            // fetched again for a list.
            let client_name = match self.store.client(&consent.client_id).await? {
                Some(client) if client.origin != ClientOrigin::Document => client.client_name,
                _ => consent.client_id.clone(),
            };
            grants.push(Grant {
                id: grant_id(&consent.client_id, &consent.resource),
                client_name,
                consent,
            });
        }
        Ok(grants)
    }

    /// Withdraws the grant `id` of a user (see RevokeGrant).
    ///
    /// # Errors
    /// [`Error::NotFound`] for no such grant; storage errors.
    pub(crate) async fn revoke_grant(
        &self,
        tenant: &str,
        principal_id: &str,
        id: &str,
    ) -> Result<Grant> {
        let grant = self
            .grants(tenant, principal_id)
            .await?
            .into_iter()
            .find(|grant| grant.id == id)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "tenants/{tenant}/principals/{principal_id}/grants/{id}"
                ))
            })?;
        self.store
            .revoke_consent(&grant.consent, self.now())
            .await?;
        tracing::info!(tenant, client_id = %grant.consent.client_id, "OAuth grant revoked");
        Ok(grant)
    }

    /// The user a live browser sign-in speaks for: `(tenant, id)`.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for an unknown or expired session.
    pub(crate) async fn session_user(&self, session: &SecretString) -> Result<(String, String)> {
        let (_, row) = self
            .live_session(session)
            .await?
            .ok_or(Error::unauthenticated("unknown or expired session"))?;
        Ok((row.tenant, row.principal_id))
    }
}
