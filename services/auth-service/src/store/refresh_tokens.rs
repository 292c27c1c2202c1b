//! Refresh tokens (`auth_refresh_tokens`) and their families (`auth_refresh_families`).

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::Store;
use super::principals::{PrincipalRow, principal_row, select_principal};
use crate::Result;

/// A refresh token row (the token itself is only stored as its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefreshRow {
    /// The family: every token descended from one login.
    pub(crate) family: String,
    /// Tenant id.
    pub(crate) tenant: String,
    /// Principal id.
    pub(crate) principal_id: String,
    /// Granted scopes.
    pub(crate) scope: String,
    /// Issue time.
    pub(crate) create_time: i64,
    /// Expiry.
    pub(crate) expire_time: i64,
    /// When it was exchanged.
    pub(crate) spent_time: Option<i64>,
    /// When it (or its family) was revoked.
    pub(crate) revoke_time: Option<i64>,
    /// The OAuth client it was issued to; `None` for Login's tokens.
    pub(crate) client_id: Option<String>,
    /// The OAuth resource its access tokens are for (their `aud`); `None` for Login's.
    pub(crate) audience: Option<String>,
}

/// What spending a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Spend {
    /// It was valid and is now spent, its successor written: the principal as it is now, and
    /// the successor's row.
    Spent(PrincipalRow, RefreshRow),
    /// It had been spent before: its family is now revoked.
    Reused(RefreshRow),
    /// Unknown, expired or revoked.
    Invalid,
}

/// Inserts a refresh-token row (on the pool, or in the caller's transaction).
async fn insert_refresh<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    token_hash: &str,
    row: &RefreshRow,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO auth_refresh_tokens (token_hash, family, tenant, principal_id, scope, \
         create_time, expire_time, client_id, audience) VALUES ($1, $2, $3, $4, $5, $6, $7, \
         $8, $9)",
    )
    .bind(token_hash)
    .bind(&row.family)
    .bind(&row.tenant)
    .bind(&row.principal_id)
    .bind(&row.scope)
    .bind(row.create_time)
    .bind(row.expire_time)
    .bind(&row.client_id)
    .bind(&row.audience)
    .execute(executor)
    .await?;
    Ok(())
}

/// The refresh-token columns [`refresh_row`] reads (by name).
macro_rules! refresh_columns {
    () => {
        "family, tenant, principal_id, scope, create_time, expire_time, spent_time, revoke_time, \
         client_id, audience"
    };
}

fn refresh_row(row: &AnyRow) -> Result<RefreshRow> {
    Ok(RefreshRow {
        family: row.try_get("family")?,
        tenant: row.try_get("tenant")?,
        principal_id: row.try_get("principal_id")?,
        scope: row.try_get("scope")?,
        create_time: row.try_get("create_time")?,
        expire_time: row.try_get("expire_time")?,
        spent_time: row.try_get("spent_time")?,
        revoke_time: row.try_get("revoke_time")?,
        client_id: row.try_get("client_id")?,
        audience: row.try_get("audience")?,
    })
}

/// Makes a spent refresh token's successor: its hash and row, from the spent row and its
/// principal.
pub(crate) type Successor<'a> =
    dyn Fn(&RefreshRow, &PrincipalRow) -> Result<(String, RefreshRow)> + Sync + 'a;

impl Store {
    /// Stores a new refresh token by its hash.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn insert_refresh_token(
        &self,
        token_hash: &str,
        row: &RefreshRow,
    ) -> Result<()> {
        insert_refresh(&self.db.pool, token_hash, row).await
    }

    /// Spends a refresh token and writes its successor, in one transaction: exactly one caller
    /// can spend a valid token, never one of a revoked family, and `successor` (given the
    /// spent row and its principal as they are now) names the new token's hash and row.
    /// Presenting a spent token revokes its whole family.
    ///
    /// # Errors
    /// [`Error::Database`], or `successor`'s error (nothing is then spent).
    pub(crate) async fn spend_refresh_token(
        &self,
        token_hash: &str,
        now: i64,
        successor: &Successor<'_>,
    ) -> Result<Spend> {
        let mut tx = self.db.pool.begin().await?;
        let spent = sqlx::query(concat!(
            "UPDATE auth_refresh_tokens SET spent_time = $2 WHERE token_hash = $1 ",
            "AND spent_time IS NULL AND revoke_time IS NULL AND expire_time > $2 ",
            "AND NOT EXISTS (SELECT 1 FROM auth_refresh_families f ",
            "WHERE f.family = auth_refresh_tokens.family) ",
            "RETURNING ",
            refresh_columns!()
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = spent {
            let row = refresh_row(&row)?;
            let principal = sqlx::query(concat!(
                select_principal!(),
                " WHERE tenant = $1 AND id = $2"
            ))
            .bind(&row.tenant)
            .bind(&row.principal_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(principal) = principal.as_ref().map(principal_row).transpose()? else {
                // The principal is gone: the token is spent for nothing (committed).
                tx.commit().await?;
                return Ok(Spend::Invalid);
            };
            let (hash, next) = successor(&row, &principal)?;
            insert_refresh(&mut *tx, &hash, &next).await?;
            tx.commit().await?;
            return Ok(Spend::Spent(principal, next));
        }
        tx.rollback().await?;
        let Some(existing) = self.refresh_token(token_hash).await? else {
            return Ok(Spend::Invalid);
        };
        if existing.spent_time.is_some() {
            self.revoke_refresh_family(&existing.family, now).await?;
            return Ok(Spend::Reused(existing));
        }
        Ok(Spend::Invalid)
    }

    /// A refresh token's row, if stored.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            refresh_columns!(),
            " FROM auth_refresh_tokens WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.db.pool)
        .await?;
        row.as_ref().map(refresh_row).transpose()
    }

    /// Revokes every refresh token of a family.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn revoke_refresh_family(&self, family: &str, now: i64) -> Result<()> {
        let mut tx = self.db.pool.begin().await?;
        sqlx::query(
            "INSERT INTO auth_refresh_families (family, revoke_time) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(family)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE auth_refresh_tokens SET revoke_time = $2 WHERE family = $1 AND revoke_time IS NULL",
        )
        .bind(family)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether a refresh-token family was revoked (reuse detected, or RFC 7009 revocation).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn is_refresh_family_revoked(&self, family: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM auth_refresh_families WHERE family = $1")
            .bind(family)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.is_some())
    }
}
