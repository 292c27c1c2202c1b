//! The OAuth authorization server's tables: clients, pending requests, sign-in sessions,
//! consents and codes (`auth_oauth_*`). Handles, sessions, codes and secrets are stored as
//! SHA-256 hashes only.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::Store;
use crate::{Error, Result};

/// Who registered a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientOrigin {
    /// Dynamic client registration (RFC 7591): anyone.
    Registered,
    /// An operator.
    Preregistered,
    /// A client ID metadata document (fetched, never stored).
    Document,
}

impl ClientOrigin {
    fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Preregistered => "preregistered",
            Self::Document => "document",
        }
    }
}

/// A stored client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientRow {
    pub(crate) client_id: String,
    pub(crate) origin: ClientOrigin,
    pub(crate) client_name: String,
    pub(crate) redirect_uris: Vec<String>,
    /// Space-separated.
    pub(crate) grant_types: String,
    /// `none`, `client_secret_basic` or `client_secret_post`.
    pub(crate) auth_method: String,
    /// Hex SHA-256 of the secret, for confidential clients.
    pub(crate) secret_hash: Option<String>,
    /// `private_key_jwt`: the client's public keys, a JWK Set in JSON.
    pub(crate) jwks: Option<String>,
    /// `web` or `native`.
    pub(crate) application_type: String,
    /// A resource server's client: the resource whose tokens it may introspect.
    pub(crate) resource: Option<String>,
    /// Client credentials: the service account's tenant and id.
    pub(crate) tenant: Option<String>,
    pub(crate) principal_id: Option<String>,
    /// Client credentials: the scopes it may be granted.
    pub(crate) scope: String,
    pub(crate) create_time: i64,
}

/// An authorization request waiting for its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestRow {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) state: String,
    pub(crate) code_challenge: String,
    pub(crate) resource: String,
    /// Requested Coffer scopes, space-separated.
    pub(crate) scope: String,
    pub(crate) offline: bool,
    /// The session that signed in for it, if one did.
    pub(crate) session_hash: Option<String>,
    pub(crate) expire_time: i64,
    /// The user (`tenant`, `id`) whose password was right, while their second factor is
    /// awaited.
    pub(crate) factor: Option<(String, String)>,
}

/// A live sign-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionRow {
    pub(crate) tenant: String,
    pub(crate) principal_id: String,
    pub(crate) expire_time: i64,
}

/// A remembered consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConsentRow {
    pub(crate) tenant: String,
    pub(crate) principal_id: String,
    pub(crate) client_id: String,
    pub(crate) resource: String,
    pub(crate) scope: String,
    pub(crate) offline: bool,
    pub(crate) create_time: i64,
}

/// An authorization code's grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CodeRow {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) code_challenge: String,
    pub(crate) resource: String,
    /// Granted Coffer scopes, space-separated.
    pub(crate) scope: String,
    pub(crate) offline: bool,
    pub(crate) tenant: String,
    pub(crate) principal_id: String,
    pub(crate) expire_time: i64,
}

/// What a code's first exchange issued, kept to undo it if the code comes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Issued {
    /// The refresh-token family, if a refresh token was issued.
    pub(crate) family: Option<String>,
    /// The access token's id and expiry.
    pub(crate) jti: String,
    pub(crate) jti_expire_time: i64,
}

/// What spending a code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CodeSpend {
    /// Unspent and unexpired until now: spent.
    Spent(CodeRow),
    /// Spent before: what its first exchange issued (if it got that far).
    Reused(Option<Issued>),
    /// Unknown or expired.
    Invalid,
}

/// The client columns [`client_row`] reads.
macro_rules! client_columns {
    () => {
        "client_id, origin, client_name, redirect_uris, grant_types, auth_method, secret_hash, \
         jwks, application_type, resource, tenant, principal_id, scope, create_time"
    };
}

fn client_row(row: &AnyRow) -> Result<ClientRow> {
    let origin = match row.try_get::<String, _>("origin")?.as_str() {
        "registered" => ClientOrigin::Registered,
        "preregistered" => ClientOrigin::Preregistered,
        _ => return Err(Error::Corrupt("unknown client origin")),
    };
    let uris: String = row.try_get("redirect_uris")?;
    Ok(ClientRow {
        client_id: row.try_get("client_id")?,
        origin,
        client_name: row.try_get("client_name")?,
        redirect_uris: serde_json::from_str(&uris)
            .map_err(|_| Error::Corrupt("redirect URIs are not a JSON list"))?,
        grant_types: row.try_get("grant_types")?,
        auth_method: row.try_get("auth_method")?,
        secret_hash: row.try_get("secret_hash")?,
        jwks: row.try_get("jwks")?,
        application_type: row.try_get("application_type")?,
        resource: row.try_get("resource")?,
        tenant: row.try_get("tenant")?,
        principal_id: row.try_get("principal_id")?,
        scope: row.try_get("scope")?,
        create_time: row.try_get("create_time")?,
    })
}

