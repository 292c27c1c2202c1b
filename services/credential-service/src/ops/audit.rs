//! Listing and verifying the audit log, and recording denials.

use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use lru::LruCache;

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

    /// Records a denied access to `credential` before the caller is refused, within
    /// bounds: never for a credential that does not exist in the tenant (a caller could
    /// otherwise grow the log at will with made-up ids), and at most
    /// [`DENIALS_PER_WINDOW`] per principal per [`DENIAL_WINDOW`]. Every denial is counted
    /// in `coffer_credential_denied`; those not written, in
    /// `coffer_credential_denied_unaudited`.
    ///
    /// # Errors
    /// The audit write's (or the existence check's) error.
    pub async fn audit_denied(
        &self,
        tenant: &str,
        credential: &str,
        action: &str,
        actor: &Actor,
    ) -> Result<()> {
        self.metrics.denied.inc();
        let id = credential.rsplit('/').next().unwrap_or_default();
        let exists = self.store.get(tenant, id).await?.is_some();
        if !exists || !self.denials.admit(tenant, &actor.id) {
            self.metrics.denied_unaudited.inc();
            return Ok(());
        }
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

/// Most denial events written per principal per [`DENIAL_WINDOW`].
pub const DENIALS_PER_WINDOW: u32 = 10;
/// The window of [`DENIALS_PER_WINDOW`].
pub const DENIAL_WINDOW: Duration = Duration::from_secs(60);
/// Principals whose denial budget is tracked at once (least recently denied forgotten).
const TRACKED_PRINCIPALS: usize = 10_000;

/// Per-principal budgets of audited denials (in memory, per replica).
pub struct DenialBudget {
    spent: Mutex<LruCache<(String, String), (Instant, u32)>>,
}

impl Default for DenialBudget {
    fn default() -> Self {
        Self {
            spent: Mutex::new(LruCache::new(
                NonZeroUsize::new(TRACKED_PRINCIPALS).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }
}

impl DenialBudget {
    /// Whether one more denial of `principal` in `tenant` may be written now.
    fn admit(&self, tenant: &str, principal: &str) -> bool {
        let mut spent = self.spent.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let entry = spent.get_or_insert_mut((tenant.to_owned(), principal.to_owned()), || (now, 0));
        if now.duration_since(entry.0) >= DENIAL_WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= DENIALS_PER_WINDOW
    }
}
