//! Failed-login and per-source failure counters (`auth_lockouts`), shared by replicas.

use sqlx::Row as _;

use super::Store;
use crate::Result;

impl Store {
    /// Until when `subject` is locked, if it is at `now`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn locked_until(&self, subject: &str, now: i64) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT locked_until FROM auth_lockouts WHERE subject = $1")
            .bind(subject)
            .fetch_optional(&self.db.pool)
            .await?;
        let until = match row {
            Some(row) => row.try_get::<Option<i64>, _>("locked_until")?,
            None => None,
        };
        Ok(until.filter(|until| *until > now))
    }

    /// Counts a failure for `subject` at `now`; failures older than `window` seconds no longer
    /// count. The `max_failures`-th within the window locks it for `window` seconds (and
    /// starts the count again). Returns whether this failure locked it.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn record_failure(
        &self,
        subject: &str,
        max_failures: u32,
        now: i64,
        window: i64,
    ) -> Result<bool> {
        let mut tx = self.db.pool.begin().await?;
        let failures: i64 = sqlx::query(
            "INSERT INTO auth_lockouts (subject, failures, window_start) VALUES ($1, 1, $2) \
             ON CONFLICT (subject) DO UPDATE SET \
             failures = CASE WHEN auth_lockouts.window_start <= $3 THEN 1 \
                        ELSE auth_lockouts.failures + 1 END, \
             window_start = CASE WHEN auth_lockouts.window_start <= $3 THEN $2 \
                            ELSE auth_lockouts.window_start END \
             RETURNING failures",
        )
        .bind(subject)
        .bind(now)
        .bind(now.saturating_sub(window))
        .fetch_one(&mut *tx)
        .await?
        .try_get("failures")?;
        let locked = failures >= i64::from(max_failures);
        if locked {
            sqlx::query(
                "UPDATE auth_lockouts SET failures = 0, locked_until = $2 WHERE subject = $1",
            )
            .bind(subject)
            .bind(now.saturating_add(window))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(locked)
    }

    /// Forgets the failures of `subject` (after a success).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn clear_failures(&self, subject: &str) -> Result<()> {
        sqlx::query("DELETE FROM auth_lockouts WHERE subject = $1")
            .bind(subject)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }
}
