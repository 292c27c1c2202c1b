//! The hash-chained audit log: one chain per tenant. Each event's hash is SHA-256 over its
//! length-prefixed fields and the previous event's hash, so changing, removing or reordering
//! any event breaks every link after it.

use sha2::{Digest as _, Sha256};
use sqlx::{AnyPool, Row as _};

use crate::Result;

/// The previous hash of a tenant's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent<'a> {
    /// Tenant id.
    pub tenant: &'a str,
    /// Who acted.
    pub actor: &'a str,
    /// What happened.
    pub action: &'a str,
    /// The credential's resource name.
    pub credential: &'a str,
    /// `success`, `failure`, `denied`.
    pub outcome: &'a str,
    /// The caller's request id, or empty.
    pub request_id: &'a str,
    /// When, unix seconds.
    pub time: i64,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Tenant id.
    pub tenant: String,
    /// Position in the tenant's chain, from 1.
    pub sequence: i64,
    /// When.
    pub time: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// Which credential.
    pub credential: String,
    /// Outcome.
    pub outcome: String,
    /// Request id.
    pub request_id: String,
    /// Hash of the previous event.
    pub previous_hash: String,
    /// Hash of this event.
    pub hash: String,
}

impl AuditEvent {
    /// Recomputes this event's hash from its fields and `previous_hash`.
    pub fn expected_hash(&self) -> String {
        chain_hash(
            &self.previous_hash,
            self.sequence,
            &NewAuditEvent {
                tenant: &self.tenant,
                actor: &self.actor,
                action: &self.action,
                credential: &self.credential,
                outcome: &self.outcome,
                request_id: &self.request_id,
                time: self.time,
            },
        )
    }
}

/// SHA-256 (hex) over the previous hash and the event, every field length-prefixed.
pub fn chain_hash(previous_hash: &str, sequence: i64, event: &NewAuditEvent<'_>) -> String {
    let mut hasher = Sha256::new();
    let sequence = sequence.to_be_bytes();
    let time = event.time.to_be_bytes();
    for field in [
        b"coffer/audit/v1".as_slice(),
        previous_hash.as_bytes(),
        &sequence,
        &time,
        event.tenant.as_bytes(),
        event.actor.as_bytes(),
        event.action.as_bytes(),
        event.credential.as_bytes(),
        event.outcome.as_bytes(),
        event.request_id.as_bytes(),
    ] {
        hasher.update(u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes());
        hasher.update(field);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Appends `event` to its tenant's chain inside `tx`. Two concurrent appends compute the same
/// next sequence; the primary key lets only one commit, and the other's transaction fails
/// (the operation is then refused, never recorded without its event).
pub(super) async fn append(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    event: &NewAuditEvent<'_>,
) -> Result<()> {
    let last = sqlx::query(
        "SELECT sequence, hash FROM cred_audit_events WHERE tenant = $1 ORDER BY sequence DESC LIMIT 1",
    )
    .bind(event.tenant)
    .fetch_optional(&mut **tx)
    .await?;
    let (previous_sequence, previous_hash) = match last {
        Some(row) => (row.try_get::<i64, _>(0)?, row.try_get::<String, _>(1)?),
        None => (0, GENESIS.to_owned()),
    };
    let sequence = previous_sequence + 1;
    let hash = chain_hash(&previous_hash, sequence, event);
    sqlx::query(
        "INSERT INTO cred_audit_events (tenant, sequence, time, actor, action, credential, \
         outcome, request_id, previous_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(event.tenant)
    .bind(sequence)
    .bind(event.time)
    .bind(event.actor)
    .bind(event.action)
    .bind(event.credential)
    .bind(event.outcome)
    .bind(event.request_id)
    .bind(&previous_hash)
    .bind(&hash)
    .execute(&mut **tx)
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
         previous_hash, hash FROM cred_audit_events WHERE tenant = $1 AND sequence > $2 \
         ORDER BY sequence LIMIT $3",
    )
    .bind(tenant)
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(AuditEvent {
                tenant: row.try_get(0)?,
                sequence: row.try_get(1)?,
                time: row.try_get(2)?,
                actor: row.try_get(3)?,
                action: row.try_get(4)?,
                credential: row.try_get(5)?,
                outcome: row.try_get(6)?,
                request_id: row.try_get(7)?,
                previous_hash: row.try_get(8)?,
                hash: row.try_get(9)?,
            })
        })
        .collect()
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
}
