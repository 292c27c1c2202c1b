//! Listing and verifying the audit log, and recording denials.

use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use lru::LruCache;

use coffer_crypto::audit;

use super::{Actor, Credentials};
use crate::Result;
use crate::store::{AuditEvent, AuditHead, KEYED, NewAuditEvent};

/// What VerifyAuditChain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainCheck {
    /// Events checked.
    pub(crate) checked: u64,
    /// The first sequence the chain cannot vouch for: an event whose link is wrong, or the
    /// first one missing after the last intact event.
    pub(crate) first_broken: Option<i64>,
    /// The verified head, when the chain is intact (to export and keep elsewhere).
    pub(crate) head: Option<AuditHead>,
}

/// Events read per round trip while verifying.
const PAGE: u32 = 500;

impl Credentials {
    /// One page of a tenant's audit events after `after`, oldest first.
    ///
    /// # Errors
    /// [`crate::Error::Database`].
    pub(crate) async fn audit_events(
        &self,
        tenant: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>> {
        self.store.audit_events(tenant, after, limit).await
    }

    /// Walks a tenant's whole chain: sequence gap-free from 1, every event linked to its
    /// predecessor, every link recomputed under the tenant's audit key (an unkeyed legacy
    /// event is never accepted: [`Credentials::upgrade_legacy_chains`] re-links them at
    /// start-up), and the last event equal to the MACed head.
    /// With `expected`, a head exported earlier: its MAC must hold and the chain must still
    /// contain its event at its sequence with its link (so rolling the chain and its head
    /// back to an older state is caught too).
    ///
    /// # Errors
    /// [`crate::Error::Database`]; [`crate::Error::KeyService`] when the audit key is needed
    /// and cannot be had (fail closed).
    pub(crate) async fn verify_chain(
        &self,
        tenant: &str,
        expected: Option<&AuditHead>,
    ) -> Result<ChainCheck> {
        let key = self.chain_key(tenant).await?;
        let refused = |verdict: audit::Verdict| ChainCheck {
            checked: verdict.checked,
            first_broken: verdict.first_broken,
            head: None,
        };
        let mut verifier =
            match audit::ChainVerifier::new(&key, tenant, expected.map(AuditHead::to_head)) {
                Ok(verifier) => verifier,
                Err(verdict) => return Ok(refused(verdict)),
            };
        loop {
            let page = self
                .store
                .audit_events(tenant, verifier.last(), PAGE)
                .await?;
            if page.is_empty() {
                break;
            }
            for event in page {
                // Unkeyed legacy links never hold (upgrade_legacy_chains re-links them).
                let recomputed = (event.mac_version == KEYED).then(|| event.expected_hash(&key));
                if let Err(verdict) = verifier.event(
                    event.sequence,
                    &event.previous_hash,
                    &event.hash,
                    recomputed.as_deref(),
                ) {
                    return Ok(refused(verdict));
                }
            }
        }
        let head = self.store.audit_head(tenant).await?;
        let verdict = verifier.finish(head.as_ref().map(AuditHead::to_head).as_ref());
        Ok(ChainCheck {
            checked: verdict.checked,
            head: head.filter(|_| verdict.first_broken.is_none()),
            first_broken: verdict.first_broken,
        })
    }

    /// Re-links, under each tenant's audit key, the chains written before keyed chains
    /// existed (plain SHA-256 links), after checking each is intact by its old rule. Run at
    /// start-up; a broken legacy chain is left as it is (and reported by VerifyAuditChain).
    /// Returns how many chains were upgraded.
    ///
    /// # Errors
    /// [`crate::Error::Database`], [`crate::Error::KeyService`].
    pub(crate) async fn upgrade_legacy_chains(&self) -> Result<usize> {
        let mut upgraded = 0;
        for tenant in self.store.tenants_with_legacy_audit().await? {
            let key = self.chain_key(&tenant).await?;
            if self.store.relink_legacy_chain(&tenant, &key).await? {
                tracing::info!(tenant, "audit chain re-linked under the tenant's audit key");
                upgraded += 1;
            } else {
                tracing::error!(tenant, "legacy audit chain is broken; left as it is");
            }
        }
        Ok(upgraded)
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
    pub(crate) async fn audit_denied(
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
            time: self.now(),
        };
        let chain = self.chain_key(tenant).await?;
        self.store.audit(&chain, &event).await
    }
}

/// Most denial events written per principal per [`DENIAL_WINDOW`].
pub(crate) const DENIALS_PER_WINDOW: u32 = 10;
/// The window of [`DENIALS_PER_WINDOW`].
pub(crate) const DENIAL_WINDOW: Duration = Duration::from_secs(60);
/// Principals whose denial budget is tracked at once (least recently denied forgotten).
const TRACKED_PRINCIPALS: usize = 10_000;

/// Per-principal budgets of audited denials (in memory, per replica).
pub(crate) struct DenialBudget {
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
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= DENIALS_PER_WINDOW
    }
}
