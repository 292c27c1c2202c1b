//! The credential-service's storage (sqlx `Any`; see `coffer_db` for the conventions).
//!
//! Every change to a credential writes its audit event in the same transaction, so a change
//! without its audit event (or the reverse) cannot exist.

mod audit;
mod sweeps;

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use coffer_crypto::AuditKey;
use coffer_db::fresh::Fresh;
use sqlx::Row as _;
use sqlx::any::AnyRow;
use tokio::sync::oneshot::error::TryRecvError;

pub(crate) use audit::{AuditEvent, AuditHead, KEYED, NewAuditEvent};
pub(crate) use sweeps::SweepRow;

use crate::content::ContentKind;
use crate::metrics::AuditGroupMetrics;
use crate::{Error, Result};

/// The PostgreSQL channel every change to a credential row is announced on (payload
/// `{tenant}/{id}`), so every replica evicts its cached row at once.
pub(crate) const CHANGES_CHANNEL: &str = "coffer_credential_changes";

/// Credential rows kept in memory for masked reads.
const ROW_CACHE_CAPACITY: usize = 10_000;

/// How often a change is tried when concurrent audit appends collide.
const AUDIT_ATTEMPTS: u32 = 5;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations/sqlite");
static MIGRATIONS: coffer_db::Migrations = coffer_db::Migrations {
    sqlite: &SQLITE_MIGRATIONS,
    postgres: &POSTGRES_MIGRATIONS,
    schema: crate::DATABASE_SCHEMA,
    table: "cred_credentials",
};
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator =
    sqlx::migrate!("src/store/migrations/postgres");

/// A credential row: the environment only as ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CredentialRow {
    /// Tenant id.
    pub(crate) tenant: String,
    /// Credential id.
    pub(crate) id: String,
    /// MCP server id.
    pub(crate) server_id: String,
    /// Template id.
    pub(crate) template_id: String,
    /// Display name.
    pub(crate) server_name: String,
    /// Integration names, as a JSON array.
    pub(crate) configured_integrations: String,
    /// The data key, wrapped by key-service.
    pub(crate) wrapped_dek: Vec<u8>,
    /// The key-service key version that wrapped it.
    pub(crate) dek_key_version: u32,
    /// The environment map, sealed under the data key (a `coffer_crypto` envelope).
    pub(crate) ciphertext: Vec<u8>,
    /// Creator.
    pub(crate) created_by: String,
    /// Creation time.
    pub(crate) create_time: i64,
    /// Last changer.
    pub(crate) updated_by: String,
    /// Last change.
    pub(crate) update_time: i64,
    /// Expiry.
    pub(crate) expire_time: Option<i64>,
    /// Row version, from 1.
    pub(crate) row_version: i64,
    /// An environment map, or a zero-knowledge entry.
    pub(crate) kind: ContentKind,
}

/// The credential-service's database handle, with the credential rows masked reads use
/// (see [`Store::get_cached`]).
#[derive(Debug, Clone)]
pub(crate) struct Store {
    db: coffer_db::Database,
    audits: Arc<AuditQueue>,
    rows: Arc<Fresh<(String, String), CredentialRow>>,
}

/// At most this many standalone audit events are committed in one transaction.
const AUDIT_BATCH: usize = 128;

/// Standalone audit events (reveals, hydrations, denials) waiting for a group commit (see
/// [`Store::audit`]), and the turn to write the next group. Every waiting event belongs to a
/// call in flight, so the queue is bounded by the server's concurrency.
struct AuditQueue {
    waiting: Mutex<Vec<Queued>>,
    writer: tokio::sync::Mutex<()>,
    metrics: AuditGroupMetrics,
}

impl std::fmt::Debug for AuditQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let waiting = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("AuditQueue")
            .field("waiting", &waiting)
            .finish_non_exhaustive()
    }
}

/// One waiting event, and how its caller learns what became of it.
struct Queued {
    key: Arc<AuditKey>,
    event: OwnedAuditEvent,
    /// The row a reveal read, which must still be current for the event to be appended.
    read: Option<RowVersion>,
    appended: tokio::sync::oneshot::Sender<Appended>,
}

/// What became of a queued event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Appended {
    /// Committed.
    Committed,
    /// Not appended: the row it was read with has changed or is gone.
    Stale,
    /// Its group did not commit: the caller appends it alone.
    Failed,
}

