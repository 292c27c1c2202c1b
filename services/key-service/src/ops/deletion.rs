//! Scheduled key deletion (crypto-shredding) and its cancellation.
//!
//! ScheduleKeyDeletion marks the key unusable and sets `destroy_time = now + waiting period`.
//! Once that time has passed the key's versions are deleted from the store, by the reaper task
//! or by the first request that touches the key, whichever comes first: a key past its time is
//! never used again, even if the reaper is late. Everything encrypted under it becomes
//! undecryptable.

use super::Kms;
use crate::error::reasons;
use crate::names::KeyName;
use crate::store::{Change, KeyRecord, KeyState};
use crate::{Error, Result};

impl Kms {
    /// Schedules destruction after the configured waiting period.
    ///
    /// # Errors
    /// [`Error::FailedPrecondition`] if the policy forbids deletion, or it is already pending
    /// or done; [`Error::NotFound`]; [`Error::Database`].
    pub(crate) async fn schedule_deletion(&self, name: &KeyName) -> Result<KeyRecord> {
        let now = self.clock.now();
        let waiting = i64::try_from(self.deletion_waiting_period.as_secs()).unwrap_or(i64::MAX);
        let destroy_time = now.saturating_add(waiting);
        self.store
            .modify(name, now, |record| match record.state {
                KeyState::Enabled if record.deletion_allowed => {
                    Ok(Some(Change::ScheduleDeletion { destroy_time }))
                }
                KeyState::Enabled => Err(Error::FailedPrecondition(reasons::DELETION_NOT_ALLOWED, format!(
                    "the policy of key {name} does not allow deletion; set deletion_allowed first"
                ))),
                KeyState::PendingDeletion => Err(Error::FailedPrecondition(reasons::DELETION_PENDING, format!(
                    "key {name} is already pending deletion"
                ))),
                KeyState::Destroyed => Err(Error::FailedPrecondition(reasons::KEY_DESTROYED, format!(
                    "key {name} is destroyed"
                ))),
            })
            .await
    }

    /// Cancels a pending deletion whose waiting period is not over.
    ///
    /// # Errors
    /// [`Error::FailedPrecondition`] if no deletion is pending or it already took effect;
    /// [`Error::NotFound`]; [`Error::Database`].
    pub(crate) async fn cancel_deletion(&self, name: &KeyName) -> Result<KeyRecord> {
        let record = self.record(name).await?;
        let now = self.clock.now();
        if record.state != KeyState::PendingDeletion {
            return Err(match record.state {
                KeyState::Destroyed => Error::FailedPrecondition(
                    reasons::KEY_DESTROYED,
                    format!("key {name} is destroyed"),
                ),
                _ => Error::FailedPrecondition(
                    reasons::DELETION_NOT_PENDING,
                    format!("key {name} is not pending deletion"),
                ),
            });
        }
        self.store
            .modify(name, now, |record| {
                match (record.state, record.destroy_time) {
                    (KeyState::PendingDeletion, Some(at)) if at > now => {
                        Ok(Some(Change::CancelDeletion))
                    }
                    _ => Err(Error::FailedPrecondition(
                        reasons::KEY_DESTROYED,
                        format!("the deletion of key {name} already took effect"),
                    )),
                }
            })
            .await
    }

    /// Destroys the key if its deletion is pending and due; returns the record either way.
    pub(super) async fn destroy_if_due(&self, name: &KeyName) -> Result<KeyRecord> {
        let now = self.clock.now();
        let record = self
            .store
            .modify(name, now, |record| {
                Ok(record.deletion_due(now).then_some(Change::Destroy))
            })
            .await?;
        if record.state == KeyState::Destroyed {
            self.cache.evict_key(name);
            self.store.scrub_log().await?;
            tracing::info!(key = %name, "key material destroyed");
        }
        Ok(record)
    }

    /// Destroys every key whose waiting period is over; returns how many. Run periodically.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn destroy_due_keys(&self) -> Result<usize> {
        let due = self.store.due_deletions(self.clock.now()).await?;
        for name in &due {
            self.destroy_if_due(name).await?;
        }
        Ok(due.len())
    }
}
