//! The keyed audit log: one chain per tenant. Each event's hash is an HMAC-SHA256 link
//! under the tenant's audit key over its length-prefixed fields and the previous link
//! ([`coffer_crypto::audit`]), so changing, removing or reordering any event breaks every link
//! after it, and nobody without the key can recompute them. The chain's head (last sequence
//! and link, MACed) is written beside the events in the same transaction, so deleting the
//! newest events is caught too. Events written before keyed chains (`mac_version` 1) carry a
//! plain SHA-256 hash ([`chain_hash`]) and are accepted only as a chain's prefix.

use coffer_crypto::AuditKey;
use coffer_crypto::audit::{self, GENESIS};
use coffer_db::Backend;
use sqlx::{AnyPool, Row as _};

use crate::Result;

/// The link format of events written now.
pub(crate) const KEYED: i64 = 2;
/// The unkeyed SHA-256 format of events written before keyed chains.
pub(crate) const LEGACY: i64 = 1;

/// An event to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewAuditEvent<'a> {
    /// Tenant id.
    pub(crate) tenant: &'a str,
    /// Who acted.
    pub(crate) actor: &'a str,
    /// What happened.
    pub(crate) action: &'a str,
    /// The credential's resource name.
    pub(crate) credential: &'a str,
    /// `success`, `failure`, `denied`.
    pub(crate) outcome: &'a str,
    /// The caller's request id, or empty.
    pub(crate) request_id: &'a str,
    /// When, unix seconds.
    pub(crate) time: i64,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuditEvent {
    /// Tenant id.
    pub(crate) tenant: String,
    /// Position in the tenant's chain, from 1.
    pub(crate) sequence: i64,
    /// When.
    pub(crate) time: i64,
    /// Who.
    pub(crate) actor: String,
    /// What.
    pub(crate) action: String,
    /// Which credential.
    pub(crate) credential: String,
    /// Outcome.
    pub(crate) outcome: String,
    /// Request id.
    pub(crate) request_id: String,
    /// Hash of the previous event.
    pub(crate) previous_hash: String,
    /// Hash of this event.
    pub(crate) hash: String,
    /// [`KEYED`] or [`LEGACY`].
    pub(crate) mac_version: i64,
}

/// A tenant's chain head as stored: the last event's sequence and link, and their MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuditHead {
    /// Tenant id.
    pub(crate) tenant: String,
    /// The last event's sequence.
    pub(crate) sequence: i64,
    /// The last event's link.
    pub(crate) link: String,
    /// `coffer_crypto::audit::head_mac` of the three.
    pub(crate) mac: String,
    /// When it was written.
    pub(crate) time: i64,
}

impl AuditHead {
    /// The head as [`coffer_crypto::audit`] checks it.
    pub(crate) fn to_head(&self) -> audit::Head {
        audit::Head {
            sequence: self.sequence,
            link: self.link.clone(),
            mac: self.mac.clone(),
        }
    }
}

impl AuditEvent {
    /// The event's fields, as appended.
    fn as_new(&self) -> NewAuditEvent<'_> {
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

    /// Recomputes this event's hash from its fields and `previous_hash`: its keyed link
    /// under `key`, or for a legacy event the plain SHA-256.
    pub(crate) fn expected_hash(&self, key: &AuditKey) -> String {
        let event = self.as_new();
        if self.mac_version == LEGACY {
            chain_hash(&self.previous_hash, self.sequence, &event)
        } else {
            keyed_link(key, &self.previous_hash, self.sequence, &event)
        }
    }
}

/// The keyed link of `event` at `sequence` after `previous`.
pub(crate) fn keyed_link(
    key: &AuditKey,
    previous: &str,
    sequence: i64,
    event: &NewAuditEvent<'_>,
) -> String {
    let time = event.time.to_be_bytes();
    audit::link(key, previous, sequence, &event.fields(&time))
}

/// The legacy unkeyed link ([`audit::legacy_link`]) of `event`. Only verified, never written
/// any more.
pub(crate) fn chain_hash(previous_hash: &str, sequence: i64, event: &NewAuditEvent<'_>) -> String {
    let time = event.time.to_be_bytes();
    audit::legacy_link(previous_hash, sequence, &event.fields(&time))
}

impl NewAuditEvent<'_> {
    /// The linked fields in their fixed order, `time` being the event's time, big-endian.
    fn fields<'a>(&'a self, time: &'a [u8; 8]) -> [&'a [u8]; 7] {
        [
            time,
            self.tenant.as_bytes(),
            self.actor.as_bytes(),
            self.action.as_bytes(),
            self.credential.as_bytes(),
            self.outcome.as_bytes(),
            self.request_id.as_bytes(),
        ]
    }
}