impl Appended {
    /// What the caller answers: whether the event was appended, or `None` to append it alone.
    fn answer(self) -> Option<bool> {
        match self {
            Appended::Committed => Some(true),
            Appended::Stale => Some(false),
            Appended::Failed => None,
        }
    }
}

/// The versions of a credential row that a reveal read: its content's (`row_version`) and
/// its data key wrapping's (`dek_key_version`, which the re-wrap sweep moves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowVersion {
    /// Credential id (the tenant is the event's).
    pub(crate) id: String,
    /// [`CredentialRow::row_version`].
    pub(crate) row_version: i64,
    /// [`CredentialRow::dek_key_version`].
    pub(crate) dek_key_version: u32,
}

impl RowVersion {
    /// The versions of `row`.
    pub(crate) fn of(row: &CredentialRow) -> Self {
        Self {
            id: row.id.clone(),
            row_version: row.row_version,
            dek_key_version: row.dek_key_version,
        }
    }
}

/// A [`NewAuditEvent`] that can wait in the queue.
struct OwnedAuditEvent {
    tenant: String,
    actor: String,
    action: String,
    credential: String,
    outcome: String,
    request_id: String,
    time: i64,
}

impl OwnedAuditEvent {
    fn new(event: &NewAuditEvent<'_>) -> Self {
        Self {
            tenant: event.tenant.to_owned(),
            actor: event.actor.to_owned(),
            action: event.action.to_owned(),
            credential: event.credential.to_owned(),
            outcome: event.outcome.to_owned(),
            request_id: event.request_id.to_owned(),
            time: event.time,
        }
    }

    fn borrowed(&self) -> NewAuditEvent<'_> {
        NewAuditEvent {
            tenant: &self.tenant,
            actor: &self.actor,
            action: &self.action,
            credential: &self.credential,
            outcome: &self.outcome,
            request_id: &self.request_id,
            time: self.time,
        }
    }
}

impl Store {
    /// Connects and migrates.
    ///
    /// # Errors
    /// [`Error::Open`].
    pub(crate) async fn connect(
        database: &coffer_db::Config,
        row_cache_ttl: std::time::Duration,
        audit_groups: AuditGroupMetrics,
    ) -> Result<Self> {
        let capacity = NonZeroUsize::new(ROW_CACHE_CAPACITY).unwrap_or(NonZeroUsize::MIN);
        Ok(Self {
            db: coffer_db::connect(database, &MIGRATIONS).await?,
            audits: Arc::new(AuditQueue {
                waiting: Mutex::default(),
                writer: tokio::sync::Mutex::default(),
                metrics: audit_groups,
            }),
            rows: Arc::new(Fresh::new(capacity, row_cache_ttl)),
        })
    }

    /// SQLite or PostgreSQL.
    pub(crate) fn backend(&self) -> coffer_db::Backend {
        self.db.backend
    }

    /// A change another replica announced (`{tenant}/{id}`): evicts that row. Anything
    /// unreadable clears every row.
    pub(crate) fn evict_announced(&self, payload: &str) {
        match payload.split_once('/') {
            Some((tenant, id)) => self.rows.evict(&(tenant.to_owned(), id.to_owned())),
            None => self.rows.clear(),
        }
    }

    /// Forgets every cached row (after the change listener reconnected).
    pub(crate) fn forget_rows(&self) {
        self.rows.clear();
    }

    /// A credential row changed (committed): evicted here, announced to the other replicas.
    async fn changed(&self, tenant: &str, id: &str) {
        self.rows.evict(&(tenant.to_owned(), id.to_owned()));
        self.db
            .notify(CHANGES_CHANNEL, &format!("{tenant}/{id}"))
            .await;
    }

    /// Closes the pool.
    pub(crate) async fn close(&self) {
        self.db.close().await;
    }

