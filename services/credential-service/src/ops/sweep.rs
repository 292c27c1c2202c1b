//! Re-wrap sweeps: after a tenant key rotation, move every credential's data key to the
//! primary version (BatchRewrap: key-service re-encrypts without revealing the keys), page by
//! page, saving progress after each page so a sweep cut short resumes where it stopped.

use super::Credentials;
use crate::Result;
use crate::store::SweepRow;

/// A sweep's progress.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Progress {
    /// The version credentials are moved to.
    pub(crate) target_version: u32,
    /// Moved so far by this sweep.
    pub(crate) rewrapped: u64,
    /// Still below the target.
    pub(crate) remaining: u64,
    /// Items key-service refused so far.
    pub(crate) failed: u64,
    /// Where the sweep continues (empty when done or not started).
    pub(crate) cursor: String,
}

impl Credentials {
    /// Runs the tenant's sweep for at most `max_pages` pages of `rewrap_page_size` (0: until
    /// done).
    ///
    /// # Errors
    /// [`crate::Error::KeyService`], [`crate::Error::Database`].
    pub(crate) async fn rewrap(&self, tenant: &str, max_pages: u32) -> Result<Progress> {
        let page_size = self.rewrap_page_size;
        let Some(target) = self.keys.primary_version(tenant).await? else {
            return Ok(Progress::default());
        };
        let (mut sweep, mut cursor) = match self.store.sweep(tenant).await? {
            Some((sweep, cursor)) if sweep.target_version == target => (sweep, cursor),
            _ => (
                SweepRow {
                    target_version: target,
                    ..SweepRow::default()
                },
                String::new(),
            ),
        };
        let mut pages = 0;
        while max_pages == 0 || pages < max_pages {
            let batch = self
                .store
                .keys_below(tenant, target, &cursor, page_size)
                .await?;
            let Some(last) = batch.last() else {
                // The end: the next run starts over, to retry what key-service refused.
                cursor.clear();
                self.store
                    .save_sweep(tenant, &sweep, &cursor, self.now())
                    .await?;
                break;
            };
            let next_cursor = last.id.clone();
            let items: Vec<(String, Vec<u8>)> = batch
                .iter()
                .map(|row| (row.id.clone(), row.wrapped_dek.clone()))
                .collect();
            let results = self.keys.rewrap(tenant, &items).await?;
            for (row, result) in batch.iter().zip(results) {
                match result {
                    Some((wrapped, version)) => {
                        if self
                            .store
                            .replace_wrapped(tenant, &row.id, &row.wrapped_dek, &wrapped, version)
                            .await?
                        {
                            sweep.rewrapped += 1;
                        }
                    }
                    None => sweep.failed += 1,
                }
            }
            cursor = next_cursor;
            self.store
                .save_sweep(tenant, &sweep, &cursor, self.now())
                .await?;
            pages += 1;
        }
        let remaining = self.store.count_below(tenant, target).await?;
        Ok(Progress {
            target_version: target,
            rewrapped: sweep.rewrapped,
            remaining,
            failed: sweep.failed,
            cursor,
        })
    }

    /// The tenant's saved sweep progress (without running anything).
    ///
    /// # Errors
    /// [`crate::Error::Database`].
    pub(crate) async fn rewrap_progress(&self, tenant: &str) -> Result<Progress> {
        let Some((sweep, cursor)) = self.store.sweep(tenant).await? else {
            return Ok(Progress::default());
        };
        let remaining = self.store.count_below(tenant, sweep.target_version).await?;
        Ok(Progress {
            target_version: sweep.target_version,
            rewrapped: sweep.rewrapped,
            remaining,
            failed: sweep.failed,
            cursor,
        })
    }

    /// One background round: every tenant's sweep, to the end.
    ///
    /// # Errors
    /// The first failure.
    pub(crate) async fn rewrap_all(&self) -> Result<u64> {
        let mut moved = 0;
        for tenant in self.store.tenants().await? {
            let before = self.rewrap_progress(&tenant).await?.rewrapped;
            let after = self.rewrap(&tenant, 0).await?;
            moved += after.rewrapped.saturating_sub(before);
        }
        Ok(moved)
    }
}
