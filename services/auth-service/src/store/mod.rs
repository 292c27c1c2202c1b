//! The auth-service's storage (sqlx `Any`: one code path for SQLite and PostgreSQL; see
//! `coffer_db` for the conventions).

mod api_keys;
mod audit;

use coffer_crypto::AuditKey;
use sqlx::Row as _;
use sqlx::any::AnyRow;

pub use api_keys::{ApiKeyRow, RolledSecret};
pub use audit::{ChainEvent, ChainHead, ChainRow};

use crate::{Error, Result};

/// The PostgreSQL NOTIFY channel for revocations, rolls and signing-key rotations.
pub const CHANGES_CHANNEL: &str = "coffer_auth_changes";

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations/sqlite");
static MIGRATIONS: coffer_db::Migrations = coffer_db::Migrations {
    sqlite: &SQLITE_MIGRATIONS,
    postgres: &POSTGRES_MIGRATIONS,
};
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator =
    sqlx::migrate!("src/store/migrations/postgres");

/// A tenant row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRow {
    /// Tenant id.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// Creation time, unix seconds.
    pub create_time: i64,
}

/// A principal row. `password_hash` is a bcrypt hash, never a password.
#[derive(Clone, PartialEq, Eq)]
pub struct PrincipalRow {
    /// Tenant id.
    pub tenant: String,
    /// Principal id.
    pub id: String,
    /// A user or a service account.
    pub kind: PrincipalKind,
    /// bcrypt hash of the password (users).
    pub password_hash: Option<String>,
    /// Role names, space-separated.
    pub roles: String,
    /// Explicit scopes, space-separated.
    pub scopes: String,
    /// Creation time, unix seconds.
    pub create_time: i64,
    /// Role generation: raised by every SetRoles; access tokens carry it.
    pub generation: u64,
}

impl std::fmt::Debug for PrincipalRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrincipalRow")
            .field("tenant", &self.tenant)
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// A signing key row: the private key only as key-service ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRow {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// The PKCS#8 private key encrypted by key-service (`coffer:v{N}:...` text form).
    pub encrypted_private: String,
    /// The public JWK, JSON.
    pub public_jwk: String,
    /// When it was created.
    pub create_time: i64,
    /// When a newer key replaced it for signing.
    pub retire_time: Option<i64>,
}

/// A refresh token row (the token itself is only stored as its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRow {
    /// The family: every token descended from one login.
    pub family: String,
    /// Tenant id.
    pub tenant: String,
    /// Principal id.
    pub principal_id: String,
    /// Granted scopes.
    pub scope: String,
    /// Issue time.
    pub create_time: i64,
    /// Expiry.
    pub expire_time: i64,
    /// When it was exchanged.
    pub spent_time: Option<i64>,
    /// When it (or its family) was revoked.
    pub revoke_time: Option<i64>,
}

/// What spending a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spend {
    /// It was valid and is now spent, its successor written; the principal as it is now.
    Spent(PrincipalRow),
    /// It had been spent before: its family is now revoked.
    Reused(RefreshRow),
    /// Unknown, expired or revoked.
    Invalid,
}

/// What a revocation concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationKind {
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

/// What a principal is, as stored (`user`, `service_account`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A person, who logs in with a password.
    User,
    /// A machine identity with explicit scopes.
    ServiceAccount,
}

impl PrincipalKind {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::ServiceAccount => "service_account",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [PrincipalKind::User, PrincipalKind::ServiceAccount]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// One entry of the revocation feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRow {
    /// What is revoked.
    pub kind: RevocationKind,
    /// The `jti` or key id.
    pub id: String,
    /// When.
    pub revoke_time: i64,
    /// When every token it concerns has expired.
    pub forget_time: i64,
    /// For [`RevocationKind::Principal`]: the lowest token generation still valid.
    pub generation: u64,
}

/// Makes a spent refresh token's successor: its hash and row, from the spent row and its
/// principal.
pub type Successor<'a> =
    dyn Fn(&RefreshRow, &PrincipalRow) -> Result<(String, RefreshRow)> + Sync + 'a;