    /// Inserts a credential and its audit event.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn create(
        &self,
        row: &CredentialRow,
        key: &AuditKey,
        event: &NewAuditEvent<'_>,
    ) -> Result<()> {
        self.audited(key, event, |conn| {
            // Owned per attempt: the future may borrow only the connection.
            let row = row.clone();
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO cred_credentials (tenant, id, server_id, template_id, server_name, \
                     configured_integrations, wrapped_dek, dek_key_version, ciphertext, created_by, \
                     create_time, updated_by, update_time, expire_time, row_version, kind) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                )
                .bind(&row.tenant)
                .bind(&row.id)
                .bind(&row.server_id)
                .bind(&row.template_id)
                .bind(&row.server_name)
                .bind(&row.configured_integrations)
                .bind(row.wrapped_dek.as_slice())
                .bind(i64::from(row.dek_key_version))
                .bind(row.ciphertext.as_slice())
                .bind(&row.created_by)
                .bind(row.create_time)
                .bind(&row.updated_by)
                .bind(row.update_time)
                .bind(row.expire_time)
                .bind(row.row_version)
                .bind(row.kind.as_str())
                .execute(conn)
                .await?;
                Ok(true)
            })
        })
        .await
        .map(drop)
    }

    /// A credential of `tenant`, if it exists.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn get(&self, tenant: &str, id: &str) -> Result<Option<CredentialRow>> {
        let row = sqlx::query(concat!(
            select_credential!(),
            " WHERE tenant = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.db.reads)
        .await?;
        row.as_ref().map(credential_row).transpose()
    }

    /// A credential of `tenant` for a masked read: from memory when read within the row
    /// cache's TTL (see [`Fresh`] for the staleness bound), else as [`Store::get`].
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn get_cached(&self, tenant: &str, id: &str) -> Result<Option<CredentialRow>> {
        let key = (tenant.to_owned(), id.to_owned());
        if let Some(row) = self.rows.get(&key) {
            return Ok(Some(row));
        }
        let epoch = self.rows.epoch();
        let row = self.get(tenant, id).await?;
        if let Some(row) = &row {
            self.rows.insert(epoch, key, row.clone());
        }
        Ok(row)
    }

    /// Up to `limit` credentials of `tenant` after `after`, optionally filtered (empty filters
    /// match everything).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn list(
        &self,
        tenant: &str,
        after: &str,
        server_id: &str,
        template_id: &str,
        limit: u32,
    ) -> Result<Vec<CredentialRow>> {
        let rows = sqlx::query(concat!(
            select_credential!(),
            " WHERE tenant = $1 AND id > $2 AND ($3 = '' OR server_id = $3) ",
            "AND ($4 = '' OR template_id = $4) ORDER BY id LIMIT $5"
        ))
        .bind(tenant)
        .bind(after)
        .bind(server_id)
        .bind(template_id)
        .bind(i64::from(limit))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(credential_row).collect()
    }

    /// Replaces the ciphertext of a credential if its row version is still `expected`, and
    /// writes the audit event. Returns whether it was replaced.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn update(
        &self,
        row: &CredentialRow,
        expected: i64,
        key: &AuditKey,
        event: &NewAuditEvent<'_>,
    ) -> Result<bool> {
        let updated = self
            .audited(key, event, |conn| {
                let row = row.clone();
                Box::pin(async move {
                    let updated = sqlx::query(
                        "UPDATE cred_credentials SET ciphertext = $1, updated_by = $2, \
                     update_time = $3, row_version = $4 \
                     WHERE tenant = $5 AND id = $6 AND row_version = $7",
                    )
                    .bind(row.ciphertext.as_slice())
                    .bind(&row.updated_by)
                    .bind(row.update_time)
                    .bind(row.row_version)
                    .bind(&row.tenant)
                    .bind(&row.id)
                    .bind(expected)
                    .execute(conn)
                    .await?;
                    Ok(updated.rows_affected() == 1)
                })
            })
            .await?;
        if updated {
            self.changed(&row.tenant, &row.id).await;
        }
        Ok(updated)
    }

    /// Deletes a credential and writes the audit event. Returns whether it existed.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn delete(
        &self,
        tenant: &str,
        id: &str,
        key: &AuditKey,
        event: &NewAuditEvent<'_>,
    ) -> Result<bool> {
        let deleted = self
            .audited(key, event, |conn| {
                let (tenant, id) = (tenant.to_owned(), id.to_owned());
                Box::pin(async move {
                    let deleted =
                        sqlx::query("DELETE FROM cred_credentials WHERE tenant = $1 AND id = $2")
                            .bind(tenant)
                            .bind(id)
                            .execute(conn)
                            .await?;
                    Ok(deleted.rows_affected() == 1)
                })
            })
            .await?;
        if deleted {
            self.changed(tenant, id).await;
        }
        Ok(deleted)
    }

    /// Appends an audit event on its own (denials, failed decryptions) and returns once it is
    /// committed (see [`Store::audit_read`] for how).
    ///
    /// # Errors
    /// [`Error::Database`]: the caller must then refuse the operation.
    pub(crate) async fn audit(&self, key: &Arc<AuditKey>, event: &NewAuditEvent<'_>) -> Result<()> {
        self.append_queued(key, event, None).await.map(drop)
    }

    /// Appends a reveal's audit event if the row it revealed is still at `read`'s versions,
    /// and returns once it is committed. Returns `false`, having appended nothing and evicted
    /// the cached row, if the row has changed or is gone: the caller must read it again.
    ///
    /// The check runs in the transaction that appends the event, after the tenant's append
    /// lock is taken, and every change of a credential's content or its deletion is audited
    /// under that same lock (on SQLite the one writer serializes them). So a reveal hands out
    /// exactly the content its audit event's place in the chain saw, though the row may have
    /// come from memory, and a change or deletion committed on any replica is never revealed
    /// after it.
    ///
    /// Concurrent calls share commits: each queues its event, and whoever holds the writer's
    /// turn commits everything queued (up to [`AUDIT_BATCH`]) in one transaction, on a task of
    /// its own so that a caller who goes away does not abandon the others. Should a group
    /// fail, each of its callers appends its event alone, so every caller sees its own
    /// failure (and a bad event cannot sink the others').
    ///
    /// # Errors
    /// [`Error::Database`]: the caller must then refuse the operation.
    pub(crate) async fn audit_read(
        &self,
        key: &Arc<AuditKey>,
        event: &NewAuditEvent<'_>,
        read: RowVersion,
    ) -> Result<bool> {
        let id = read.id.clone();
        let current = self.append_queued(key, event, Some(read)).await?;
        if !current {
            self.rows.evict(&(event.tenant.to_owned(), id));
        }
        Ok(current)
    }

    async fn append_queued(
        &self,
        key: &Arc<AuditKey>,
        event: &NewAuditEvent<'_>,
        read: Option<RowVersion>,
    ) -> Result<bool> {
        let (appended, mut outcome) = tokio::sync::oneshot::channel();
        self.queue().push(Queued {
            key: Arc::clone(key),
            event: OwnedAuditEvent::new(event),
            read: read.clone(),
            appended,
        });
        loop {
            // Woken by the outcome directly: a caller whose event went out with another's
            // group does not queue for the writer's turn only to learn that it is done.
            let turn = tokio::select! {
                biased;
                done = &mut outcome => match done.ok().and_then(Appended::answer) {
                    Some(appended) => return Ok(appended),
                    None => break,
                },
                turn = self.audits.writer.lock() => turn,
            };
            match outcome.try_recv() {
                Ok(done) => match done.answer() {
                    Some(appended) => return Ok(appended),
                    None => break,
                },
                Err(TryRecvError::Closed) => break,
                Err(TryRecvError::Empty) => {}
            }
            let group: Vec<Queued> = {
                let mut waiting = self.queue();
                let count = waiting.len().min(AUDIT_BATCH);
                waiting.drain(..count).collect()
            };
            let (pool, backend) = (self.db.pool.clone(), self.db.backend);
            let metrics = self.audits.metrics.clone();
            // A panicked writer dropped its senders: those callers append alone below.
            let _ = tokio::spawn(commit_group(pool, backend, group, metrics)).await;
            drop(turn);
        }
        self.audited(key, event, |conn| {
            let (tenant, read) = (event.tenant.to_owned(), read.clone());
            Box::pin(async move {
                match read {
                    Some(read) => Ok(current(conn, &tenant, std::slice::from_ref(&read))
                        .await?
                        .contains(&read)),
                    None => Ok(true),
                }
            })
        })
        .await
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Queued>> {
        self.audits
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `change` and, if it changed something, appends `event`, in one transaction, so no
    /// change is ever committed without its event. On PostgreSQL a per-tenant advisory lock
    /// serializes appenders (SQLite has a single writer); should two appends still collide on
    /// the chain's primary key, the loser's whole transaction is retried.
    async fn audited<F>(&self, key: &AuditKey, event: &NewAuditEvent<'_>, change: F) -> Result<bool>
    where
        F: for<'c> Fn(
            &'c mut sqlx::AnyConnection,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<bool>> + Send + 'c>,
        >,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            // One appender per tenant at a time: no collisions in the first place.
            let mut tx = begin_locked(&self.db.pool, self.db.backend, [event.tenant]).await?;
            if !change(&mut tx).await? {
                return Ok(false);
            }
            let appended = match audit::append(&mut tx, self.db.backend, key, event).await {
                Ok(()) => tx.commit().await.map_err(Error::from),
                Err(error) => Err(error),
            };
            match appended {
                Ok(()) => return Ok(true),
                Err(Error::Database(ref cause))
                    if coffer_db::is_unique_violation(cause) && attempt < AUDIT_ATTEMPTS => {}
                Err(error) => return Err(error),
            }
        }
    }

    /// Tenants whose chain still holds unkeyed (legacy) events.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn tenants_with_legacy_audit(&self) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT DISTINCT tenant FROM cred_audit_events WHERE mac_version = $1")
                .bind(audit::LEGACY)
                .fetch_all(&self.db.pool)
                .await?;
        rows.iter().map(|row| Ok(row.try_get("tenant")?)).collect()
    }

    /// Checks a tenant's legacy chain by its old rule and, if intact and still wholly
    /// legacy, re-links every event under `key` and writes the head, in one transaction
    /// (under the tenant's append lock). Returns whether it did.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn relink_legacy_chain(&self, tenant: &str, key: &AuditKey) -> Result<bool> {
        let mut tx = begin_locked(&self.db.pool, self.db.backend, [tenant]).await?;
        let relinked = audit::relink_legacy(&mut tx, tenant, key).await?;
        if relinked {
            tx.commit().await?;
        }
        Ok(relinked)
    }

    /// The tenant's MACed chain head, if it has keyed events.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn audit_head(&self, tenant: &str) -> Result<Option<AuditHead>> {
        audit::head(&self.db.pool, tenant).await
    }

    /// The tenant's wrapped audit key, if it has one.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn wrapped_audit_key(&self, tenant: &str) -> Result<Option<Vec<u8>>> {
        audit::wrapped_key(&self.db.pool, tenant).await
    }

    /// Stores a tenant's wrapped audit key unless it has one (then re-read it).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn insert_wrapped_audit_key(
        &self,
        tenant: &str,
        wrapped: &[u8],
        now: i64,
    ) -> Result<()> {
        audit::insert_wrapped_key(&self.db.pool, tenant, wrapped, now).await
    }

    /// Up to `limit` audit events of `tenant` after `after_sequence`, oldest first.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn audit_events(
        &self,
        tenant: &str,
        after_sequence: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>> {
        audit::events(&self.db.pool, tenant, after_sequence, limit).await
    }
}

