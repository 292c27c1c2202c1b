//! Tenants and principals.

use coffer_authn::{Role, Scopes};
use secrecy::{ExposeSecret as _, SecretString};

use super::Auth;
use crate::ids::PrincipalName;
use crate::source::Source;
use crate::store::{ChainEvent, PrincipalKind, PrincipalRow, TenantRow};
use crate::{Error, Result};

/// Shortest password accepted, in bytes.
pub(crate) const MIN_PASSWORD_LEN: usize = 12;
/// Longest password accepted, in bytes: bcrypt ignores everything past 72 bytes, so longer
/// passwords are refused rather than silently truncated.
pub(crate) const MAX_PASSWORD_LEN: usize = 72;

/// What CreatePrincipal creates.
pub(crate) enum NewPrincipal {
    /// A user with a password.
    User {
        /// The password (validated here).
        password: SecretString,
    },
    /// A service account with explicit scopes.
    ServiceAccount {
        /// Its scopes.
        scopes: Scopes,
    },
}

impl Auth {
    /// Creates a tenant.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`], [`Error::Database`].
    pub(crate) async fn create_tenant(
        &self,
        id: String,
        display_name: String,
    ) -> Result<TenantRow> {
        if display_name.chars().count() > 200 {
            return Err(Error::invalid("display_name", "at most 200 characters"));
        }
        let row = TenantRow {
            id,
            display_name,
            create_time: self.now(),
        };
        self.store.create_tenant(&row).await?;
        Ok(row)
    }

    /// A tenant.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Database`].
    pub(crate) async fn tenant(&self, id: &str) -> Result<TenantRow> {
        self.store
            .tenant(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("tenants/{id}")))
    }

    /// Creates a principal in `tenant`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad password; [`Error::NotFound`] for an unknown
    /// tenant; [`Error::AlreadyExists`]; [`Error::ResourceExhausted`] if hashing is saturated.
    pub(crate) async fn create_principal(
        &self,
        name: &PrincipalName,
        new: NewPrincipal,
        roles: Vec<Role>,
        source: &Source,
        actor: &str,
    ) -> Result<PrincipalRow> {
        let (kind, password_hash, scopes) = match new {
            NewPrincipal::User { password } => {
                let length = password.expose_secret().len();
                if !(MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&length) {
                    return Err(Error::invalid(
                        "password",
                        format!("must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} bytes"),
                    ));
                }
                (
                    PrincipalKind::User,
                    Some(self.passwords.hash(password, source).await?),
                    Scopes::default(),
                )
            }
            NewPrincipal::ServiceAccount { scopes } => {
                (PrincipalKind::ServiceAccount, None, scopes)
            }
        };
        let row = PrincipalRow {
            tenant: name.tenant().to_string(),
            id: name.id().to_owned(),
            kind: kind.to_owned(),
            password_hash,
            roles: role_text(&roles),
            scopes: scopes.to_string(),
            create_time: self.now(),
            generation: 0,
        };
        let subject = format!(
            "{name} kind={} roles=[{}] scopes=[{}]",
            row.kind.as_str(),
            row.roles,
            row.scopes
        );
        let event = ChainEvent {
            tenant: &row.tenant,
            actor,
            action: "principal.create",
            subject: &subject,
            outcome: "success",
        };
        self.store
            .create_principal(&row, self.audit_key(), &event)
            .await?;
        Ok(row)
    }

    /// One page of principals and the next page's token.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn list_principals(
        &self,
        tenant: &str,
        page_size: u32,
        after: &str,
    ) -> Result<(Vec<PrincipalRow>, Option<String>)> {
        let rows = self
            .store
            .list_principals(tenant, after, page_size + 1)
            .await?;
        Ok(coffer_server::paging::split_page(rows, page_size, |row| {
            row.id.clone()
        }))
    }

    /// Replaces a principal's roles. Its API keys' cached verifications are evicted here at
    /// once and on every replica (NOTIFY on PostgreSQL; the keys' change time for the poll
    /// that backs it up), so a demotion bounds its keys within a second.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Database`].
    pub(crate) async fn set_roles(
        &self,
        name: &PrincipalName,
        roles: &[Role],
        actor: &str,
    ) -> Result<PrincipalRow> {
        let (tenant, id) = (name.tenant().as_str(), name.id());
        let roles = role_text(roles);
        let subject = format!("{name} roles=[{roles}]");
        let event = ChainEvent {
            tenant,
            actor,
            action: "principal.set_roles",
            subject: &subject,
            outcome: "success",
        };
        let row = self
            .store
            .set_roles(
                (tenant, id),
                &roles,
                (self.now(), self.forget_after()),
                self.audit_key(),
                &event,
            )
            .await?
            .ok_or_else(|| Error::NotFound(name.to_string()))?;
        self.api_key_cache.evict_owner(tenant, id);
        self.store
            .notify_change(&format!("principal:{tenant}/{id}"))
            .await;
        Ok(row)
    }
}

/// Roles as stored: names, space-separated, sorted and deduplicated.
fn role_text(roles: &[Role]) -> String {
    let mut names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.join(" ")
}

/// Parses stored roles.
///
/// # Errors
/// [`Error::Corrupt`] for an unknown stored role.
pub(crate) fn stored_roles(text: &str) -> Result<Vec<Role>> {
    text.split_ascii_whitespace()
        .map(|name| Role::parse(name).ok_or(Error::Corrupt("unknown stored role")))
        .collect()
}

/// A principal's effective scopes: its roles' plus its explicit ones.
///
/// # Errors
/// [`Error::Corrupt`] for unknown stored roles or scopes.
pub(crate) fn effective_scopes(row: &PrincipalRow) -> Result<Scopes> {
    let roles = stored_roles(&row.roles)?;
    let explicit =
        Scopes::parse(&row.scopes).map_err(|_| Error::Corrupt("unknown stored scope"))?;
    Ok(coffer_authn::scope::scopes_of(&roles)
        .iter()
        .chain(explicit.iter())
        .collect())
}
