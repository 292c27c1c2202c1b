//! Re-wrap sweep rows and the queries a sweep pages through.

use sqlx::Row as _;

use super::Store;
use crate::{Error, Result};

/// A sweep's saved progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SweepRow {
    /// The version rows are being moved to.
    pub(crate) target_version: u32,
    /// Rows moved so far.
    pub(crate) rewrapped: u64,
    /// Items key-service refused so far.
    pub(crate) failed: u64,
}

/// A row to move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WrappedKey {
    /// Credential id.
    pub(crate) id: String,
    /// Its wrapped data key.
    pub(crate) wrapped_dek: Vec<u8>,
}

impl Store {
    /// The tenant's saved sweep and its cursor, if any.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn sweep(&self, tenant: &str) -> Result<Option<(SweepRow, String)>> {
        let row = sqlx::query(
            "SELECT target_version, rewrapped, failed, cursor FROM cred_rewrap_sweeps WHERE tenant = $1",
        )
        .bind(tenant)
        .fetch_optional(&self.db.pool)
        .await?;
        row.map(|row| {
            let count = |column: &str| -> Result<u64> {
                u64::try_from(row.try_get::<i64, _>(column)?)
                    .map_err(|_| Error::Corrupt("sweep counter"))
            };
            Ok((
                SweepRow {
                    target_version: u32::try_from(row.try_get::<i64, _>("target_version")?)
                        .map_err(|_| Error::Corrupt("sweep version"))?,
                    rewrapped: count("rewrapped")?,
                    failed: count("failed")?,
                },
                row.try_get::<String, _>("cursor")?,
            ))
        })
        .transpose()
    }

    /// Saves a sweep's progress.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn save_sweep(
        &self,
        tenant: &str,
        sweep: &SweepRow,
        cursor: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO cred_rewrap_sweeps (tenant, target_version, cursor, rewrapped, failed, update_time) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant) DO UPDATE SET \
             target_version = $2, cursor = $3, rewrapped = $4, failed = $5, update_time = $6",
        )
        .bind(tenant)
        .bind(i64::from(sweep.target_version))
        .bind(cursor)
        .bind(i64::try_from(sweep.rewrapped).unwrap_or(i64::MAX))
        .bind(i64::try_from(sweep.failed).unwrap_or(i64::MAX))
        .bind(now)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Up to `limit` rows of `tenant` after `after` still wrapped below `version`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn keys_below(
        &self,
        tenant: &str,
        version: u32,
        after: &str,
        limit: u32,
    ) -> Result<Vec<WrappedKey>> {
        let rows = sqlx::query(
            "SELECT id, wrapped_dek FROM cred_credentials \
             WHERE tenant = $1 AND dek_key_version < $2 AND id > $3 ORDER BY id LIMIT $4",
        )
        .bind(tenant)
        .bind(i64::from(version))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(WrappedKey {
                    id: row.try_get("id")?,
                    wrapped_dek: row.try_get("wrapped_dek")?,
                })
            })
            .collect()
    }

    /// How many of `tenant`'s rows are still below `version`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn count_below(&self, tenant: &str, version: u32) -> Result<u64> {
        let count: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM cred_credentials WHERE tenant = $1 AND dek_key_version < $2",
        )
        .bind(tenant)
        .bind(i64::from(version))
        .fetch_one(&self.db.pool)
        .await?
        .try_get("n")?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Replaces a row's wrapped data key if it is still `old` (a concurrent update or sweep
    /// wins otherwise). Returns whether it was replaced.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn replace_wrapped(
        &self,
        tenant: &str,
        id: &str,
        old: &[u8],
        new: &[u8],
        version: u32,
    ) -> Result<bool> {
        let updated = sqlx::query(
            "UPDATE cred_credentials SET wrapped_dek = $1, dek_key_version = $2 \
             WHERE tenant = $3 AND id = $4 AND wrapped_dek = $5",
        )
        .bind(new)
        .bind(i64::from(version))
        .bind(tenant)
        .bind(id)
        .bind(old)
        .execute(&self.db.pool)
        .await?;
        let replaced = updated.rows_affected() == 1;
        if replaced {
            self.changed(tenant, id).await;
        }
        Ok(replaced)
    }

    /// Every tenant with credentials (for the background sweep).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn tenants(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT tenant FROM cred_credentials")
            .fetch_all(&self.db.pool)
            .await?;
        rows.iter()
            .map(|row| row.try_get("tenant").map_err(Error::from))
            .collect()
    }
}