/// Inserts a refresh-token row (on the pool, or in the caller's transaction).
async fn insert_refresh<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    token_hash: &str,
    row: &RefreshRow,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO auth_refresh_tokens (token_hash, family, tenant, principal_id, scope, \
         create_time, expire_time) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(token_hash)
    .bind(&row.family)
    .bind(&row.tenant)
    .bind(&row.principal_id)
    .bind(&row.scope)
    .bind(row.create_time)
    .bind(row.expire_time)
    .execute(executor)
    .await?;
    Ok(())
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

/// The auth-service's database handle. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    db: coffer_db::Database,
}

impl Store {
    /// Connects and applies pending migrations.
    ///
    /// # Errors
    /// [`Error::Open`].
    pub async fn connect(database: &coffer_db::Config) -> Result<Self> {
        Ok(Self {
            db: coffer_db::connect(database, &MIGRATIONS).await?,
        })
    }

    /// SQLite or PostgreSQL.
    pub fn backend(&self) -> coffer_db::Backend {
        self.db.backend
    }

    /// Tells every replica listening on PostgreSQL about a change (`apikey:{id}` or
    /// `signing`), so caches are evicted at once. Nothing on SQLite (one process; the change
    /// poll covers it). Best effort: the poll is the backstop, so a failed notify is logged.
    pub async fn notify_change(&self, change: &str) {
        if self.db.backend != coffer_db::Backend::Postgres {
            return;
        }
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGES_CHANNEL)
            .bind(change)
            .execute(&self.db.pool)
            .await;
        if let Err(error) = sent {
            tracing::warn!(%error, "change notification failed; replicas rely on polling");
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.db.close().await;
    }

    // === tenants ===

