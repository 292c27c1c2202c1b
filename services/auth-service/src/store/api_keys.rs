//! API-key rows.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use coffer_crypto::AuditKey;

use super::{ChainEvent, Store};
use crate::{Error, Result};

/// An API key row: the secret only as bcrypt hashes.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ApiKeyRow {
    /// Public id.
    pub(crate) id: String,
    /// Tenant id.
    pub(crate) tenant: String,
    /// Owner principal id.
    pub(crate) principal_id: String,
    /// Label.
    pub(crate) display_name: String,
    /// bcrypt of the secret part.
    pub(crate) secret_hash: String,
    /// bcrypt of the previous secret part, during a roll's grace period.
    pub(crate) previous_hash: Option<String>,
    /// Until when the previous secret is accepted.
    pub(crate) previous_valid_until: Option<i64>,
    /// Scopes, space-separated.
    pub(crate) scopes: String,
    /// Display hint.
    pub(crate) hint: String,
    /// Creator.
    pub(crate) created_by: String,
    /// Creation time.
    pub(crate) create_time: i64,
    /// Expiry, if any.
    pub(crate) expire_time: Option<i64>,
    /// Last successful verification.
    pub(crate) last_used_time: Option<i64>,
    /// Revocation time, if revoked.
    pub(crate) revoke_time: Option<i64>,
    /// The API key behind the creator's bearer, if any: revoking it revokes this one.
    pub(crate) parent_id: Option<String>,
}

impl std::fmt::Debug for ApiKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRow")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("principal_id", &self.principal_id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// A roll's new secret (see [`Store::roll_api_key`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RolledSecret<'a> {
    /// bcrypt of the new secret part.
    pub(crate) hash: &'a str,
    /// The new display hint.
    pub(crate) hint: &'a str,
    /// Until when the previous secret stays valid.
    pub(crate) previous_until: i64,
    /// When.
    pub(crate) now: i64,
}

