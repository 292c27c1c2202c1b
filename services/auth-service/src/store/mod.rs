//! The auth-service's storage (sqlx `Any`: one code path for SQLite and PostgreSQL; see
//! `coffer_db` for the conventions).

mod api_keys;
mod audit;
mod factors;
mod lockouts;
mod oauth;
mod principals;
mod refresh_tokens;
mod revocations;
mod signing_keys;
mod tenants;

pub(crate) use api_keys::{ApiKeyRow, RolledSecret};
pub(crate) use audit::{ChainEvent, ChainHead, ChainRow};
pub(crate) use factors::Confirmation;
pub(crate) use oauth::{
    ClientOrigin, ClientRow, CodeRow, CodeSpend, ConsentRow, Issued, RequestRow, SessionRow,
};
pub(crate) use principals::{PrincipalKind, PrincipalRow};
pub(crate) use refresh_tokens::{RefreshRow, Spend};
pub(crate) use revocations::insert_revocation;
pub(crate) use revocations::{RevocationKind, RevocationRow};
pub(crate) use signing_keys::SigningKeyRow;
pub(crate) use tenants::TenantRow;

use crate::Result;

/// The PostgreSQL NOTIFY channel for revocations, rolls and signing-key rotations.
pub(crate) const CHANGES_CHANNEL: &str = "coffer_auth_changes";

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations/sqlite");
static MIGRATIONS: coffer_db::Migrations = coffer_db::Migrations {
    sqlite: &SQLITE_MIGRATIONS,
    postgres: &POSTGRES_MIGRATIONS,
    schema: "coffer_auth",
    table: "auth_tenants",
};
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator =
    sqlx::migrate!("src/store/migrations/postgres");

/// The auth-service's database handle. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    db: coffer_db::Database,
}

impl Store {
    /// Connects and applies pending migrations.
    ///
    /// # Errors
    /// [`Error::Open`].
    pub(crate) async fn connect(database: &coffer_db::Config) -> Result<Self> {
        Ok(Self {
            db: coffer_db::connect(database, &MIGRATIONS).await?,
        })
    }

    /// SQLite or PostgreSQL.
    pub(crate) fn backend(&self) -> coffer_db::Backend {
        self.db.backend
    }

    /// Tells every replica listening on PostgreSQL about a change (`apikey:{id}` or
    /// `signing`), so caches are evicted at once. Nothing on SQLite (one process; the change
    /// poll covers it). Best effort: the poll is the backstop, so a failed notify is logged.
    pub(crate) async fn notify_change(&self, change: &str) {
        self.db.notify(CHANGES_CHANNEL, change).await;
    }

    /// Closes the pool.
    pub(crate) async fn close(&self) {
        self.db.close().await;
    }

    /// One keyset page of a tenant's rows: `query` ends in
    /// `WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3`; `row` maps each.
    ///
    /// # Errors
    /// [`crate::Error::Database`], or what `row` finds wrong.
    async fn tenant_page<T>(
        &self,
        query: &'static str,
        (tenant, after, limit): (&str, &str, u32),
        row: fn(&sqlx::any::AnyRow) -> Result<T>,
    ) -> Result<Vec<T>> {
        let rows = sqlx::query(query)
            .bind(tenant)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.db.pool)
            .await?;
        rows.iter().map(row).collect()
    }
}