/// Where a tenant's chain ends: its last event's sequence and link, or `0` and [`GENESIS`]
/// before its first event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ChainEnd {
    /// The last event's sequence.
    pub(super) sequence: i64,
    /// The last event's link.
    pub(super) link: String,
}

impl ChainEnd {
    /// The end read as a nullable sequence and link (both `NULL`: an empty chain).
    pub(super) fn from_columns(sequence: Option<i64>, link: Option<String>) -> Self {
        match (sequence, link) {
            (Some(sequence), Some(link)) => Self { sequence, link },
            _ => Self {
                sequence: 0,
                link: GENESIS.to_owned(),
            },
        }
    }
}

/// The chain end's columns, `sequence` and `hash`, as a subquery of one row at most.
pub(super) const CHAIN_END: &str = "SELECT sequence, hash FROM cred_audit_events \
     WHERE tenant = $1 ORDER BY sequence DESC LIMIT 1";

/// Where `tenant`'s chain ends, read in `tx` (under the tenant's append lock).
pub(super) async fn chain_end(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: &str,
) -> Result<ChainEnd> {
    let end = sqlx::query(CHAIN_END)
        .bind(tenant)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match end {
        Some(row) => ChainEnd::from_columns(row.try_get("sequence")?, row.try_get("hash")?),
        None => ChainEnd::from_columns(None, None),
    })
}

/// Appends `event` to its tenant's chain inside `tx`, linked under `key`, and moves the
/// chain's MACed head to it. Two concurrent appends compute the same next sequence; the
/// primary key lets only one commit, and the other's transaction fails (the operation is
/// then refused, never recorded without its event).
pub(super) async fn append(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    key: &AuditKey,
    event: &NewAuditEvent<'_>,
) -> Result<()> {
    let end = chain_end(tx, event.tenant).await?;
    append_run(tx, backend, key, end, std::slice::from_ref(event))
        .await
        .map(drop)
}

/// Appends `events`, all of one tenant, in order after `end` (read in `tx`), as [`append`]
/// would one by one, but moving the head once, and returns the chain's new end. On
/// PostgreSQL the head moves in the statement that inserts the last events, so a run of up
/// to [`MAX_INSERT_ROWS`] costs one round trip.
pub(super) async fn append_run(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    key: &AuditKey,
    end: ChainEnd,
    events: &[NewAuditEvent<'_>],
) -> Result<ChainEnd> {
    let Some(last_event) = events.last() else {
        return Ok(end);
    };
    let tenant = last_event.tenant;
    let ChainEnd {
        mut sequence,
        link: mut previous_hash,
    } = end;
    // Link every event first, then insert them in as few statements as the chunk sizes allow.
    let mut links = Vec::with_capacity(events.len());
    for event in events {
        debug_assert_eq!(event.tenant, tenant);
        sequence += 1;
        let link = keyed_link(key, &previous_hash, sequence, event);
        links.push((
            sequence,
            std::mem::replace(&mut previous_hash, link.clone()),
            link,
        ));
    }
    let mac = audit::head_mac(key, tenant, sequence, &previous_hash);
    let head = Head {
        tenant,
        sequence,
        link: &previous_hash,
        mac: &mac,
        time: last_event.time,
    };
    let mut rows = events.iter().zip(&links);
    let mut chunks = insert_chunks(events.len()).peekable();
    while let Some(size) = chunks.next() {
        let with_head = backend == Backend::Postgres && chunks.peek().is_none();
        // Only generated placeholders vary: every value is bound.
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(insert_events_sql(size, with_head)));
        for (event, (sequence, previous, link)) in rows.by_ref().take(size) {
            insert = insert
                .bind(tenant)
                .bind(*sequence)
                .bind(event.time)
                .bind(event.actor)
                .bind(event.action)
                .bind(event.credential)
                .bind(event.outcome)
                .bind(event.request_id)
                .bind(previous.as_str())
                .bind(link.as_str())
                .bind(KEYED);
        }
        if with_head {
            insert = head.bind(insert);
        }
        insert.execute(&mut **tx).await?;
    }
    if backend != Backend::Postgres {
        head.bind(sqlx::query(sqlx::AssertSqlSafe(move_head_sql(1))))
            .execute(&mut **tx)
            .await?;
    }
    Ok(ChainEnd {
        sequence,
        link: previous_hash,
    })
}

/// A head's values, in [`move_head_sql`]'s order.
struct Head<'a> {
    tenant: &'a str,
    sequence: i64,
    link: &'a str,
    mac: &'a str,
    time: i64,
}

