//! Second factors (`auth_totp_factors`, `auth_recovery_codes`): a user's TOTP secret, only as
//! key-service ciphertext, and recovery codes, only as SHA-256 hashes. Enabling and removing
//! a factor join the tenant's audit chain in the same transaction.

use coffer_crypto::AuditKey;
use sqlx::Row as _;

use super::Store;
use super::audit::{ChainEvent, append};
use crate::Result;

/// A user's TOTP factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FactorRow {
    /// The secret, as key-service ciphertext text.
    pub(crate) secret_ciphertext: String,
    /// When a code confirmed it; `None` while enrolling.
    pub(crate) confirm_time: Option<i64>,
    /// The last step whose code was accepted.
    pub(crate) last_step: Option<i64>,
}

/// A confirmation of one enrollment.
#[derive(Debug)]
pub(crate) struct Confirmation<'a> {
    pub(crate) tenant: &'a str,
    pub(crate) principal_id: &'a str,
    /// The enrollment's secret as stored: a newer enrollment is not confirmed by a code
    /// from an older one.
    pub(crate) secret_ciphertext: &'a str,
    /// The step of the code that confirmed it.
    pub(crate) step: i64,
    /// The new recovery codes' hashes.
    pub(crate) recovery_hashes: &'a [String],
}

impl Store {
    /// The user's factor, confirmed or not.
    ///
    /// # Errors
    /// [`crate::Error::Database`].
    pub(crate) async fn factor(
        &self,
        tenant: &str,
        principal_id: &str,
    ) -> Result<Option<FactorRow>> {
        let row = sqlx::query(
            "SELECT secret_ciphertext, confirm_time, last_step FROM auth_totp_factors \
             WHERE tenant = $1 AND principal_id = $2",
        )
        .bind(tenant)
        .bind(principal_id)
        .fetch_optional(&self.db.pool)
        .await?;
        row.map(|row| {
            Ok(FactorRow {
                secret_ciphertext: row.try_get("secret_ciphertext")?,
                confirm_time: row.try_get("confirm_time")?,
                last_step: row.try_get("last_step")?,
            })
        })
        .transpose()
    }

    /// Stores a new, unconfirmed secret, replacing an earlier unconfirmed one. `false` when a
    /// confirmed factor exists (it is left as it is).
    ///
    /// # Errors
    /// [`crate::Error::Database`].
    pub(crate) async fn begin_factor(
        &self,
        tenant: &str,
        principal_id: &str,
        secret_ciphertext: &str,
        now: i64,
    ) -> Result<bool> {
        let stored = sqlx::query(
            "INSERT INTO auth_totp_factors (tenant, principal_id, secret_ciphertext, \
             confirm_time, last_step, create_time) VALUES ($1, $2, $3, NULL, NULL, $4) \
             ON CONFLICT (tenant, principal_id) DO UPDATE SET \
             secret_ciphertext = excluded.secret_ciphertext, last_step = NULL, \
             create_time = excluded.create_time WHERE auth_totp_factors.confirm_time IS NULL",
        )
        .bind(tenant)
        .bind(principal_id)
        .bind(secret_ciphertext)
        .bind(now)
        .execute(&self.db.pool)
        .await?;
        Ok(stored.rows_affected() == 1)
    }

