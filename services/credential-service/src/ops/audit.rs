//! Listing and verifying the audit log, and recording denials.

use super::{Actor, Credentials};
use crate::store::{AUDIT_GENESIS, AuditEvent, NewAuditEvent};
use crate::{Result, now};

/// What VerifyAuditChain found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainCheck {
    /// Events checked.
    pub checked: u64,
    /// The first event whose link or hash is wrong.
    pub first_broken: Option<i64>,
}

/// Events read per round trip while verifying.
const PAGE: u32 = 500;

impl Credentials {
    /// One page of a tenant's audit events after `after`, oldest first.
    ///
    /// # Errors
    /// [`crate::Error::Database`].
    pub async fn audit_events(
        &self,
        tenant: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>> {
        self.store.audit_events(tenant, after, limit).await
    }

    /// Walks a tenant's whole chain: sequence gap-free from 1, every event linked to its
    /// predecessor's hash, every hash recomputed.
    ///
    /// # Errors
    /// [`crate::Error::Database`].
    pub async fn verify_chain(&self, tenant: &str) -> Result<ChainCheck> {
        let mut checked = 0u64;
        let mut previous_hash = AUDIT_GENESIS.to_owned();
        let mut expected_sequence = 1i64;
        loop {
            let page = self
                .store
                .audit_events(tenant, expected_sequence - 1, PAGE)
                .await?;
            if page.is_empty() {
                return Ok(ChainCheck {
                    checked,
                    first_broken: None,
                });
            }
            for event in page {
                checked += 1;
                let intact = event.sequence == expected_sequence
                    && event.previous_hash == previous_hash
                    && event.hash == event.expected_hash();
                if !intact {
                    return Ok(ChainCheck {
                        checked,
                        first_broken: Some(expected_sequence),
                    });
                }
                previous_hash = event.hash;
                expected_sequence += 1;
            }
        }
    }

    /// Records a denied access to `credential` (always, before the caller is refused).
    ///
    /// # Errors
    /// The audit write's error.
    pub async fn audit_denied(
        &self,
        tenant: &str,
        credential: &str,
        action: &str,
        actor: &Actor,
    ) -> Result<()> {
        self.metrics.denied.inc();
        let event = NewAuditEvent {
            tenant,
            actor: &actor.id,
            action,
            credential,
            outcome: "denied",
            request_id: &actor.request_id,
            time: now(),
        };
        self.store.audit(&event).await
    }
}
