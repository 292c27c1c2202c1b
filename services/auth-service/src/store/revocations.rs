//! The revocation feed (`auth_revocations`): access tokens, API keys and role changes every verifier must refuse.

use sqlx::Row as _;

use super::Store;
use crate::{Error, Result};

/// What a revocation concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RevocationKind {
    /// An access token, by `jti`.
    AccessToken,
    /// An API key, by id (and every token exchanged for it).
    ApiKey,
    /// A principal (`{tenant}/{id}`): its tokens below a generation.
    Principal,
}

impl RevocationKind {
    fn as_str(self) -> &'static str {
        match self {
            RevocationKind::AccessToken => "access_token",
            RevocationKind::ApiKey => "api_key",
            RevocationKind::Principal => "principal",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            RevocationKind::AccessToken,
            RevocationKind::ApiKey,
            RevocationKind::Principal,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

/// One entry of the revocation feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RevocationRow {
    /// What is revoked.
    pub(crate) kind: RevocationKind,
    /// The `jti` or key id.
    pub(crate) id: String,
    /// When.
    pub(crate) revoke_time: i64,
    /// When every token it concerns has expired.
    pub(crate) forget_time: i64,
    /// For [`RevocationKind::Principal`]: the lowest token generation still valid.
    pub(crate) generation: u64,
}

/// Records a revocation in the feed (on the pool, or in the caller's transaction);
/// idempotent.
pub(crate) async fn insert_revocation<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    kind: RevocationKind,
    id: &str,
    now: i64,
    forget_time: i64,
    generation: u64,
) -> Result<()> {
    // A later revocation of the same thing moves it forward (a new generation, a later
    // forget time), so verifiers fetching since then see it again.
    sqlx::query(
        "INSERT INTO auth_revocations (kind, id, revoke_time, forget_time, generation) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, id) DO UPDATE SET \
         revoke_time = $3, forget_time = $4, generation = $5",
    )
    .bind(kind.as_str())
    .bind(id)
    .bind(now)
    .bind(forget_time)
    .bind(i64::try_from(generation).unwrap_or(i64::MAX))
    .execute(executor)
    .await?;
    Ok(())
}

impl Store {
    /// Records an access token's `jti` as revoked until `forget_time` (its expiry plus the
    /// verifiers' leeway).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn revoke_access_token(
        &self,
        jti: &str,
        forget_time: i64,
        now: i64,
    ) -> Result<()> {
        insert_revocation(
            &self.db.pool,
            RevocationKind::AccessToken,
            jti,
            now,
            forget_time,
            0,
        )
        .await
    }

    /// Whether the feed revokes an access token: by its `jti`, by the API key it was
    /// exchanged for (`akid`), or by a role generation of `principal` (`{tenant}/{id}`)
    /// above the token's `pgen`. One indexed query.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn is_token_revoked(
        &self,
        jti: &str,
        akid: Option<&str>,
        principal: &str,
        pgen: u64,
    ) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM auth_revocations WHERE (kind = 'access_token' AND id = $1) \
             OR (kind = 'api_key' AND id = $2) \
             OR (kind = 'principal' AND id = $3 AND generation > $4) LIMIT 1",
        )
        .bind(jti)
        // No key id is empty: a token not exchanged for a key matches no API-key entry.
        .bind(akid.unwrap_or_default())
        .bind(principal)
        .bind(i64::try_from(pgen).unwrap_or(i64::MAX))
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Up to `limit` revocations recorded at or after `since` that are not yet forgettable
    /// at `now`, oldest first.
    ///
    /// # Errors
    /// [`Error::Database`], [`Error::Corrupt`].
    pub(crate) async fn revocations_since(
        &self,
        since: i64,
        now: i64,
        limit: u32,
    ) -> Result<Vec<RevocationRow>> {
        let rows = sqlx::query(
            "SELECT kind, id, revoke_time, forget_time, generation FROM auth_revocations \
             WHERE revoke_time >= $1 AND forget_time > $2 ORDER BY revoke_time, kind, id LIMIT $3",
        )
        .bind(since)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("kind")?;
                Ok(RevocationRow {
                    kind: RevocationKind::parse(&kind).ok_or(Error::Corrupt("revocation kind"))?,
                    id: row.try_get("id")?,
                    revoke_time: row.try_get("revoke_time")?,
                    forget_time: row.try_get("forget_time")?,
                    generation: u64::try_from(row.try_get::<i64, _>("generation")?).unwrap_or(0),
                })
            })
            .collect()
    }

    /// Drops revocations nobody needs any more (every token they concern has expired).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn forget_revocations(&self, now: i64) -> Result<()> {
        sqlx::query("DELETE FROM auth_revocations WHERE forget_time <= $1")
            .bind(now)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }
}