impl<'a> Head<'a> {
    /// Binds the head's five values next in `query`.
    fn bind(&self, query: AnyQuery<'a>) -> AnyQuery<'a> {
        query
            .bind(self.tenant)
            .bind(self.sequence)
            .bind(self.link)
            .bind(self.mac)
            .bind(self.time)
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// The most events one INSERT carries (11 parameters each, far under either database's
/// limit). Not more: sqlx's SQLite driver asks SQLite for each parameter's name, which SQLite
/// finds by scanning them all, so binding a statement costs the square of its parameters.
pub(super) const MAX_INSERT_ROWS: usize = 32;

/// The parameters of one inserted event.
const EVENT_COLUMNS: usize = 11;

/// How `count` events are split into INSERTs: powers of two from [`MAX_INSERT_ROWS`] down, so
/// at most six statement shapes are ever prepared, twelve on PostgreSQL where the last one
/// also moves the head (each connection caches its statements by their text).
fn insert_chunks(count: usize) -> impl Iterator<Item = usize> {
    let full = count / MAX_INSERT_ROWS;
    let rest = count % MAX_INSERT_ROWS;
    std::iter::repeat_n(MAX_INSERT_ROWS, full).chain(
        (0..MAX_INSERT_ROWS.trailing_zeros())
            .rev()
            .map(|bit| 1 << bit)
            .filter(move |size| rest & size != 0),
    )
}

/// An INSERT of `rows` events; `with_head` (PostgreSQL only) makes it a data-modifying CTE
/// whose main statement moves the head, its five parameters after the events'.
fn insert_events_sql(rows: usize, with_head: bool) -> String {
    let mut sql = String::from(if with_head { "WITH inserted AS (" } else { "" });
    sql.push_str(
        "INSERT INTO cred_audit_events (tenant, sequence, time, actor, action, credential, \
         outcome, request_id, previous_hash, hash, mac_version) VALUES ",
    );
    for row in 0..rows {
        let first = row * EVENT_COLUMNS + 1;
        let values: Vec<String> = (first..first + EVENT_COLUMNS)
            .map(|n| format!("${n}"))
            .collect();
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        sql.push_str(&values.join(", "));
        sql.push(')');
    }
    if with_head {
        sql.push_str(" RETURNING sequence) ");
        sql.push_str(&move_head_sql(rows * EVENT_COLUMNS + 1));
    }
    sql
}

/// Moves a tenant's head: tenant, sequence, link, MAC and time bound from `$first` on.
fn move_head_sql(first: usize) -> String {
    let [tenant, sequence, link, mac, time] =
        std::array::from_fn::<_, 5, _>(|n| format!("${}", first + n));
    format!(
        "INSERT INTO cred_audit_heads (tenant, sequence, link, mac, update_time) \
         VALUES ({tenant}, {sequence}, {link}, {mac}, {time}) ON CONFLICT (tenant) DO UPDATE SET \
         sequence = {sequence}, link = {link}, mac = {mac}, update_time = {time}"
    )
}

/// Re-links a wholly legacy, intact chain under `key` (see `Store::relink_legacy_chain`).
pub(super) async fn relink_legacy(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: &str,
    key: &AuditKey,
) -> Result<bool> {
    let rows = sqlx::query(
        "SELECT tenant, sequence, time, actor, action, credential, outcome, request_id, \
         previous_hash, hash, mac_version FROM cred_audit_events WHERE tenant = $1 \
         ORDER BY sequence",
    )
    .bind(tenant)
    .fetch_all(&mut **tx)
    .await?;
    let events = rows.iter().map(event_row).collect::<Result<Vec<_>>>()?;
    let mut previous = GENESIS.to_owned();
    for (expected, event) in (1..).zip(&events) {
        let intact = event.mac_version == LEGACY
            && event.sequence == expected
            && event.previous_hash == previous
            && event.hash == event.expected_hash(key);
        if !intact {
            return Ok(false);
        }
        previous = event.hash.clone();
    }
    let mut previous = GENESIS.to_owned();
    let mut last = 0;
    for event in &events {
        let link = keyed_link(key, &previous, event.sequence, &event.as_new());
        sqlx::query(
            "UPDATE cred_audit_events SET previous_hash = $1, hash = $2, mac_version = $3 \
             WHERE tenant = $4 AND sequence = $5",
        )
        .bind(&previous)
        .bind(&link)
        .bind(KEYED)
        .bind(tenant)
        .bind(event.sequence)
        .execute(&mut **tx)
        .await?;
        previous = link;
        last = event.sequence;
    }
    if last > 0 {
        let mac = audit::head_mac(key, tenant, last, &previous);
        let head = Head {
            tenant,
            sequence: last,
            link: &previous,
            mac: &mac,
            time: events.last().map_or(0, |e| e.time),
        };
        head.bind(sqlx::query(sqlx::AssertSqlSafe(move_head_sql(1))))
            .execute(&mut **tx)
            .await?;
    }
    Ok(true)
}

/// The tenant's chain head, if it has keyed events.
pub(super) async fn head(pool: &AnyPool, tenant: &str) -> Result<Option<AuditHead>> {
    let row = sqlx::query(
        "SELECT tenant, sequence, link, mac, update_time FROM cred_audit_heads WHERE tenant = $1",
    )
    .bind(tenant)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(AuditHead {
            tenant: row.try_get("tenant")?,
            sequence: row.try_get("sequence")?,
            link: row.try_get("link")?,
            mac: row.try_get("mac")?,
            time: row.try_get("update_time")?,
        })
    })
    .transpose()
}

/// The tenant's wrapped audit key, if it has one.
pub(super) async fn wrapped_key(pool: &AnyPool, tenant: &str) -> Result<Option<Vec<u8>>> {
    let row = sqlx::query("SELECT wrapped FROM cred_audit_keys WHERE tenant = $1")
        .bind(tenant)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|row| row.try_get("wrapped")).transpose()?)
}