/// Commits `group` in one transaction and tells each caller what became of its event.
async fn commit_group(
    pool: sqlx::AnyPool,
    backend: coffer_db::Backend,
    group: Vec<Queued>,
    metrics: AuditGroupMetrics,
) {
    let started = std::time::Instant::now();
    let mut outcomes = None;
    for attempt in 1..=AUDIT_ATTEMPTS {
        match append_group(&pool, backend, &group).await {
            Ok(appended) => {
                outcomes = Some(appended);
                break;
            }
            Err(Error::Database(ref cause))
                if coffer_db::is_unique_violation(cause) && attempt < AUDIT_ATTEMPTS => {}
            Err(error) => {
                tracing::debug!(
                    events = group.len(),
                    error = %coffer_telemetry::error_chain(&error),
                    "an audit group did not commit; its events are appended one by one"
                );
                break;
            }
        }
    }
    if outcomes.is_some() {
        metrics.seconds.observe(started.elapsed().as_secs_f64());
        #[expect(clippy::cast_precision_loss, reason = "at most AUDIT_BATCH events")]
        metrics.events.observe(group.len() as f64);
    }
    for (index, queued) in group.into_iter().enumerate() {
        let outcome = match &outcomes {
            Some(appended) if appended[index] => Appended::Committed,
            Some(_) => Appended::Stale,
            None => Appended::Failed,
        };
        let _ = queued.appended.send(outcome);
    }
}

