//! The key-service's storage: two tables, one code path for SQLite and PostgreSQL (sqlx `Any`).
//! See `coffer_db` for the conventions that keep one SQL text valid on both.
//!
//! Every change to a key runs in one transaction that first locks the key's row (an UPDATE that
//! changes nothing: a row lock on PostgreSQL, the write lock on SQLite), then reads it, lets the
//! caller decide, and writes. Concurrent changes to one key therefore serialize, which keeps
//! version numbers gap-free.

mod record;

use sqlx::Row as _;
use sqlx::any::AnyRow;

pub(crate) use coffer_db::fresh::MAX_TTL as MAX_RECORD_CACHE_TTL;
pub(crate) use record::{KeyRecord, KeyState};

use crate::names::{KeyName, stored_key_name};
use crate::{Error, Result};

/// `SELECT` of every `kms_keys` column [`KeyRecord::from_row`] reads, then `$tail`. A macro
/// so the SQL stays a static string (sqlx refuses dynamically built SQL).
macro_rules! select_key {
    ($tail:literal) => {
        concat!(
            "SELECT tenant, key_id, primary_version, min_decryption_version, ",
            "min_encryption_version, deletion_allowed, state, disabled, create_time, ",
            "update_time, destroy_time FROM kms_keys ",
            $tail
        )
    };
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations/sqlite");
static MIGRATIONS: coffer_db::Migrations = coffer_db::Migrations {
    sqlite: &SQLITE_MIGRATIONS,
    postgres: &POSTGRES_MIGRATIONS,
    schema: "coffer_key",
    table: "kms_keys",
};
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator =
    sqlx::migrate!("src/store/migrations/postgres");

/// A wrapped key version as stored.
#[derive(Debug, Clone)]
pub(crate) struct StoredVersion {
    /// The root key version whose KEK wrapped it.
    pub(crate) root_version: u32,
    /// The wrapped material (an envelope).
    pub(crate) wrapped: Vec<u8>,
}

/// One version row, for root-key rotation.
#[derive(Debug, Clone)]
pub(crate) struct VersionRow {
    /// The key.
    pub(crate) name: KeyName,
    /// The key version.
    pub(crate) version: u32,
    /// The stored wrapping.
    pub(crate) stored: StoredVersion,
}

/// What a [`Store::modify`] decision does to a key.
#[derive(Debug)]
pub(crate) enum Change {
    /// Adds the next version (the caller wrapped it for that number) and makes it primary.
    Rotate(StoredVersion),
    /// Sets the policy fields.
    Policy {
        /// New minimum decryption version.
        min_decryption_version: u32,
        /// New minimum encryption version.
        min_encryption_version: u32,
        /// Whether deletion may be scheduled.
        deletion_allowed: bool,
    },
    /// Marks the key pending deletion until `destroy_time`.
    ScheduleDeletion {
        /// When the material is destroyed.
        destroy_time: i64,
    },
    /// Back to enabled (or disabled, if it was disabled before the deletion was scheduled).
    CancelDeletion,
    /// Sets or clears the reversible stop of DisableKey / EnableKey.
    Disabled(bool),
    /// Deletes every version's material; the key row stays as `destroyed`.
    Destroy,
}

/// The PostgreSQL channel every change to a key record is announced on (payload: the key's
/// name), so every replica evicts its cached record at once.
pub(crate) const CHANGES_CHANNEL: &str = "coffer_key_changes";

/// The key-service's database handle, with its cache of key records, so the data plane
/// (Encrypt, Decrypt, GenerateDataKey, ...) reads a key's state and policy without a database
/// round trip. Its staleness bound is [`coffer_db::fresh`]'s: at once in this process, within
/// the TTL (at most a second) on other replicas, and at once in practice on PostgreSQL, where
/// every change is announced; so retiring a version, disabling, scheduling deletion and
/// destroying take effect everywhere within a second. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    db: coffer_db::Database,
    records: std::sync::Arc<coffer_db::fresh::Fresh<KeyName, KeyRecord>>,
}

impl Store {
    /// Connects, applies pending migrations, and returns the store.
    ///
    /// # Errors
    /// [`Error::Database`] if the database is unreachable or migrations fail.
    pub(crate) async fn connect(
        database: &coffer_db::Config,
        record_cache_capacity: std::num::NonZeroUsize,
        record_cache_ttl: std::time::Duration,
    ) -> Result<Self> {
        Ok(Self {
            db: coffer_db::connect(database, &MIGRATIONS).await?,
            records: std::sync::Arc::new(coffer_db::fresh::Fresh::new(
                record_cache_capacity,
                record_cache_ttl,
            )),
        })
    }