impl Store {
    /// Inserts a new key and its audit event, in one transaction.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn insert_api_key(
        &self,
        row: &ApiKeyRow,
        key: &AuditKey,
        event: &ChainEvent<'_>,
    ) -> Result<()> {
        let mut tx = self.db.pool.begin().await?;
        // `change_time` 0: a new key is in no replica's cache, so the change poll has nothing
        // to evict for it (it marks revocations, rolls and demotions only).
        sqlx::query(
            "INSERT INTO auth_api_keys (id, tenant, principal_id, display_name, secret_hash, \
             scopes, hint, created_by, create_time, expire_time, change_time, parent_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11)",
        )
        .bind(&row.id)
        .bind(&row.tenant)
        .bind(&row.principal_id)
        .bind(&row.display_name)
        .bind(&row.secret_hash)
        .bind(&row.scopes)
        .bind(&row.hint)
        .bind(&row.created_by)
        .bind(row.create_time)
        .bind(row.expire_time)
        .bind(&row.parent_id)
        .execute(&mut *tx)
        .await?;
        super::audit::append(&mut tx, key, event, row.create_time).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A key by its public id (any tenant: callers check the tenant).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRow>> {
        let row = sqlx::query(concat!(select_api_key!(), " WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?;
        row.as_ref().map(api_key_row).transpose()
    }

    /// Up to `limit` keys of `tenant` with ids after `after`, in id order.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn list_api_keys(
        &self,
        tenant: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<ApiKeyRow>> {
        self.tenant_page(
            concat!(
                select_api_key!(),
                " WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3"
            ),
            (tenant, after, limit),
            api_key_row,
        )
        .await
    }

    /// Revokes a key of `tenant` and, recursively, the keys created with it, in one
    /// transaction, recording each in the revocation feed (kept for `forget_after` seconds:
    /// the longest an exchanged token lives). Idempotent. Returns the key (`None` if there is
    /// no such key) and the ids this call revoked.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn revoke_api_key(
        &self,
        tenant: &str,
        id: &str,
        now: i64,
        forget_after: i64,
        key: &AuditKey,
        event: &ChainEvent<'_>,
    ) -> Result<(Option<ApiKeyRow>, Vec<String>)> {
        let mut tx = self.db.pool.begin().await?;
        let mut revoked = Vec::new();
        let mut frontier = vec![id.to_owned()];
        // Bounded: a key is revoked at most once, so each id enters the frontier once.
        while let Some(next) = frontier.pop() {
            let updated = sqlx::query(
                "UPDATE auth_api_keys SET revoke_time = $3, change_time = $3 \
                 WHERE tenant = $1 AND id = $2 AND revoke_time IS NULL",
            )
            .bind(tenant)
            .bind(&next)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 0 && next != id {
                continue;
            }
            super::insert_revocation(
                &mut *tx,
                super::RevocationKind::ApiKey,
                &next,
                now,
                now.saturating_add(forget_after),
                0,
            )
            .await?;
            let children = sqlx::query(
                "SELECT id FROM auth_api_keys WHERE parent_id = $1 AND revoke_time IS NULL",
            )
            .bind(&next)
            .fetch_all(&mut *tx)
            .await?;
            for child in &children {
                frontier.push(child.try_get("id")?);
            }
            if updated.rows_affected() > 0 {
                revoked.push(next);
            }
        }
        if !revoked.is_empty() {
            super::audit::append(&mut tx, key, event, now).await?;
        }
        tx.commit().await?;
        let row = self.api_key(id).await?.filter(|row| row.tenant == tenant);
        Ok((row, revoked))
    }

    /// Replaces an unrevoked key's secret, keeping the old one valid until `previous_until`,
    /// with its audit event in the same transaction. `None` if there is no such unrevoked key.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn roll_api_key(
        &self,
        tenant: &str,
        id: &str,
        new: &RolledSecret<'_>,
        key: &AuditKey,
        event: &ChainEvent<'_>,
    ) -> Result<Option<ApiKeyRow>> {
        let mut tx = self.db.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE auth_api_keys SET previous_hash = secret_hash, previous_valid_until = $5, \
             secret_hash = $3, hint = $4, change_time = $6 \
             WHERE tenant = $1 AND id = $2 AND revoke_time IS NULL",
        )
        .bind(tenant)
        .bind(id)
        .bind(new.hash)
        .bind(new.hint)
        .bind(new.previous_until)
        .bind(new.now)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }
        super::audit::append(&mut tx, key, event, new.now).await?;
        tx.commit().await?;
        self.api_key(id).await
    }

    /// Records a successful use.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn touch_api_key(&self, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE auth_api_keys SET last_used_time = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Ids of keys revoked or rolled at or after `since` (for cache invalidation).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn api_keys_changed_since(&self, since: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM auth_api_keys WHERE change_time >= $1")
            .bind(since)
            .fetch_all(&self.db.pool)
            .await?;
        rows.iter()
            .map(|row| row.try_get("id").map_err(Error::from))
            .collect()
    }
}

/// The API-key columns [`api_key_row`] reads (by name).
macro_rules! select_api_key {
    () => {
        "SELECT id, tenant, principal_id, display_name, secret_hash, previous_hash, \
         previous_valid_until, scopes, hint, created_by, create_time, expire_time, \
         last_used_time, revoke_time, parent_id FROM auth_api_keys"
    };
}
use select_api_key;

fn api_key_row(row: &AnyRow) -> Result<ApiKeyRow> {
    Ok(ApiKeyRow {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        principal_id: row.try_get("principal_id")?,
        display_name: row.try_get("display_name")?,
        secret_hash: row.try_get("secret_hash")?,
        previous_hash: row.try_get("previous_hash")?,
        previous_valid_until: row.try_get("previous_valid_until")?,
        scopes: row.try_get("scopes")?,
        hint: row.try_get("hint")?,
        created_by: row.try_get("created_by")?,
        create_time: row.try_get("create_time")?,
        expire_time: row.try_get("expire_time")?,
        last_used_time: row.try_get("last_used_time")?,
        revoke_time: row.try_get("revoke_time")?,
        parent_id: row.try_get("parent_id")?,
    })
}