    /// Confirms an enrollment, accepting its code's step, and replaces the user's recovery
    /// codes; audited. `false` when that enrollment is no longer pending.
    ///
    /// # Errors
    /// [`crate::Error::Database`]: nothing is changed.
    pub(crate) async fn confirm_factor(
        &self,
        confirmation: &Confirmation<'_>,
        key: &AuditKey,
        event: &ChainEvent<'_>,
        now: i64,
    ) -> Result<bool> {
        let Confirmation {
            tenant,
            principal_id,
            secret_ciphertext,
            step,
            recovery_hashes,
        } = *confirmation;
        let mut tx = self.db.pool.begin().await?;
        let confirmed = sqlx::query(
            "UPDATE auth_totp_factors SET confirm_time = $4, last_step = $5 \
             WHERE tenant = $1 AND principal_id = $2 AND secret_ciphertext = $3 \
             AND confirm_time IS NULL",
        )
        .bind(tenant)
        .bind(principal_id)
        .bind(secret_ciphertext)
        .bind(now)
        .bind(step)
        .execute(&mut *tx)
        .await?;
        if confirmed.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM auth_recovery_codes WHERE tenant = $1 AND principal_id = $2")
            .bind(tenant)
            .bind(principal_id)
            .execute(&mut *tx)
            .await?;
        for code_hash in recovery_hashes {
            sqlx::query(
                "INSERT INTO auth_recovery_codes (tenant, principal_id, code_hash, used_time) \
                 VALUES ($1, $2, $3, NULL)",
            )
            .bind(tenant)
            .bind(principal_id)
            .bind(code_hash)
            .execute(&mut *tx)
            .await?;
        }
        append(&mut tx, key, event, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Accepts `step` for a confirmed factor unless a step at or after it was accepted
    /// before: of two sign-ins with one code, on any replica, only one wins.
    ///
    /// # Errors
    /// [`crate::Error::Database`].
    pub(crate) async fn accept_step(
        &self,
        tenant: &str,
        principal_id: &str,
        step: i64,
    ) -> Result<bool> {
        let accepted = sqlx::query(
            "UPDATE auth_totp_factors SET last_step = $3 WHERE tenant = $1 \
             AND principal_id = $2 AND confirm_time IS NOT NULL \
             AND (last_step IS NULL OR last_step < $3)",
        )
        .bind(tenant)
        .bind(principal_id)
        .bind(step)
        .execute(&self.db.pool)
        .await?;
        Ok(accepted.rows_affected() == 1)
    }

    /// Spends an unused recovery code by its hash; `false` if unknown or used.
    ///
    /// # Errors
    /// [`crate::Error::Database`].
    pub(crate) async fn spend_recovery_code(
        &self,
        tenant: &str,
        principal_id: &str,
        code_hash: &str,
        now: i64,
    ) -> Result<bool> {
        let spent = sqlx::query(
            "UPDATE auth_recovery_codes SET used_time = $4 WHERE tenant = $1 \
             AND principal_id = $2 AND code_hash = $3 AND used_time IS NULL",
        )
        .bind(tenant)
        .bind(principal_id)
        .bind(code_hash)
        .bind(now)
        .execute(&self.db.pool)
        .await?;
        Ok(spent.rows_affected() == 1)
    }

    /// Recovery codes the user has not used.
    ///
    /// # Errors
    /// [`crate::Error::Database`].
    pub(crate) async fn recovery_codes_left(
        &self,
        tenant: &str,
        principal_id: &str,
    ) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM auth_recovery_codes WHERE tenant = $1 \
             AND principal_id = $2 AND used_time IS NULL",
        )
        .bind(tenant)
        .bind(principal_id)
        .fetch_one(&self.db.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Removes the user's factor and recovery codes; audited when there was one. Whether
    /// there was.
    ///
    /// # Errors
    /// [`crate::Error::Database`]: nothing is changed.
    pub(crate) async fn remove_factor(
        &self,
        tenant: &str,
        principal_id: &str,
        key: &AuditKey,
        event: &ChainEvent<'_>,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.db.pool.begin().await?;
        let removed =
            sqlx::query("DELETE FROM auth_totp_factors WHERE tenant = $1 AND principal_id = $2")
                .bind(tenant)
                .bind(principal_id)
                .execute(&mut *tx)
                .await?;
        sqlx::query("DELETE FROM auth_recovery_codes WHERE tenant = $1 AND principal_id = $2")
            .bind(tenant)
            .bind(principal_id)
            .execute(&mut *tx)
            .await?;
        let removed = removed.rows_affected() == 1;
        if removed {
            append(&mut tx, key, event, now).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }
}
