//! Key lifecycle: create, read, list, rotate, policy.

use coffer_server::paging::Cursor;

use super::Kms;
use crate::error::reasons;
use crate::names::{KeyName, TenantId};
use crate::store::{Change, KeyRecord, KeyState};
use crate::{Error, Result};

/// The policy fields an UpdateKeyPolicy call sets; `None` keeps the current value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PolicyUpdate {
    /// New minimum decryption version.
    pub(crate) min_decryption_version: Option<u32>,
    /// New minimum encryption version.
    pub(crate) min_encryption_version: Option<u32>,
    /// New deletion permission.
    pub(crate) deletion_allowed: Option<bool>,
    /// Only the fields above that are set change (an update mask was given): raising
    /// `min_decryption_version` does not move `min_encryption_version` along.
    pub(crate) exact: bool,
}

impl Kms {
    /// Creates a key with a fresh version 1.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`], [`Error::Database`], [`Error::Crypto`].
    pub(crate) async fn create_key(
        &self,
        name: &KeyName,
        deletion_allowed: bool,
    ) -> Result<KeyRecord> {
        let version_1 = self.new_version(name, 1)?;
        self.store
            .create_key(name, deletion_allowed, version_1, self.clock.now())
            .await
    }

    /// A key's metadata.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Database`].
    pub(crate) async fn get_key(&self, name: &KeyName) -> Result<KeyRecord> {
        self.record(name).await
    }

    /// One page of a tenant's keys and the token of the next page, if any.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad page token, [`Error::Database`].
    pub(crate) async fn list_keys(
        &self,
        tenant: &TenantId,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<KeyRecord>, Option<String>)> {
        let cursor = Cursor::new("ListKeys", &tenant.name(), &[]);
        let after = match cursor.position(page_token) {
            Ok(None) => String::new(),
            Ok(Some(key)) => coffer_server::names::parse_id("page_token", &key)?,
            Err(why) => return Err(Error::invalid("page_token", why)),
        };
        let rows = self
            .store
            .list_keys(tenant.as_str(), &after, page_size + 1)
            .await?;
        let (page, next) =
            coffer_server::paging::split_page(rows, page_size, |last| cursor.token(last.name.id()));
        let mut keys = Vec::with_capacity(page.len());
        for record in page {
            let due = record.state == KeyState::PendingDeletion
                && record.destroy_time.is_some_and(|t| t <= self.clock.now());
            keys.push(if due {
                self.destroy_if_due(&record.name).await?
            } else {
                record
            });
        }
        Ok((keys, next))
    }

    /// Adds the next version and makes it primary.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::FailedPrecondition`] unless enabled, [`Error::Database`].
    pub(crate) async fn rotate_key(&self, name: &KeyName) -> Result<KeyRecord> {
        self.store
            .modify(name, self.clock.now(), |record| {
                require_enabled(record)?;
                let next = record.primary_version.checked_add(1).ok_or_else(|| {
                    Error::FailedPrecondition(
                        reasons::VERSIONS_EXHAUSTED,
                        format!("key {name} has no versions left"),
                    )
                })?;
                Ok(Some(Change::Rotate(self.new_version(name, next)?)))
            })
            .await
    }

    /// Changes the policy fields that `update` sets. Raising `min_decryption_version` above
    /// `min_encryption_version` without setting the latter raises it too: a version retired
    /// for decryption cannot still be chosen for encryption.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the result breaks
    /// `1 <= min_decryption_version <= min_encryption_version <= primary_version`;
    /// [`Error::NotFound`]; [`Error::FailedPrecondition`] for a destroyed key.
    pub(crate) async fn update_policy(
        &self,
        name: &KeyName,
        update: PolicyUpdate,
    ) -> Result<KeyRecord> {
        self.store
            .modify(name, self.clock.now(), |record| {
                if record.state == KeyState::Destroyed {
                    return Err(Error::FailedPrecondition(
                        reasons::KEY_DESTROYED,
                        format!("key {name} is destroyed"),
                    ));
                }
                let primary = record.primary_version;
                let min_dec = update
                    .min_decryption_version
                    .unwrap_or(record.min_decryption_version);
                if !(1..=primary).contains(&min_dec) {
                    return Err(Error::invalid(
                        "min_decryption_version",
                        format!("must be between 1 and the primary version ({primary})"),
                    ));
                }
                let min_enc = update.min_encryption_version.unwrap_or_else(|| {
                    if update.exact {
                        record.min_encryption_version
                    } else {
                        record.min_encryption_version.max(min_dec)
                    }
                });
                if !(min_dec..=primary).contains(&min_enc) {
                    return Err(Error::invalid(
                        "min_encryption_version",
                        format!(
                            "must be between min_decryption_version ({min_dec}) and the primary \
                             version ({primary})"
                        ),
                    ));
                }
                Ok(Some(Change::Policy {
                    min_decryption_version: min_dec,
                    min_encryption_version: min_enc,
                    deletion_allowed: update.deletion_allowed.unwrap_or(record.deletion_allowed),
                }))
            })
            .await
    }
}

impl Kms {
    /// Stops (`disabled`) or resumes every cryptographic use of a key. Idempotent.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::FailedPrecondition`] while pending deletion or destroyed.
    pub(crate) async fn set_disabled(&self, name: &KeyName, disabled: bool) -> Result<KeyRecord> {
        self.store
            .modify(name, self.clock.now(), |record| match record.state {
                KeyState::Enabled if record.disabled == disabled => Ok(None),
                KeyState::Enabled => Ok(Some(Change::Disabled(disabled))),
                KeyState::PendingDeletion => Err(Error::FailedPrecondition(
                    reasons::DELETION_PENDING,
                    format!("key {name} is pending deletion; cancel the deletion first"),
                )),
                KeyState::Destroyed => Err(Error::FailedPrecondition(
                    reasons::KEY_DESTROYED,
                    format!("key {name} is destroyed"),
                )),
            })
            .await
    }
}

pub(super) fn require_enabled(record: &KeyRecord) -> Result<()> {
    match record.state {
        KeyState::Enabled if record.disabled => Err(Error::FailedPrecondition(
            reasons::KEY_DISABLED,
            format!(
                "key {} is disabled; EnableKey makes it usable again",
                record.name
            ),
        )),
        KeyState::Enabled => Ok(()),
        KeyState::PendingDeletion => Err(Error::FailedPrecondition(
            reasons::DELETION_PENDING,
            format!(
                "key {} is pending deletion; cancel the deletion to use it",
                record.name
            ),
        )),
        KeyState::Destroyed => Err(Error::FailedPrecondition(
            reasons::KEY_DESTROYED,
            format!("key {} is destroyed", record.name),
        )),
    }
}

/// Most keys in one ListKeyChanges answer.
const MAX_KEY_CHANGES: u32 = 1000;

impl Kms {
    /// Keys changed at or after `since` (at most 1000), whether more
    /// follow, and the server's clock.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn key_changes(&self, since: i64) -> Result<(Vec<KeyRecord>, bool, i64)> {
        let answered = self.clock.now();
        let rows = self
            .store
            .keys_changed_since(since, MAX_KEY_CHANGES + 1)
            .await?;
        let (rows, more) =
            coffer_server::paging::split_page(rows, MAX_KEY_CHANGES, |_| String::new());
        Ok((rows, more.is_some(), answered))
    }
}