    /// SQLite or PostgreSQL.
    pub(crate) fn backend(&self) -> coffer_db::Backend {
        self.db.backend
    }

    /// A change another replica announced (`payload` is the key's name): evicts its record.
    /// Anything unreadable clears every record.
    pub(crate) fn evict_announced(&self, payload: &str) {
        match KeyName::parse("payload", payload) {
            Ok(name) => self.records.evict(&name),
            Err(_) => self.records.clear(),
        }
    }

    /// Forgets every cached record (after the change listener reconnected).
    pub(crate) fn forget_records(&self) {
        self.records.clear();
    }

    /// A key's record changed: evicted here, announced to the other replicas.
    async fn changed(&self, name: &KeyName) {
        self.records.evict(name);
        self.db.notify(CHANGES_CHANNEL, &name.to_string()).await;
    }

    /// After key material was destroyed, on SQLite: checkpoints the write-ahead log into
    /// the database file (where `secure_delete` has overwritten the freed pages) and
    /// truncates it, so no copy of the destroyed material stays in the `-wal` file. A
    /// checkpoint blocked by a concurrent reader is logged; the next destruction (or
    /// SQLite's own checkpoints) completes it. Nothing to do on PostgreSQL, whose WAL and
    /// backups are the operator's (see the README).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn scrub_log(&self) -> Result<()> {
        if self.db.backend != coffer_db::Backend::Sqlite {
            return Ok(());
        }
        let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&self.db.pool)
            .await?;
        let busy: i64 = row.try_get("busy")?;
        if busy != 0 {
            tracing::warn!("WAL checkpoint after key destruction was blocked by a reader");
        }
        Ok(())
    }

    /// Closes the pool, waiting for connections to be returned.
    pub(crate) async fn close(&self) {
        self.db.close().await;
    }

    /// Inserts a new key with its version 1.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] if the name is taken (in any state), [`Error::Database`].
    pub(crate) async fn create_key(
        &self,
        name: &KeyName,
        deletion_allowed: bool,
        version_1: StoredVersion,
        now: i64,
    ) -> Result<KeyRecord> {
        let mut tx = self.db.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO kms_keys (tenant, key_id, primary_version, min_decryption_version, \
             min_encryption_version, deletion_allowed, state, create_time, update_time) \
             VALUES ($1, $2, 1, 1, 1, $3, 'enabled', $4, $4) ON CONFLICT DO NOTHING",
        )
        .bind(name.tenant().as_str())
        .bind(name.id())
        .bind(i64::from(deletion_allowed))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(Error::AlreadyExists(name.to_string()));
        }
        insert_version(&mut tx, name, 1, &version_1, now).await?;
        tx.commit().await?;
        // Nothing to evict: misses are not cached, and a name is never reused.
        Ok(KeyRecord::new(name.clone(), deletion_allowed, now))
    }

    /// The key's record, if it exists.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn key(&self, name: &KeyName) -> Result<Option<KeyRecord>> {
        if let Some(record) = self.records.get(name) {
            return Ok(Some(record));
        }
        let epoch = self.records.epoch();
        let row = sqlx::query(select_key!("WHERE tenant = $1 AND key_id = $2"))
            .bind(name.tenant().as_str())
            .bind(name.id())
            .fetch_optional(&self.db.pool)
            .await?;
        let record = row.map(|row| KeyRecord::from_row(&row)).transpose()?;
        if let Some(record) = &record {
            self.records.insert(epoch, name.clone(), record.clone());
        }
        Ok(record)
    }

    /// Up to `limit` keys of `tenant` with ids after `after`, in id order.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn list_keys(
        &self,
        tenant: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<KeyRecord>> {
        let rows = sqlx::query(select_key!(
            "WHERE tenant = $1 AND key_id > $2 ORDER BY key_id LIMIT $3"
        ))
        .bind(tenant)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(KeyRecord::from_row).collect()
    }

    /// Changes a key under its row lock: `decide` sees the current record and returns the
    /// change to apply, `None` for none, or an error, which rolls back. Returns the record as
    /// it is afterwards.
    ///
    /// # Errors
    /// [`Error::NotFound`], whatever `decide` returns, [`Error::Database`].
    pub(crate) async fn modify<F>(&self, name: &KeyName, now: i64, decide: F) -> Result<KeyRecord>
    where
        F: FnOnce(&KeyRecord) -> Result<Option<Change>>,
    {
        let mut tx = self.db.pool.begin().await?;
        // Take the lock before reading, so no one changes the row between our read and write.
        let locked = sqlx::query(
            "UPDATE kms_keys SET update_time = update_time WHERE tenant = $1 AND key_id = $2",
        )
        .bind(name.tenant().as_str())
        .bind(name.id())
        .execute(&mut *tx)
        .await?;
        if locked.rows_affected() == 0 {
            return Err(Error::NotFound(name.to_string()));
        }
        let row = sqlx::query(select_key!("WHERE tenant = $1 AND key_id = $2"))
            .bind(name.tenant().as_str())
            .bind(name.id())
            .fetch_one(&mut *tx)
            .await?;
        let mut record = KeyRecord::from_row(&row)?;
        let changed = match decide(&record)? {
            Some(change) => {
                apply(&mut tx, &mut record, change, now).await?;
                true
            }
            None => false,
        };
        tx.commit().await?;
        if changed {
            self.changed(name).await;
        }
        Ok(record)
    }

    /// The wrapped material of one version, if it exists (destroyed keys have none).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn version(
        &self,
        name: &KeyName,
        version: u32,
    ) -> Result<Option<StoredVersion>> {
        let row = sqlx::query(
            "SELECT root_version, wrapped FROM kms_key_versions \
             WHERE tenant = $1 AND key_id = $2 AND version = $3",
        )
        .bind(name.tenant().as_str())
        .bind(name.id())
        .bind(i64::from(version))
        .fetch_optional(&self.db.pool)
        .await?;
        row.map(|row| stored_version(&row)).transpose()
    }

    /// Keys whose deletion waiting period ended at or before `now`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn due_deletions(&self, now: i64) -> Result<Vec<KeyName>> {
        let rows = sqlx::query(
            "SELECT tenant, key_id FROM kms_keys \
             WHERE state = 'pending_deletion' AND destroy_time <= $1",
        )
        .bind(now)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|row| {
                stored_key_name(
                    &row.try_get::<String, _>("tenant")?,
                    &row.try_get::<String, _>("key_id")?,
                )
            })
            .collect()
    }

    /// Up to `limit` versions wrapped under a root version other than `root_version`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn versions_not_under(
        &self,
        root_version: u32,
        limit: u32,
    ) -> Result<Vec<VersionRow>> {
        let rows = sqlx::query(
            "SELECT tenant, key_id, version, root_version, wrapped FROM kms_key_versions \
             WHERE root_version <> $1 ORDER BY tenant, key_id, version LIMIT $2",
        )
        .bind(i64::from(root_version))
        .bind(i64::from(limit))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(version_row).collect()
    }

    /// Replaces a version's wrapping if it is still what `row` read (compare-and-set), so a
    /// concurrent rewrap or destruction is never overwritten. Returns whether it was replaced.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn rewrap_version(
        &self,
        row: &VersionRow,
        new: &StoredVersion,
    ) -> Result<bool> {
        let updated = sqlx::query(
            "UPDATE kms_key_versions SET root_version = $1, wrapped = $2 \
             WHERE tenant = $3 AND key_id = $4 AND version = $5 AND root_version = $6",
        )
        .bind(i64::from(new.root_version))
        .bind(new.wrapped.as_slice())
        .bind(row.name.tenant().as_str())
        .bind(row.name.id())
        .bind(i64::from(row.version))
        .bind(i64::from(row.stored.root_version))
        .execute(&self.db.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Every root key version some stored key version is wrapped under.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn root_versions_in_use(&self) -> Result<Vec<u32>> {
        let rows = sqlx::query("SELECT DISTINCT root_version FROM kms_key_versions")
            .fetch_all(&self.db.pool)
            .await?;
        rows.iter()
            .map(|row| record::to_u32(row.try_get("root_version")?))
            .collect()
    }

    /// Up to `limit` keys changed at or after `since`, oldest change first.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn keys_changed_since(
        &self,
        since: i64,
        limit: u32,
    ) -> Result<Vec<KeyRecord>> {
        let rows = sqlx::query(select_key!(
            "WHERE update_time >= $1 ORDER BY update_time, tenant, key_id LIMIT $2"
        ))
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(KeyRecord::from_row).collect()
    }

    /// The stored check value of root version `root_version`, if any.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn root_key_check(&self, root_version: u32) -> Result<Option<Vec<u8>>> {
        let row =
            sqlx::query("SELECT check_value FROM kms_root_key_checks WHERE root_version = $1")
                .bind(i64::from(root_version))
                .fetch_optional(&self.db.pool)
                .await?;
        Ok(row.map(|row| row.try_get("check_value")).transpose()?)
    }

    /// Records the check value of a root version unless one is stored already (a replica
    /// starting at the same time may have won; the caller re-reads and compares).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn insert_root_key_check(
        &self,
        root_version: u32,
        value: &[u8],
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO kms_root_key_checks (root_version, check_value, create_time) \
             VALUES ($1, $2, $3) ON CONFLICT (root_version) DO NOTHING",
        )
        .bind(i64::from(root_version))
        .bind(value)
        .bind(now)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// One version wrapped under root version `root_version`, if any (to recognise the root
    /// key of a database written before check values existed).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn a_version_under(&self, root_version: u32) -> Result<Option<VersionRow>> {
        let row = sqlx::query(
            "SELECT tenant, key_id, version, root_version, wrapped FROM kms_key_versions \
             WHERE root_version = $1 ORDER BY tenant, key_id, version LIMIT 1",
        )
        .bind(i64::from(root_version))
        .fetch_optional(&self.db.pool)
        .await?;
        row.as_ref().map(version_row).transpose()
    }
}