/// Appends, in one transaction, every event of `group` whose row (if it names one) is still
/// current. Returns which were appended.
///
/// On PostgreSQL a group of one tenant's events, up to [`audit::MAX_INSERT_ROWS`] of them,
/// costs four round trips once the pool has handed out (and pinged) a connection: the
/// statement that begins the transaction takes the append lock; one statement checks the
/// rows' versions and reads where the chain ends; one inserts the events and moves the head;
/// the commit.
async fn append_group(
    pool: &sqlx::AnyPool,
    backend: coffer_db::Backend,
    group: &[Queued],
) -> Result<Vec<bool>> {
    let tenants: std::collections::BTreeSet<&str> =
        group.iter().map(|q| q.event.tenant.as_str()).collect();
    let mut tx = begin_locked(pool, backend, tenants.iter().copied()).await?;
    let mut appended = vec![true; group.len()];
    for tenant in tenants {
        let ours = || {
            group
                .iter()
                .enumerate()
                .filter(move |(_, q)| q.event.tenant == tenant)
        };
        let reads: Vec<RowVersion> = ours().filter_map(|(_, q)| q.read.clone()).collect();
        let mut end = if reads.is_empty() {
            audit::chain_end(&mut tx, tenant).await?
        } else {
            let (current, end) = current_and_end(&mut tx, tenant, &reads).await?;
            for (index, queued) in ours() {
                appended[index] = queued
                    .read
                    .as_ref()
                    .is_none_or(|read| current.contains(read));
            }
            end
        };
        let events: Vec<&Queued> = ours()
            .filter(|(index, _)| appended[*index])
            .map(|(_, q)| q)
            .collect();
        for (key, run) in runs(&events) {
            end = audit::append_run(&mut tx, backend, key, end, &run).await?;
        }
    }
    tx.commit().await?;
    Ok(appended)
}