/// Stores a tenant's wrapped audit key unless it has one already (another replica may have
/// won the race: the caller re-reads).
pub(super) async fn insert_wrapped_key(
    pool: &AnyPool,
    tenant: &str,
    wrapped: &[u8],
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO cred_audit_keys (tenant, wrapped, create_time) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant) DO NOTHING",
    )
    .bind(tenant)
    .bind(wrapped)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn events(
    pool: &AnyPool,
    tenant: &str,
    after: i64,
    limit: u32,
) -> Result<Vec<AuditEvent>> {
    let rows = sqlx::query(
        "SELECT tenant, sequence, time, actor, action, credential, outcome, request_id, \
         previous_hash, hash, mac_version FROM cred_audit_events \
         WHERE tenant = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
    )
    .bind(tenant)
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(event_row).collect()
}

fn event_row(row: &sqlx::any::AnyRow) -> Result<AuditEvent> {
    Ok(AuditEvent {
        tenant: row.try_get("tenant")?,
        sequence: row.try_get("sequence")?,
        time: row.try_get("time")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        credential: row.try_get("credential")?,
        outcome: row.try_get("outcome")?,
        request_id: row.try_get("request_id")?,
        previous_hash: row.try_get("previous_hash")?,
        hash: row.try_get("hash")?,
        mac_version: row.try_get("mac_version")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(actor: &str) -> NewAuditEvent<'_> {
        NewAuditEvent {
            tenant: "acme",
            actor,
            action: "reveal",
            credential: "tenants/acme/credentials/x",
            outcome: "success",
            request_id: "",
            time: 1,
        }
    }

    #[test]
    fn hashes_chain_and_depend_on_every_field() {
        let first = chain_hash(GENESIS, 1, &event("alice"));
        assert_eq!(first.len(), 64);
        assert_ne!(first, chain_hash(GENESIS, 1, &event("alicf")));
        assert_ne!(first, chain_hash(GENESIS, 2, &event("alice")));
        let second = chain_hash(&first, 2, &event("bob"));
        assert_ne!(second, chain_hash(GENESIS, 2, &event("bob")));
        // Shifting bytes between fields changes the hash (length prefixes).
        let mut shifted = event("alice");
        shifted.action = "revea";
        shifted.credential = "ltenants/acme/credentials/x";
        assert_ne!(first, chain_hash(GENESIS, 1, &shifted));
    }

    #[test]
    fn events_are_inserted_in_power_of_two_chunks() {
        for count in 0..=300 {
            let chunks: Vec<usize> = insert_chunks(count).collect();
            assert_eq!(chunks.iter().sum::<usize>(), count, "{count}: {chunks:?}");
            assert!(
                chunks
                    .iter()
                    .all(|size| size.is_power_of_two() && *size <= MAX_INSERT_ROWS),
                "{count}: {chunks:?}"
            );
            assert!(
                chunks.windows(2).all(|pair| pair[0] >= pair[1]),
                "{chunks:?}"
            );
        }
        assert_eq!(insert_chunks(37).collect::<Vec<_>>(), [32, 4, 1]);
        assert_eq!(insert_chunks(130).collect::<Vec<_>>(), [32, 32, 32, 32, 2]);
    }

    #[test]
    fn an_insert_numbers_every_row_parameters() {
        let sql = insert_events_sql(2, false);
        assert!(sql.starts_with("INSERT INTO cred_audit_events"));
        assert!(sql.ends_with(
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11), \
             ($12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)"
        ));
        // With the head, its parameters follow the events'.
        let sql = insert_events_sql(2, true);
        assert!(sql.starts_with("WITH inserted AS (INSERT INTO cred_audit_events"));
        assert!(sql.contains("($12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22) RETURNING"));
        assert!(sql.contains("VALUES ($23, $24, $25, $26, $27) ON CONFLICT (tenant)"));
        assert!(sql.ends_with("sequence = $24, link = $25, mac = $26, update_time = $27"));
    }
}
