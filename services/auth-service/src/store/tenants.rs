//! Tenants (`auth_tenants`).

use sqlx::Row as _;

use super::Store;
use crate::{Error, Result};

/// A tenant row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TenantRow {
    /// Tenant id.
    pub(crate) id: String,
    /// Display name.
    pub(crate) display_name: String,
    /// Creation time, unix seconds.
    pub(crate) create_time: i64,
}

impl Store {
    /// Inserts a tenant.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`], [`Error::Database`].
    pub(crate) async fn create_tenant(&self, row: &TenantRow) -> Result<()> {
        let inserted = sqlx::query(
            "INSERT INTO auth_tenants (id, display_name, create_time) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&row.id)
        .bind(&row.display_name)
        .bind(row.create_time)
        .execute(&self.db.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(Error::AlreadyExists(format!("tenants/{}", row.id)));
        }
        Ok(())
    }

    /// A tenant, if it exists.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn tenant(&self, id: &str) -> Result<Option<TenantRow>> {
        let row =
            sqlx::query("SELECT id, display_name, create_time FROM auth_tenants WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.db.pool)
                .await?;
        row.map(|row| {
            Ok(TenantRow {
                id: row.try_get("id")?,
                display_name: row.try_get("display_name")?,
                create_time: row.try_get("create_time")?,
            })
        })
        .transpose()
    }
}