/// Which of `reads` (rows of `tenant`) are still at their versions.
async fn current(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    reads: &[RowVersion],
) -> Result<Vec<RowVersion>> {
    Ok(current_and_end(conn, tenant, reads).await?.0)
}

/// Which of `reads` (rows of `tenant`) are still at their versions, and where the tenant's
/// chain ends, read in one statement per [`MAX_IDS_PER_QUERY`] ids (one, for a group): the
/// chain's end left-joined to the rows, so it comes back whether or not any row is found.
async fn current_and_end(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    reads: &[RowVersion],
) -> Result<(Vec<RowVersion>, audit::ChainEnd)> {
    let ids: std::collections::BTreeSet<&str> = reads.iter().map(|r| r.id.as_str()).collect();
    let ids: Vec<&str> = ids.into_iter().collect();
    let mut found = Vec::with_capacity(ids.len());
    let mut end = None;
    for chunk in ids.chunks(MAX_IDS_PER_QUERY) {
        // Padded to a power of two (repeating the last id) so few statement shapes exist.
        let slots = chunk.len().next_power_of_two();
        let placeholders: Vec<String> = (2..slots + 2).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT e.sequence, e.hash, c.id, c.row_version, c.dek_key_version \
             FROM (SELECT 1 AS one) AS o LEFT JOIN ({}) AS e ON 1 = 1 \
             LEFT JOIN cred_credentials AS c ON c.tenant = $1 AND c.id IN ({})",
            audit::CHAIN_END,
            placeholders.join(", ")
        );
        // Only generated placeholders vary: every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant);
        for slot in 0..slots {
            query = query.bind(chunk[slot.min(chunk.len() - 1)]);
        }
        for row in query.fetch_all(&mut *conn).await? {
            if end.is_none() {
                end = Some(audit::ChainEnd::from_columns(
                    row.try_get("sequence")?,
                    row.try_get("hash")?,
                ));
            }
            let Some(id) = row.try_get::<Option<String>, _>("id")? else {
                continue;
            };
            found.push(RowVersion {
                id,
                row_version: row.try_get("row_version")?,
                dek_key_version: u32::try_from(row.try_get::<i64, _>("dek_key_version")?)
                    .map_err(|_| Error::Corrupt("key version out of range"))?,
            });
        }
    }
    let end = end.ok_or(Error::Corrupt("the chain end query returned no row"))?;
    Ok((found, end))
}

/// The most credential ids one version check names: a whole group's.
const MAX_IDS_PER_QUERY: usize = AUDIT_BATCH;

