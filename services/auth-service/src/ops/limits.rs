//! The per-source failure limit shared by logins and API-key verification (see
//! [`super::Lockout`]). Counts live in the database, so replicas share them.

use super::{Auth, seconds};
use crate::source::Source;
use crate::{Error, Result};

impl Auth {
    /// Refuses a source that is blocked at `now`.
    ///
    /// # Errors
    /// [`Error::ResourceExhausted`] while blocked; [`Error::Database`].
    pub(super) async fn check_source(&self, source: &Source, now: i64) -> Result<()> {
        if self
            .store
            .locked_until(&subject(source), now)
            .await?
            .is_some()
        {
            return Err(Error::ResourceExhausted(
                "too many failed attempts from this client; try again later",
            ));
        }
        Ok(())
    }

    /// Counts a failure of `source` at `now`; the limit-th within the window blocks it.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(super) async fn record_source_failure(&self, source: &Source, now: i64) -> Result<()> {
        let window = seconds(self.lockout.duration);
        let blocked = self
            .store
            .record_failure(
                &subject(source),
                self.lockout.source_max_failures,
                now,
                window,
            )
            .await?;
        if blocked {
            tracing::warn!(%source, "client blocked after repeated failures");
        }
        Ok(())
    }
}

fn subject(source: &Source) -> String {
    format!("source:{source}")
}