/// The code columns [`code_row`] reads.
macro_rules! code_columns {
    () => {
        "client_id, redirect_uri, code_challenge, resource, scope, offline, tenant, \
         principal_id, expire_time"
    };
}

fn code_row(row: &AnyRow) -> Result<CodeRow> {
    Ok(CodeRow {
        client_id: row.try_get("client_id")?,
        redirect_uri: row.try_get("redirect_uri")?,
        code_challenge: row.try_get("code_challenge")?,
        resource: row.try_get("resource")?,
        scope: row.try_get("scope")?,
        offline: row.try_get::<i64, _>("offline")? != 0,
        tenant: row.try_get("tenant")?,
        principal_id: row.try_get("principal_id")?,
        expire_time: row.try_get("expire_time")?,
    })
}

fn consent_row(row: &AnyRow) -> Result<ConsentRow> {
    Ok(ConsentRow {
        tenant: row.try_get("tenant")?,
        principal_id: row.try_get("principal_id")?,
        client_id: row.try_get("client_id")?,
        resource: row.try_get("resource")?,
        scope: row.try_get("scope")?,
        offline: row.try_get::<i64, _>("offline")? != 0,
        create_time: row.try_get("create_time")?,
    })
}

impl Store {
    /// Stores a new client.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn insert_client(&self, client: &ClientRow) -> Result<()> {
        let uris = serde_json::to_string(&client.redirect_uris)
            .map_err(|_| Error::Corrupt("redirect URIs"))?;
        sqlx::query(
            "INSERT INTO auth_oauth_clients (client_id, origin, client_name, redirect_uris, \
             grant_types, auth_method, secret_hash, jwks, application_type, resource, tenant, \
             principal_id, scope, create_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&client.client_id)
        .bind(client.origin.as_str())
        .bind(&client.client_name)
        .bind(uris)
        .bind(&client.grant_types)
        .bind(&client.auth_method)
        .bind(&client.secret_hash)
        .bind(&client.jwks)
        .bind(&client.application_type)
        .bind(&client.resource)
        .bind(&client.tenant)
        .bind(&client.principal_id)
        .bind(&client.scope)
        .bind(client.create_time)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// A client by id.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn client(&self, client_id: &str) -> Result<Option<ClientRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM auth_oauth_clients WHERE client_id = $1"
        ))
        .bind(client_id)
        .fetch_optional(&self.db.pool)
        .await?;
        row.as_ref().map(client_row).transpose()
    }

    /// Stores a pending authorization request by its handle's hash.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn insert_request(
        &self,
        handle_hash: &str,
        request: &RequestRow,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO auth_oauth_requests (handle_hash, client_id, redirect_uri, state, \
             code_challenge, resource, scope, offline, session_hash, expire_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(handle_hash)
        .bind(&request.client_id)
        .bind(&request.redirect_uri)
        .bind(&request.state)
        .bind(&request.code_challenge)
        .bind(&request.resource)
        .bind(&request.scope)
        .bind(i64::from(request.offline))
        .bind(&request.session_hash)
        .bind(request.expire_time)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// A pending request, if it exists and has not expired at `now`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn request(&self, handle_hash: &str, now: i64) -> Result<Option<RequestRow>> {
        let row = sqlx::query(
            "SELECT client_id, redirect_uri, state, code_challenge, resource, scope, offline, \
             session_hash, expire_time, factor_tenant, factor_principal_id \
             FROM auth_oauth_requests WHERE handle_hash = $1 AND expire_time > $2",
        )
        .bind(handle_hash)
        .bind(now)
        .fetch_optional(&self.db.pool)
        .await?;
        row.map(|row| {
            Ok(RequestRow {
                client_id: row.try_get("client_id")?,
                redirect_uri: row.try_get("redirect_uri")?,
                state: row.try_get("state")?,
                code_challenge: row.try_get("code_challenge")?,
                resource: row.try_get("resource")?,
                scope: row.try_get("scope")?,
                offline: row.try_get::<i64, _>("offline")? != 0,
                session_hash: row.try_get("session_hash")?,
                expire_time: row.try_get("expire_time")?,
                factor: match (
                    row.try_get::<Option<String>, _>("factor_tenant")?,
                    row.try_get::<Option<String>, _>("factor_principal_id")?,
                ) {
                    (Some(tenant), Some(id)) => Some((tenant, id)),
                    _ => None,
                },
            })
        })
        .transpose()
    }

    /// Records that a pending request's user gave the right password and is asked for their
    /// second factor. The count of wrong codes stays: signing in again does not reset it.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn await_factor(
        &self,
        handle_hash: &str,
        tenant: &str,
        principal_id: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE auth_oauth_requests SET factor_tenant = $2, factor_principal_id = $3 \
             WHERE handle_hash = $1",
        )
        .bind(handle_hash)
        .bind(tenant)
        .bind(principal_id)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Takes one of a pending request's `max` second-factor attempts, before the code is
    /// checked, so that concurrent guesses cannot check more than `max` codes: its number
    /// (from 1), or `None` when none is left (the request is then deleted).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn take_factor_attempt(
        &self,
        handle_hash: &str,
        max: i64,
    ) -> Result<Option<i64>> {
        let taken = sqlx::query(
            "UPDATE auth_oauth_requests SET factor_failures = factor_failures + 1 \
             WHERE handle_hash = $1 AND factor_failures < $2 RETURNING factor_failures",
        )
        .bind(handle_hash)
        .bind(max)
        .fetch_optional(&self.db.pool)
        .await?;
        let attempt = taken.map(|row| row.try_get(0)).transpose()?;
        if attempt.is_none() {
            self.take_request(handle_hash).await?;
        }
        Ok(attempt)
    }

    /// Binds a pending request to the session that signed in for it.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn bind_request(&self, handle_hash: &str, session_hash: &str) -> Result<()> {
        sqlx::query("UPDATE auth_oauth_requests SET session_hash = $2 WHERE handle_hash = $1")
            .bind(handle_hash)
            .bind(session_hash)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Removes a pending request (decided), returning whether it was there: of two
    /// concurrent decisions only one wins.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn take_request(&self, handle_hash: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM auth_oauth_requests WHERE handle_hash = $1")
            .bind(handle_hash)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores a sign-in session by its hash.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn insert_session(
        &self,
        session_hash: &str,
        session: &SessionRow,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO auth_oauth_sessions (session_hash, tenant, principal_id, create_time, \
             expire_time) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(session_hash)
        .bind(&session.tenant)
        .bind(&session.principal_id)
        .bind(now)
        .bind(session.expire_time)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// A live session.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn session(&self, session_hash: &str, now: i64) -> Result<Option<SessionRow>> {
        let row = sqlx::query(
            "SELECT tenant, principal_id, expire_time FROM auth_oauth_sessions \
             WHERE session_hash = $1 AND expire_time > $2",
        )
        .bind(session_hash)
        .bind(now)
        .fetch_optional(&self.db.pool)
        .await?;
        row.map(|row| {
            Ok(SessionRow {
                tenant: row.try_get("tenant")?,
                principal_id: row.try_get("principal_id")?,
                expire_time: row.try_get("expire_time")?,
            })
        })
        .transpose()
    }

    /// Remembers (or replaces) a consent.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn upsert_consent(&self, consent: &ConsentRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO auth_oauth_consents (tenant, principal_id, client_id, resource, scope, \
             offline, create_time) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant, principal_id, client_id, resource) DO UPDATE SET \
             scope = excluded.scope, offline = excluded.offline, \
             create_time = excluded.create_time",
        )
        .bind(&consent.tenant)
        .bind(&consent.principal_id)
        .bind(&consent.client_id)
        .bind(&consent.resource)
        .bind(&consent.scope)
        .bind(i64::from(consent.offline))
        .bind(consent.create_time)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// A remembered consent of a user for a client and resource.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn consent(
        &self,
        tenant: &str,
        principal_id: &str,
        client_id: &str,
        resource: &str,
    ) -> Result<Option<ConsentRow>> {
        let row = sqlx::query(
            "SELECT tenant, principal_id, client_id, resource, scope, offline, create_time \
             FROM auth_oauth_consents WHERE tenant = $1 AND principal_id = $2 \
             AND client_id = $3 AND resource = $4",
        )
        .bind(tenant)
        .bind(principal_id)
        .bind(client_id)
        .bind(resource)
        .fetch_optional(&self.db.pool)
        .await?;
        row.as_ref().map(consent_row).transpose()
    }

    /// A user's remembered consents, oldest first (at most 1000).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn consents(
        &self,
        tenant: &str,
        principal_id: &str,
    ) -> Result<Vec<ConsentRow>> {
        let rows = sqlx::query(
            "SELECT tenant, principal_id, client_id, resource, scope, offline, create_time \
             FROM auth_oauth_consents WHERE tenant = $1 AND principal_id = $2 \
             ORDER BY create_time, client_id, resource LIMIT 1000",
        )
        .bind(tenant)
        .bind(principal_id)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(consent_row).collect()
    }

    /// Withdraws a consent and revokes every refresh-token family issued under it, in one
    /// transaction.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn revoke_consent(&self, consent: &ConsentRow, now: i64) -> Result<()> {
        let mut tx = self.db.pool.begin().await?;
        sqlx::query(
            "DELETE FROM auth_oauth_consents WHERE tenant = $1 AND principal_id = $2 \
             AND client_id = $3 AND resource = $4",
        )
        .bind(&consent.tenant)
        .bind(&consent.principal_id)
        .bind(&consent.client_id)
        .bind(&consent.resource)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO auth_refresh_families (family, revoke_time) \
             SELECT DISTINCT family, $5 FROM auth_refresh_tokens WHERE tenant = $1 \
             AND principal_id = $2 AND client_id = $3 AND audience = $4 \
             ON CONFLICT DO NOTHING",
        )
        .bind(&consent.tenant)
        .bind(&consent.principal_id)
        .bind(&consent.client_id)
        .bind(&consent.resource)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE auth_refresh_tokens SET revoke_time = $5 WHERE tenant = $1 \
             AND principal_id = $2 AND client_id = $3 AND audience = $4 AND revoke_time IS NULL",
        )
        .bind(&consent.tenant)
        .bind(&consent.principal_id)
        .bind(&consent.client_id)
        .bind(&consent.resource)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a new code by its hash.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn insert_code(&self, code_hash: &str, code: &CodeRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO auth_oauth_codes (code_hash, client_id, redirect_uri, code_challenge, \
             resource, scope, offline, tenant, principal_id, expire_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(code_hash)
        .bind(&code.client_id)
        .bind(&code.redirect_uri)
        .bind(&code.code_challenge)
        .bind(&code.resource)
        .bind(&code.scope)
        .bind(i64::from(code.offline))
        .bind(&code.tenant)
        .bind(&code.principal_id)
        .bind(code.expire_time)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Spends a code: exactly one caller gets [`CodeSpend::Spent`] for an unexpired code;
    /// later ones get [`CodeSpend::Reused`] with what the first recorded.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn spend_code(&self, code_hash: &str, now: i64) -> Result<CodeSpend> {
        let spent = sqlx::query(concat!(
            "UPDATE auth_oauth_codes SET spent_time = $2 WHERE code_hash = $1 ",
            "AND spent_time IS NULL AND expire_time > $2 RETURNING ",
            code_columns!()
        ))
        .bind(code_hash)
        .bind(now)
        .fetch_optional(&self.db.pool)
        .await?;
        if let Some(row) = spent {
            return Ok(CodeSpend::Spent(code_row(&row)?));
        }
        let row = sqlx::query(
            "SELECT spent_time, family, jti, jti_expire_time FROM auth_oauth_codes \
             WHERE code_hash = $1",
        )
        .bind(code_hash)
        .fetch_optional(&self.db.pool)
        .await?;
        let Some(row) = row else {
            return Ok(CodeSpend::Invalid);
        };
        if row.try_get::<Option<i64>, _>("spent_time")?.is_none() {
            return Ok(CodeSpend::Invalid);
        }
        let jti: Option<String> = row.try_get("jti")?;
        let issued = match jti {
            Some(jti) => Some(Issued {
                family: row.try_get("family")?,
                jti,
                jti_expire_time: row
                    .try_get::<Option<i64>, _>("jti_expire_time")?
                    .unwrap_or(0),
            }),
            None => None,
        };
        Ok(CodeSpend::Reused(issued))
    }

    /// Records what a spent code's exchange issued.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn record_code_issue(&self, code_hash: &str, issued: &Issued) -> Result<()> {
        sqlx::query(
            "UPDATE auth_oauth_codes SET family = $2, jti = $3, jti_expire_time = $4 \
             WHERE code_hash = $1",
        )
        .bind(code_hash)
        .bind(&issued.family)
        .bind(&issued.jti)
        .bind(issued.jti_expire_time)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Records a client assertion's id until it expires; `false` if it was seen before (a
    /// replay).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn first_use_of_assertion(
        &self,
        jti_hash: &str,
        expire_time: i64,
    ) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO auth_oauth_assertions (jti_hash, expire_time) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(jti_hash)
        .bind(expire_time)
        .execute(&self.db.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Deletes expired requests and sessions, and codes expired for longer than a day (a
    /// spent code is kept that long so that its reuse is still recognised).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn forget_expired_oauth(&self, now: i64) -> Result<()> {
        for statement in [
            "DELETE FROM auth_oauth_requests WHERE expire_time <= $1",
            "DELETE FROM auth_oauth_sessions WHERE expire_time <= $1",
            "DELETE FROM auth_oauth_assertions WHERE expire_time <= $1",
        ] {
            sqlx::query(statement)
                .bind(now)
                .execute(&self.db.pool)
                .await?;
        }
        sqlx::query("DELETE FROM auth_oauth_codes WHERE expire_time <= $1")
            .bind(now.saturating_sub(24 * 3600))
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }
}