/// Begins a transaction holding the append locks of `tenants`, so one appender per tenant
/// runs at a time and appends do not collide in the first place. On PostgreSQL they are
/// transaction-scoped advisory locks, taken in ascending key order (so two replicas' groups
/// never deadlock) by the statement that begins the transaction: one round trip for all.
/// SQLite has a single writer already.
///
/// Should two appenders of one tenant ever run at once anyway (replicas of two versions
/// during an upgrade, say), the chain's primary key still keeps it linear: both read the
/// same end, and the second to insert fails and is retried. A reveal's version check reads
/// in the same statement (the same snapshot) as the chain's end, so a change committed after
/// that snapshot either takes the next sequence first (the reveal's insert fails, and its
/// retry finds the row changed) or lands after the reveal's event.
async fn begin_locked<'t>(
    pool: &sqlx::AnyPool,
    backend: coffer_db::Backend,
    tenants: impl IntoIterator<Item = &'t str>,
) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
    if backend != coffer_db::Backend::Postgres {
        return Ok(pool.begin().await?);
    }
    let mut keys: Vec<i64> = tenants.into_iter().map(chain_lock_key).collect();
    keys.sort_unstable();
    keys.dedup();
    let locks: String = keys
        .iter()
        .map(|key| format!("; SELECT pg_advisory_xact_lock({key})"))
        .collect();
    // Only integers computed here are in the text; a lock that fails aborts the transaction,
    // so every later statement in it fails too.
    Ok(pool
        .begin_with(sqlx::AssertSqlSafe(format!("BEGIN{locks}")))
        .await?)
}

/// The advisory lock key of `tenant`'s audit chain: the first eight bytes of a SHA-256 over a
/// label and the tenant id (computed here, so the lock can be taken without binding a
/// parameter).
fn chain_lock_key(tenant: &str) -> i64 {
    use sha2::Digest as _;
    let digest = sha2::Sha256::new()
        .chain_update(b"coffer credential audit chain\0")
        .chain_update(tenant.as_bytes())
        .finalize();
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// One tenant's `events` in the order they were queued, in runs under one chain key.
fn runs<'a>(events: &[&'a Queued]) -> Vec<(&'a AuditKey, Vec<NewAuditEvent<'a>>)> {
    let mut runs: Vec<(&'a Arc<AuditKey>, Vec<NewAuditEvent<'a>>)> = Vec::new();
    for queued in events {
        match runs.last_mut() {
            Some((key, run)) if Arc::ptr_eq(key, &queued.key) => run.push(queued.event.borrowed()),
            _ => runs.push((&queued.key, vec![queued.event.borrowed()])),
        }
    }
    runs.into_iter().map(|(key, run)| (&**key, run)).collect()
}

/// The credential columns [`credential_row`] reads (by name).
macro_rules! select_credential {
    () => {
        "SELECT tenant, id, server_id, template_id, server_name, configured_integrations, \
         wrapped_dek, dek_key_version, ciphertext, created_by, create_time, updated_by, \
         update_time, expire_time, row_version, kind FROM cred_credentials"
    };
}
use select_credential;

fn credential_row(row: &AnyRow) -> Result<CredentialRow> {
    Ok(CredentialRow {
        tenant: row.try_get("tenant")?,
        id: row.try_get("id")?,
        server_id: row.try_get("server_id")?,
        template_id: row.try_get("template_id")?,
        server_name: row.try_get("server_name")?,
        configured_integrations: row.try_get("configured_integrations")?,
        wrapped_dek: row.try_get("wrapped_dek")?,
        dek_key_version: u32::try_from(row.try_get::<i64, _>("dek_key_version")?)
            .map_err(|_| Error::Corrupt("key version out of range"))?,
        ciphertext: row.try_get("ciphertext")?,
        created_by: row.try_get("created_by")?,
        create_time: row.try_get("create_time")?,
        updated_by: row.try_get("updated_by")?,
        update_time: row.try_get("update_time")?,
        expire_time: row.try_get("expire_time")?,
        row_version: row.try_get("row_version")?,
        kind: ContentKind::parse(&row.try_get::<String, _>("kind")?)
            .ok_or(Error::Corrupt("unknown credential kind"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::chain_lock_key;

    #[test]
    fn each_tenant_has_its_own_stable_lock_key() {
        assert_eq!(chain_lock_key("acme"), chain_lock_key("acme"));
        assert_ne!(chain_lock_key("acme"), chain_lock_key("globex"));
        assert_ne!(chain_lock_key("acme"), chain_lock_key("acme\0"));
        // Fixed by its definition: replicas of one version agree on it.
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(b"coffer credential audit chain\0acme");
        assert_eq!(
            chain_lock_key("acme").to_be_bytes(),
            digest[..8],
            "the first eight bytes"
        );
    }
}
