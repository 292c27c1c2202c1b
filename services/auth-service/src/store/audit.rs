//! The keyed audit chain of privilege changes: one chain per tenant, each event's hash an
//! HMAC-SHA256 link under auth-service's audit key ([`coffer_crypto::audit`]), the head
//! (last sequence and link, MACed) written in the same transaction as the event. Every
//! privilege change is committed in one transaction with its event, or not at all.

use coffer_crypto::AuditKey;
use coffer_crypto::audit::{self, GENESIS};
use sqlx::{AnyPool, Row as _};

use super::Store;
use crate::{Error, Result};

/// A privilege change to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChainEvent<'a> {
    /// Tenant whose chain it joins.
    pub(crate) tenant: &'a str,
    /// Who acted.
    pub(crate) actor: &'a str,
    /// What (`principal.create`, ...).
    pub(crate) action: &'a str,
    /// What it concerned, and what was granted.
    pub(crate) subject: &'a str,
    /// `success`, ...
    pub(crate) outcome: &'a str,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainRow {
    /// Tenant.
    pub(crate) tenant: String,
    /// Position, from 1.
    pub(crate) sequence: i64,
    /// When.
    pub(crate) time: i64,
    /// Who.
    pub(crate) actor: String,
    /// What.
    pub(crate) action: String,
    /// On what.
    pub(crate) subject: String,
    /// Outcome.
    pub(crate) outcome: String,
    /// The previous link.
    pub(crate) previous_hash: String,
    /// This event's link.
    pub(crate) hash: String,
}

/// A chain's stored head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainHead {
    /// Last sequence.
    pub(crate) sequence: i64,
    /// Last link.
    pub(crate) link: String,
    /// MAC of tenant, sequence and link.
    pub(crate) mac: String,
    /// When written.
    pub(crate) time: i64,
}

impl ChainRow {
    /// The link `key` computes from this event's fields and stored previous link.
    pub(crate) fn recomputed(&self, key: &AuditKey) -> String {
        link(
            key,
            &self.previous_hash,
            self.sequence,
            self.time,
            &ChainEvent {
                tenant: &self.tenant,
                actor: &self.actor,
                action: &self.action,
                subject: &self.subject,
                outcome: &self.outcome,
            },
        )
    }
}

impl ChainHead {
    /// The head as [`coffer_crypto::audit`] checks it.
    pub(crate) fn to_head(&self) -> audit::Head {
        audit::Head {
            sequence: self.sequence,
            link: self.link.clone(),
            mac: self.mac.clone(),
        }
    }
}

fn link(
    key: &AuditKey,
    previous: &str,
    sequence: i64,
    time: i64,
    event: &ChainEvent<'_>,
) -> String {
    let time = time.to_be_bytes();
    audit::link(
        key,
        previous,
        sequence,
        &[
            b"auth".as_slice(),
            &time,
            event.tenant.as_bytes(),
            event.actor.as_bytes(),
            event.action.as_bytes(),
            event.subject.as_bytes(),
            event.outcome.as_bytes(),
        ],
    )
}

/// Appends `event` to its tenant's chain in `tx`. The head row is written first (an update
/// that changes nothing when it exists), which takes the tenant's append lock on both
/// databases, so concurrent appends serialize instead of colliding.
pub(super) async fn append(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    key: &AuditKey,
    event: &ChainEvent<'_>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO auth_audit_heads (tenant, sequence, link, mac, update_time) \
         VALUES ($1, 0, $2, '', 0) ON CONFLICT (tenant) DO UPDATE SET sequence = auth_audit_heads.sequence",
    )
    .bind(event.tenant)
    .bind(GENESIS)
    .execute(&mut **tx)
    .await?;
    let head = sqlx::query("SELECT sequence, link FROM auth_audit_heads WHERE tenant = $1")
        .bind(event.tenant)
        .fetch_one(&mut **tx)
        .await?;
    let (previous_sequence, previous): (i64, String) =
        (head.try_get("sequence")?, head.try_get("link")?);
    let sequence = previous_sequence + 1;
    let hash = link(key, &previous, sequence, now, event);
    sqlx::query(
        "INSERT INTO auth_audit_chain (tenant, sequence, time, actor, action, subject, outcome, \
         previous_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(event.tenant)
    .bind(sequence)
    .bind(now)
    .bind(event.actor)
    .bind(event.action)
    .bind(event.subject)
    .bind(event.outcome)
    .bind(&previous)
    .bind(&hash)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE auth_audit_heads SET sequence = $2, link = $3, mac = $4, update_time = $5 \
         WHERE tenant = $1",
    )
    .bind(event.tenant)
    .bind(sequence)
    .bind(&hash)
    .bind(audit::head_mac(key, event.tenant, sequence, &hash))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Appends one event on its own (for events without a change of their own).
    ///
    /// # Errors
    /// [`Error::Database`]: callers fail the operation rather than skip the audit.
    pub(crate) async fn audit(
        &self,
        key: &AuditKey,
        event: &ChainEvent<'_>,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.db.pool.begin().await?;
        append(&mut tx, key, event, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Up to `limit` events of `tenant`'s chain after `after`, oldest first.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn chain_events(
        &self,
        tenant: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ChainRow>> {
        events(&self.db.pool, tenant, after, limit).await
    }

    /// `tenant`'s chain head, if it has events.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn chain_head(&self, tenant: &str) -> Result<Option<ChainHead>> {
        let row = sqlx::query(
            "SELECT sequence, link, mac, update_time FROM auth_audit_heads \
             WHERE tenant = $1 AND sequence > 0",
        )
        .bind(tenant)
        .fetch_optional(&self.db.pool)
        .await?;
        row.map(|row| {
            Ok(ChainHead {
                sequence: row.try_get("sequence")?,
                link: row.try_get("link")?,
                mac: row.try_get("mac")?,
                time: row.try_get("update_time")?,
            })
        })
        .transpose()
    }

    /// The wrapped audit key, if one was made.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn wrapped_audit_key(&self) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT wrapped FROM auth_audit_key WHERE id = 'audit'")
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.map(|row| row.try_get("wrapped")).transpose()?)
    }

    /// Stores the wrapped audit key unless one is stored (then re-read it).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn insert_wrapped_audit_key(&self, wrapped: &[u8], now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO auth_audit_key (id, wrapped, create_time) VALUES ('audit', $1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(wrapped)
        .bind(now)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }
}

async fn events(pool: &AnyPool, tenant: &str, after: i64, limit: u32) -> Result<Vec<ChainRow>> {
    let rows = sqlx::query(
        "SELECT tenant, sequence, time, actor, action, subject, outcome, previous_hash, hash \
         FROM auth_audit_chain WHERE tenant = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
    )
    .bind(tenant)
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ChainRow {
                tenant: row.try_get("tenant")?,
                sequence: row.try_get("sequence")?,
                time: row.try_get("time")?,
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                subject: row.try_get("subject")?,
                outcome: row.try_get("outcome")?,
                previous_hash: row.try_get("previous_hash")?,
                hash: row.try_get("hash")?,
            })
        })
        .collect::<Result<_, Error>>()
}
