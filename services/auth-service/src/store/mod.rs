//! The auth-service's storage (sqlx `Any`: one code path for SQLite and PostgreSQL; see
//! `coffer_db` for the conventions).

mod api_keys;
mod audit;
mod lockouts;
mod principals;
mod refresh_tokens;
mod revocations;
mod signing_keys;
mod tenants;

pub use api_keys::{ApiKeyRow, RolledSecret};
pub use audit::{ChainEvent, ChainHead, ChainRow};
pub use principals::{PrincipalKind, PrincipalRow};
pub use refresh_tokens::{RefreshRow, Spend, Successor};
pub(crate) use revocations::insert_revocation;
pub use revocations::{RevocationKind, RevocationRow};
pub use signing_keys::SigningKeyRow;
pub use tenants::TenantRow;

use crate::Result;

/// The PostgreSQL NOTIFY channel for revocations, rolls and signing-key rotations.
pub const CHANGES_CHANNEL: &str = "coffer_auth_changes";

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations/sqlite");
static MIGRATIONS: coffer_db::Migrations = coffer_db::Migrations {
    sqlite: &SQLITE_MIGRATIONS,
    postgres: &POSTGRES_MIGRATIONS,
};
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator =
    sqlx::migrate!("src/store/migrations/postgres");

/// The auth-service's database handle. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    db: coffer_db::Database,
}

impl Store {
    /// Connects and applies pending migrations.
    ///
    /// # Errors
    /// [`Error::Open`].
    pub async fn connect(database: &coffer_db::Config) -> Result<Self> {
        Ok(Self {
            db: coffer_db::connect(database, &MIGRATIONS).await?,
        })
    }

    /// SQLite or PostgreSQL.
    pub fn backend(&self) -> coffer_db::Backend {
        self.db.backend
    }

    /// Tells every replica listening on PostgreSQL about a change (`apikey:{id}` or
    /// `signing`), so caches are evicted at once. Nothing on SQLite (one process; the change
    /// poll covers it). Best effort: the poll is the backstop, so a failed notify is logged.
    pub async fn notify_change(&self, change: &str) {
        if self.db.backend != coffer_db::Backend::Postgres {
            return;
        }
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGES_CHANNEL)
            .bind(change)
            .execute(&self.db.pool)
            .await;
        if let Err(error) = sent {
            tracing::warn!(%error, "change notification failed; replicas rely on polling");
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.db.close().await;
    }
}
