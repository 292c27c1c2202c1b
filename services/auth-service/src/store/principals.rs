//! Principals: users and service accounts (`auth_principals`), with their roles and role generation.

use coffer_crypto::AuditKey;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::revocations::{RevocationKind, insert_revocation};
use super::{ChainEvent, Store, audit};
use crate::{Error, Result};

/// A principal row. `password_hash` is a bcrypt hash, never a password.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PrincipalRow {
    /// Tenant id.
    pub(crate) tenant: String,
    /// Principal id.
    pub(crate) id: String,
    /// A user or a service account.
    pub(crate) kind: PrincipalKind,
    /// bcrypt hash of the password (users).
    pub(crate) password_hash: Option<String>,
    /// Role names, space-separated.
    pub(crate) roles: String,
    /// Explicit scopes, space-separated.
    pub(crate) scopes: String,
    /// Creation time, unix seconds.
    pub(crate) create_time: i64,
    /// Role generation: raised by every SetRoles; access tokens carry it.
    pub(crate) generation: u64,
}

impl std::fmt::Debug for PrincipalRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrincipalRow")
            .field("tenant", &self.tenant)
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// What a principal is, as stored (`user`, `service_account`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrincipalKind {
    /// A person, who logs in with a password.
    User,
    /// A machine identity with explicit scopes.
    ServiceAccount,
}

impl PrincipalKind {
    /// The stored form.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::ServiceAccount => "service_account",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [PrincipalKind::User, PrincipalKind::ServiceAccount]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// The principal columns [`principal_row`] reads (by name).
macro_rules! select_principal {
    () => {
        "SELECT tenant, id, kind, password_hash, roles, scopes, create_time, generation \
         FROM auth_principals"
    };
}
pub(super) use select_principal;

pub(super) fn principal_row(row: &AnyRow) -> Result<PrincipalRow> {
    Ok(PrincipalRow {
        tenant: row.try_get("tenant")?,
        id: row.try_get("id")?,
        kind: PrincipalKind::parse(&row.try_get::<String, _>("kind")?)
            .ok_or(Error::Corrupt("principal kind"))?,
        password_hash: row.try_get("password_hash")?,
        roles: row.try_get("roles")?,
        scopes: row.try_get("scopes")?,
        create_time: row.try_get("create_time")?,
        generation: u64::try_from(row.try_get::<i64, _>("generation")?)
            .map_err(|_| Error::Corrupt("principal generation"))?,
    })
}

impl Store {
    /// Inserts a principal into an existing tenant.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown tenant, [`Error::AlreadyExists`], [`Error::Database`].
    pub(crate) async fn create_principal(
        &self,
        row: &PrincipalRow,
        key: &AuditKey,
        event: &ChainEvent<'_>,
    ) -> Result<()> {
        if self.tenant(&row.tenant).await?.is_none() {
            return Err(Error::NotFound(format!("tenants/{}", row.tenant)));
        }
        let mut tx = self.db.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO auth_principals (tenant, id, kind, password_hash, roles, scopes, \
             create_time) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(&row.tenant)
        .bind(&row.id)
        .bind(row.kind.as_str())
        .bind(row.password_hash.as_deref())
        .bind(&row.roles)
        .bind(&row.scopes)
        .bind(row.create_time)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(Error::AlreadyExists(format!(
                "tenants/{}/principals/{}",
                row.tenant, row.id
            )));
        }
        audit::append(&mut tx, key, event, row.create_time).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A principal, if it exists.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn principal(&self, tenant: &str, id: &str) -> Result<Option<PrincipalRow>> {
        let row = sqlx::query(concat!(
            select_principal!(),
            " WHERE tenant = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.db.pool)
        .await?;
        row.map(|row| principal_row(&row)).transpose()
    }

    /// Up to `limit` principals of `tenant` with ids after `after`, in id order.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn list_principals(
        &self,
        tenant: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<PrincipalRow>> {
        self.tenant_page(
            concat!(
                select_principal!(),
                " WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3"
            ),
            (tenant, after, limit),
            principal_row,
        )
        .await
    }

    /// Replaces a principal's roles, raises its token generation (recording it in the
    /// revocation feed for `forget_after` seconds, so its older access tokens are refused
    /// everywhere), and marks its API keys changed at `now` (so every replica's change poll
    /// evicts their cached verifications), in one transaction with its audit event; returns
    /// the updated row, or `None` if it does not exist.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn set_roles(
        &self,
        (tenant, id): (&str, &str),
        roles: &str,
        (now, forget_after): (i64, i64),
        key: &AuditKey,
        event: &ChainEvent<'_>,
    ) -> Result<Option<PrincipalRow>> {
        let mut tx = self.db.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE auth_principals SET roles = $1, generation = generation + 1 \
             WHERE tenant = $2 AND id = $3 RETURNING generation",
        )
        .bind(roles)
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(updated) = updated else {
            return Ok(None);
        };
        let generation =
            u64::try_from(updated.try_get::<i64, _>("generation")?).unwrap_or(u64::MAX);
        insert_revocation(
            &mut *tx,
            RevocationKind::Principal,
            &format!("{tenant}/{id}"),
            now,
            now.saturating_add(forget_after),
            generation,
        )
        .await?;
        sqlx::query(
            "UPDATE auth_api_keys SET change_time = $3 WHERE tenant = $1 AND principal_id = $2",
        )
        .bind(tenant)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        audit::append(&mut tx, key, event, now).await?;
        tx.commit().await?;
        self.principal(tenant, id).await
    }
}
