//! Reading and verifying the privilege-change chains (see `store::audit`).

use coffer_crypto::audit;

use super::Auth;
use crate::Result;
use crate::store::{ChainHead, ChainRow};

/// Events read per round trip while verifying.
const PAGE: u32 = 500;

/// What a verification found, and the verified head when intact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainCheck {
    /// Events checked.
    pub(crate) checked: u64,
    /// The first sequence the chain cannot vouch for.
    pub(crate) first_broken: Option<i64>,
    /// The verified head, to export.
    pub(crate) head: Option<ChainHead>,
}

impl Auth {
    /// One page of `tenant`'s events after `after`, oldest first.
    ///
    /// # Errors
    /// [`crate::Error::Database`].
    pub(crate) async fn audit_events(
        &self,
        tenant: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ChainRow>> {
        self.store.chain_events(tenant, after, limit).await
    }

    /// Walks `tenant`'s whole chain (see [`audit::ChainVerifier`]), against `expected`, a head
    /// exported earlier, if given.
    ///
    /// # Errors
    /// [`crate::Error::Database`].
    pub(crate) async fn verify_audit_chain(
        &self,
        tenant: &str,
        expected: Option<audit::Head>,
    ) -> Result<ChainCheck> {
        let key = self.audit_key();
        let refused = |verdict: audit::Verdict| ChainCheck {
            checked: verdict.checked,
            first_broken: verdict.first_broken,
            head: None,
        };
        let mut verifier = match audit::ChainVerifier::new(key, tenant, expected) {
            Ok(verifier) => verifier,
            Err(verdict) => return Ok(refused(verdict)),
        };
        loop {
            let page = self
                .store
                .chain_events(tenant, verifier.last(), PAGE)
                .await?;
            if page.is_empty() {
                break;
            }
            for event in page {
                let recomputed = event.recomputed(key);
                if let Err(verdict) = verifier.event(
                    event.sequence,
                    &event.previous_hash,
                    &event.hash,
                    Some(&recomputed),
                ) {
                    return Ok(refused(verdict));
                }
            }
        }
        let head = self.store.chain_head(tenant).await?;
        let verdict = verifier.finish(head.as_ref().map(ChainHead::to_head).as_ref());
        Ok(ChainCheck {
            checked: verdict.checked,
            head: head.filter(|_| verdict.first_broken.is_none()),
            first_broken: verdict.first_broken,
        })
    }
}