/// A `tenant, key_id, version, root_version, wrapped` row.
fn version_row(row: &AnyRow) -> Result<VersionRow> {
    Ok(VersionRow {
        name: stored_key_name(
            &row.try_get::<String, _>("tenant")?,
            &row.try_get::<String, _>("key_id")?,
        )?,
        version: record::to_u32(row.try_get("version")?)?,
        stored: StoredVersion {
            root_version: record::to_u32(row.try_get("root_version")?)?,
            wrapped: row.try_get("wrapped")?,
        },
    })
}

async fn apply(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    record: &mut KeyRecord,
    change: Change,
    now: i64,
) -> Result<()> {
    let name = record.name.clone();
    match change {
        Change::Rotate(stored) => {
            let version = record.primary_version + 1;
            insert_version(tx, &name, version, &stored, now).await?;
            record.primary_version = version;
        }
        Change::Policy {
            min_decryption_version,
            min_encryption_version,
            deletion_allowed,
        } => {
            record.min_decryption_version = min_decryption_version;
            record.min_encryption_version = min_encryption_version;
            record.deletion_allowed = deletion_allowed;
        }
        Change::ScheduleDeletion { destroy_time } => {
            record.state = KeyState::PendingDeletion;
            record.destroy_time = Some(destroy_time);
        }
        Change::CancelDeletion => {
            record.state = KeyState::Enabled;
            record.destroy_time = None;
        }
        Change::Disabled(disabled) => record.disabled = disabled,
        Change::Destroy => {
            sqlx::query("DELETE FROM kms_key_versions WHERE tenant = $1 AND key_id = $2")
                .bind(name.tenant().as_str())
                .bind(name.id())
                .execute(&mut **tx)
                .await?;
            record.state = KeyState::Destroyed;
        }
    }
    record.update_time = now;
    sqlx::query(
        "UPDATE kms_keys SET primary_version = $1, min_decryption_version = $2, \
         min_encryption_version = $3, deletion_allowed = $4, state = $5, update_time = $6, \
         destroy_time = $7, disabled = $10 WHERE tenant = $8 AND key_id = $9",
    )
    .bind(i64::from(record.primary_version))
    .bind(i64::from(record.min_decryption_version))
    .bind(i64::from(record.min_encryption_version))
    .bind(i64::from(record.deletion_allowed))
    .bind(record.state.as_str())
    .bind(now)
    .bind(record.destroy_time)
    .bind(name.tenant().as_str())
    .bind(name.id())
    .bind(i64::from(record.disabled))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &KeyName,
    version: u32,
    stored: &StoredVersion,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO kms_key_versions (tenant, key_id, version, root_version, wrapped, create_time) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(name.tenant().as_str())
    .bind(name.id())
    .bind(i64::from(version))
    .bind(i64::from(stored.root_version))
    .bind(stored.wrapped.as_slice())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn stored_version(row: &AnyRow) -> Result<StoredVersion> {
    Ok(StoredVersion {
        root_version: record::to_u32(row.try_get("root_version")?)?,
        wrapped: row.try_get("wrapped")?,
    })
}
