//! A key's metadata row.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::names::KeyName;
use crate::{Error, Result};

/// A key's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyState {
    /// Usable.
    Enabled,
    /// Deletion scheduled; unusable until cancelled.
    PendingDeletion,
    /// Material destroyed.
    Destroyed,
}

impl KeyState {
    /// The stored form.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::PendingDeletion => "pending_deletion",
            Self::Destroyed => "destroyed",
        }
    }

    fn parse(stored: &str) -> Result<Self> {
        match stored {
            "enabled" => Ok(Self::Enabled),
            "pending_deletion" => Ok(Self::PendingDeletion),
            "destroyed" => Ok(Self::Destroyed),
            _ => Err(Error::Database(sqlx::Error::Decode(
                "unknown key state".into(),
            ))),
        }
    }
}

/// A key's metadata, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyRecord {
    /// The key's name.
    pub(crate) name: KeyName,
    /// The version that encrypts; versions are 1..=primary_version.
    pub(crate) primary_version: u32,
    /// Lowest version that still decrypts.
    pub(crate) min_decryption_version: u32,
    /// Lowest version that may be requested for encryption.
    pub(crate) min_encryption_version: u32,
    /// Whether deletion may be scheduled.
    pub(crate) deletion_allowed: bool,
    /// Lifecycle state.
    pub(crate) state: KeyState,
    /// Stopped by DisableKey (until EnableKey); independent of `state`.
    pub(crate) disabled: bool,
    /// Creation time, unix seconds.
    pub(crate) create_time: i64,
    /// Last change, unix seconds.
    pub(crate) update_time: i64,
    /// When a pending deletion takes (or took) effect, unix seconds.
    pub(crate) destroy_time: Option<i64>,
}

impl KeyRecord {
    /// A freshly created key.
    pub(crate) fn new(name: KeyName, deletion_allowed: bool, now: i64) -> Self {
        Self {
            name,
            primary_version: 1,
            min_decryption_version: 1,
            min_encryption_version: 1,
            deletion_allowed,
            state: KeyState::Enabled,
            disabled: false,
            create_time: now,
            update_time: now,
            destroy_time: None,
        }
    }

    /// Whether a pending deletion's waiting period is over at `now`.
    pub(crate) fn deletion_due(&self, now: i64) -> bool {
        self.state == KeyState::PendingDeletion && self.destroy_time.is_some_and(|t| t <= now)
    }

    pub(crate) fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Self {
            name: crate::names::stored_key_name(
                &row.try_get::<String, _>("tenant")?,
                &row.try_get::<String, _>("key_id")?,
            )?,
            primary_version: to_u32(row.try_get("primary_version")?)?,
            min_decryption_version: to_u32(row.try_get("min_decryption_version")?)?,
            min_encryption_version: to_u32(row.try_get("min_encryption_version")?)?,
            deletion_allowed: row.try_get::<i64, _>("deletion_allowed")? != 0,
            state: KeyState::parse(&row.try_get::<String, _>("state")?)?,
            disabled: row.try_get::<i64, _>("disabled")? != 0,
            create_time: row.try_get("create_time")?,
            update_time: row.try_get("update_time")?,
            destroy_time: row.try_get("destroy_time")?,
        })
    }
}

/// Stored BIGINT to u32, refusing values the schema should never hold.
pub(crate) fn to_u32(value: i64) -> Result<u32> {
    u32::try_from(value)
        .map_err(|_| Error::Database(sqlx::Error::Decode("version out of range".into())))
}
