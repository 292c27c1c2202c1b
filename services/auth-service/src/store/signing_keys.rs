//! Signing keys (`auth_signing_keys`), stored encrypted by key-service.

use coffer_crypto::AuditKey;
use sqlx::Row as _;

use super::{ChainEvent, Store, audit};
use crate::Result;

/// A signing key row: the private key only as key-service ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SigningKeyRow {
    /// RFC 7638 thumbprint.
    pub(crate) kid: String,
    /// The PKCS#8 private key encrypted by key-service (`coffer:v{N}:...` text form).
    pub(crate) encrypted_private: String,
    /// The public JWK, JSON.
    pub(crate) public_jwk: String,
    /// When it was created.
    pub(crate) create_time: i64,
    /// When a newer key replaced it for signing.
    pub(crate) retire_time: Option<i64>,
}

impl Store {
    /// Stores a new signing key and retires the current one: it stops signing now and leaves
    /// the JWKS at `unpublish_previous_at`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn rotate_signing_key(
        &self,
        new: &SigningKeyRow,
        unpublish_previous_at: i64,
        key: &AuditKey,
        event: &ChainEvent<'_>,
    ) -> Result<()> {
        let mut tx = self.db.pool.begin().await?;
        sqlx::query(
            "UPDATE auth_signing_keys SET retire_time = $1, unpublish_time = $2 \
             WHERE retire_time IS NULL",
        )
        .bind(new.create_time)
        .bind(unpublish_previous_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO auth_signing_keys (kid, encrypted_private, public_jwk, create_time) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&new.kid)
        .bind(&new.encrypted_private)
        .bind(&new.public_jwk)
        .bind(new.create_time)
        .execute(&mut *tx)
        .await?;
        audit::append(&mut tx, key, event, new.create_time).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The keys still in the JWKS at `now`, newest first; the first unretired one signs.
    /// Deletes keys that left the JWKS (their tokens have all expired).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn published_signing_keys(&self, now: i64) -> Result<Vec<SigningKeyRow>> {
        sqlx::query("DELETE FROM auth_signing_keys WHERE unpublish_time IS NOT NULL AND unpublish_time <= $1")
            .bind(now)
            .execute(&self.db.pool)
            .await?;
        let rows = sqlx::query(
            "SELECT kid, encrypted_private, public_jwk, create_time, retire_time \
             FROM auth_signing_keys \
             ORDER BY CASE WHEN retire_time IS NULL THEN 0 ELSE 1 END, create_time DESC, kid",
        )
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SigningKeyRow {
                    kid: row.try_get("kid")?,
                    encrypted_private: row.try_get("encrypted_private")?,
                    public_jwk: row.try_get("public_jwk")?,
                    create_time: row.try_get("create_time")?,
                    retire_time: row.try_get("retire_time")?,
                })
            })
            .collect()
    }
}