    /// Inserts a tenant.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`], [`Error::Database`].
    pub async fn create_tenant(&self, row: &TenantRow) -> Result<()> {
        let inserted = sqlx::query(
            "INSERT INTO auth_tenants (id, display_name, create_time) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&row.id)
        .bind(&row.display_name)
        .bind(row.create_time)
        .execute(&self.db.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(Error::AlreadyExists(format!("tenants/{}", row.id)));
        }
        Ok(())
    }

    /// A tenant, if it exists.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn tenant(&self, id: &str) -> Result<Option<TenantRow>> {
        let row =
            sqlx::query("SELECT id, display_name, create_time FROM auth_tenants WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.db.pool)
                .await?;
        row.map(|row| {
            Ok(TenantRow {
                id: row.try_get(0)?,
                display_name: row.try_get(1)?,
                create_time: row.try_get(2)?,
            })
        })
        .transpose()
    }

    // === principals ===

    /// Inserts a principal into an existing tenant.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown tenant, [`Error::AlreadyExists`], [`Error::Database`].
    pub async fn create_principal(
        &self,
        row: &PrincipalRow,
        key: &AuditKey,
        event: &ChainEvent<'_>,
    ) -> Result<()> {
        if self.tenant(&row.tenant).await?.is_none() {
            return Err(Error::NotFound(format!("tenants/{}", row.tenant)));
        }
        let mut tx = self.db.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO auth_principals (tenant, id, kind, password_hash, roles, scopes, \
             create_time) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(&row.tenant)
        .bind(&row.id)
        .bind(row.kind.as_str())
        .bind(row.password_hash.as_deref())
        .bind(&row.roles)
        .bind(&row.scopes)
        .bind(row.create_time)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(Error::AlreadyExists(format!(
                "tenants/{}/principals/{}",
                row.tenant, row.id
            )));
        }
        audit::append(&mut tx, key, event, row.create_time).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A principal, if it exists.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn principal(&self, tenant: &str, id: &str) -> Result<Option<PrincipalRow>> {
        let row = sqlx::query(concat!(
            select_principal!(),
            " WHERE tenant = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.db.pool)
        .await?;
        row.map(|row| principal_row(&row)).transpose()
    }

    /// Up to `limit` principals of `tenant` with ids after `after`, in id order.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn list_principals(
        &self,
        tenant: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<PrincipalRow>> {
        let rows = sqlx::query(concat!(
            select_principal!(),
            " WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(tenant)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(principal_row).collect()
    }

    /// Replaces a principal's roles, raises its token generation (recording it in the
    /// revocation feed for `forget_after` seconds, so its older access tokens are refused
    /// everywhere), and marks its API keys changed at `now` (so every replica's change poll
    /// evicts their cached verifications), in one transaction with its audit event; returns
    /// the updated row, or `None` if it does not exist.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn set_roles(
        &self,
        (tenant, id): (&str, &str),
        roles: &str,
        (now, forget_after): (i64, i64),
        key: &AuditKey,
        event: &ChainEvent<'_>,
    ) -> Result<Option<PrincipalRow>> {
        let mut tx = self.db.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE auth_principals SET roles = $1, generation = generation + 1 \
             WHERE tenant = $2 AND id = $3 RETURNING generation",
        )
        .bind(roles)
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(updated) = updated else {
            return Ok(None);
        };
        let generation = u64::try_from(updated.try_get::<i64, _>(0)?).unwrap_or(u64::MAX);
        insert_revocation(
            &mut *tx,
            RevocationKind::Principal,
            &format!("{tenant}/{id}"),
            now,
            now.saturating_add(forget_after),
            generation,
        )
        .await?;
        sqlx::query(
            "UPDATE auth_api_keys SET change_time = $3 WHERE tenant = $1 AND principal_id = $2",
        )
        .bind(tenant)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        audit::append(&mut tx, key, event, now).await?;
        tx.commit().await?;
        self.principal(tenant, id).await
    }

    // === signing keys ===

    /// Stores a new signing key and retires the current one: it stops signing now and leaves
    /// the JWKS at `unpublish_previous_at`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn rotate_signing_key(
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
    pub async fn published_signing_keys(&self, now: i64) -> Result<Vec<SigningKeyRow>> {
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
                    kid: row.try_get(0)?,
                    encrypted_private: row.try_get(1)?,
                    public_jwk: row.try_get(2)?,
                    create_time: row.try_get(3)?,
                    retire_time: row.try_get(4)?,
                })
            })
            .collect()
    }

    // === refresh tokens ===

    /// Stores a new refresh token by its hash.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn insert_refresh_token(&self, token_hash: &str, row: &RefreshRow) -> Result<()> {
        insert_refresh(&self.db.pool, token_hash, row).await
    }

    /// Spends a refresh token and writes its successor, in one transaction: exactly one caller
    /// can spend a valid token, never one of a revoked family, and `successor` (given the
    /// spent row and its principal as they are now) names the new token's hash and row.
    /// Presenting a spent token revokes its whole family.
    ///
    /// # Errors
    /// [`Error::Database`], or `successor`'s error (nothing is then spent).
    pub async fn spend_refresh_token(
        &self,
        token_hash: &str,
        now: i64,
        successor: &Successor<'_>,
    ) -> Result<Spend> {
        let mut tx = self.db.pool.begin().await?;
        let spent = sqlx::query(concat!(
            "UPDATE auth_refresh_tokens SET spent_time = $2 WHERE token_hash = $1 ",
            "AND spent_time IS NULL AND revoke_time IS NULL AND expire_time > $2 ",
            "AND NOT EXISTS (SELECT 1 FROM auth_refresh_families f ",
            "WHERE f.family = auth_refresh_tokens.family) ",
            "RETURNING ",
            refresh_columns!()
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = spent {
            let row = refresh_row(&row)?;
            let principal = sqlx::query(concat!(
                select_principal!(),
                " WHERE tenant = $1 AND id = $2"
            ))
            .bind(&row.tenant)
            .bind(&row.principal_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(principal) = principal.as_ref().map(principal_row).transpose()? else {
                // The principal is gone: the token is spent for nothing (committed).
                tx.commit().await?;
                return Ok(Spend::Invalid);
            };
            let (hash, next) = successor(&row, &principal)?;
            insert_refresh(&mut *tx, &hash, &next).await?;
            tx.commit().await?;
            return Ok(Spend::Spent(principal));
        }
        tx.rollback().await?;
        let Some(existing) = self.refresh_token(token_hash).await? else {
            return Ok(Spend::Invalid);
        };
        if existing.spent_time.is_some() {
            self.revoke_refresh_family(&existing.family, now).await?;
            return Ok(Spend::Reused(existing));
        }
        Ok(Spend::Invalid)
    }

    /// A refresh token's row, if stored.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            refresh_columns!(),
            " FROM auth_refresh_tokens WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.db.pool)
        .await?;
        row.as_ref().map(refresh_row).transpose()
    }

    /// Revokes every refresh token of a family.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn revoke_refresh_family(&self, family: &str, now: i64) -> Result<()> {
        let mut tx = self.db.pool.begin().await?;
        sqlx::query(
            "INSERT INTO auth_refresh_families (family, revoke_time) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(family)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE auth_refresh_tokens SET revoke_time = $2 WHERE family = $1 AND revoke_time IS NULL",
        )
        .bind(family)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether a refresh-token family was revoked (reuse detected, or RFC 7009 revocation).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn is_refresh_family_revoked(&self, family: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM auth_refresh_families WHERE family = $1")
            .bind(family)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.is_some())
    }

    // === the revocation feed ===

    /// Records an access token's `jti` as revoked until `forget_time` (its expiry plus the
    /// verifiers' leeway).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn revoke_access_token(&self, jti: &str, forget_time: i64, now: i64) -> Result<()> {
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
    pub async fn is_token_revoked(
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
    pub async fn revocations_since(
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
                let kind: String = row.try_get(0)?;
                Ok(RevocationRow {
                    kind: RevocationKind::parse(&kind).ok_or(Error::Corrupt("revocation kind"))?,
                    id: row.try_get(1)?,
                    revoke_time: row.try_get(2)?,
                    forget_time: row.try_get(3)?,
                    generation: u64::try_from(row.try_get::<i64, _>(4)?).unwrap_or(0),
                })
            })
            .collect()
    }

    /// Drops revocations nobody needs any more (every token they concern has expired).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn forget_revocations(&self, now: i64) -> Result<()> {
        sqlx::query("DELETE FROM auth_revocations WHERE forget_time <= $1")
            .bind(now)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    // === lockouts ===

    /// Until when `subject` is locked, if it is at `now`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn locked_until(&self, subject: &str, now: i64) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT locked_until FROM auth_lockouts WHERE subject = $1")
            .bind(subject)
            .fetch_optional(&self.db.pool)
            .await?;
        let until = match row {
            Some(row) => row.try_get::<Option<i64>, _>(0)?,
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
    pub async fn record_failure(
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
        .try_get(0)?;
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
    pub async fn clear_failures(&self, subject: &str) -> Result<()> {
        sqlx::query("DELETE FROM auth_lockouts WHERE subject = $1")
            .bind(subject)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }
}

/// The principal columns [`principal_row`] reads (by name).
macro_rules! select_principal {
    () => {
        "SELECT tenant, id, kind, password_hash, roles, scopes, create_time, generation \
         FROM auth_principals"
    };
}
use select_principal;

/// The refresh-token columns in [`refresh_row`] order.
macro_rules! refresh_columns {
    () => {
        "family, tenant, principal_id, scope, create_time, expire_time, spent_time, revoke_time"
    };
}
use refresh_columns;

fn principal_row(row: &AnyRow) -> Result<PrincipalRow> {
    Ok(PrincipalRow {
        tenant: row.try_get("tenant")?,
        id: row.try_get("id")?,
        kind: PrincipalKind::parse(&row.try_get::<String, _>("kind")?)
            .ok_or(Error::Corrupt("principal kind"))?,
        password_hash: row.try_get("password_hash")?,
        roles: row.try_get("roles")?,
        scopes: row.try_get("scopes")?,
        create_time: row.try_get("create_time")?,
        generation: u64::try_from(row.try_get::<i64, _>("generation")?)
            .map_err(|_| Error::Corrupt("principal generation"))?,
    })
}

fn refresh_row(row: &AnyRow) -> Result<RefreshRow> {
    Ok(RefreshRow {
        family: row.try_get(0)?,
        tenant: row.try_get(1)?,
        principal_id: row.try_get(2)?,
        scope: row.try_get(3)?,
        create_time: row.try_get(4)?,
        expire_time: row.try_get(5)?,
        spent_time: row.try_get(6)?,
        revoke_time: row.try_get(7)?,
    })
}
