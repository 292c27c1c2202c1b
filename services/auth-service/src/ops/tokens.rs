//! Login, refresh, revocation and introspection.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coffer_authn::jwt::{Claims, Verified};
use coffer_authn::{Role, Scopes};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};

use super::directory::{effective_scopes, stored_roles};
use super::{Auth, random_id, seconds};
use crate::source::Source;
use crate::store::{ChainEvent, PrincipalKind, PrincipalRow, RefreshRow, Spend};
use crate::{Error, Result};

/// Prefix of refresh tokens, so secret scanners can recognise them.
pub(crate) const REFRESH_PREFIX: &str = "mcp_rt_";
/// Refresh token length: the prefix and 32 random bytes in base64url.
const REFRESH_LEN: usize = REFRESH_PREFIX.len() + 43;

/// The lockout subject of a user's logins.
fn login_subject(tenant: &str, username: &str) -> String {
    format!("login:{tenant}/{username}")
}

/// A freshly issued token pair.
pub(crate) struct Tokens {
    /// The signed access token.
    pub(crate) access_token: String,
    /// Seconds until it expires.
    pub(crate) expires_in: u64,
    /// The opaque refresh token.
    pub(crate) refresh_token: SecretString,
    /// Seconds until it expires.
    pub(crate) refresh_expires_in: u64,
    /// Granted scopes, space-separated.
    pub(crate) scope: String,
}

/// What introspection found about an active token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Introspection {
    /// A valid access token.
    Access(Claims),
    /// A valid refresh token.
    Refresh(RefreshRow),
}

/// A right password.
#[derive(Debug)]
pub(crate) enum PasswordChecked {
    /// Signed in: the user, whose failed-login count is cleared.
    Done(PrincipalRow),
    /// The user has a second factor: not signed in until it is checked
    /// ([`Auth::check_login_factor`]); the failed-login count stands until then.
    FactorNeeded(PrincipalRow),
}

impl Auth {
    /// Exchanges a user's password (and second factor, once they have one) for tokens.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for every kind of wrong credential;
    /// [`Error::SecondFactorRequired`] for a right password without the second factor it
    /// needs; [`Error::ResourceExhausted`] while the login is locked or hashing is saturated.
    pub(crate) async fn login(
        &self,
        tenant: &str,
        username: &str,
        password: SecretString,
        second_factor: &SecretString,
        source: &Source,
    ) -> Result<Tokens> {
        let principal = match self
            .check_password(tenant, username, password, source)
            .await?
        {
            PasswordChecked::Done(principal) => principal,
            PasswordChecked::FactorNeeded(_) if second_factor.expose_secret().is_empty() => {
                return Err(Error::SecondFactorRequired);
            }
            PasswordChecked::FactorNeeded(principal) => {
                self.check_login_factor(&principal, second_factor, source)
                    .await?;
                principal
            }
        };
        self.issue(&principal, None).await
    }

    /// Checks a user's password, with the lockouts.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for every kind of wrong credential;
    /// [`Error::ResourceExhausted`] while the login is locked or hashing is saturated.
    pub(crate) async fn check_password(
        &self,
        tenant: &str,
        username: &str,
        password: SecretString,
        source: &Source,
    ) -> Result<PasswordChecked> {
        let checked = self.now();
        self.check_source(source, checked).await?;
        self.check_login_lock(tenant, username, checked).await?;
        let principal = self
            .store
            .principal(tenant, username)
            .await?
            .filter(|row| row.kind == PrincipalKind::User && row.password_hash.is_some());
        let hash = principal
            .as_ref()
            .and_then(|row| row.password_hash.as_deref());
        // An unknown user costs the same bcrypt work as a wrong password.
        let valid = self.passwords.verify(password, hash, source).await?;
        match (valid, principal) {
            (true, Some(principal)) => {
                if self.has_second_factor(tenant, &principal.id).await? {
                    return Ok(PasswordChecked::FactorNeeded(principal));
                }
                self.store
                    .clear_failures(&login_subject(tenant, username))
                    .await?;
                Ok(PasswordChecked::Done(principal))
            }
            _ => {
                self.record_login_failure(tenant, username, source, checked)
                    .await?;
                Err(Error::unauthenticated("wrong username or password"))
            }
        }
    }

    /// Checks the second factor of a user whose password was right: a wrong one counts as a
    /// failed login (toward the account's and the source's lockouts); a right one clears the
    /// count.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for a wrong or replayed code;
    /// [`Error::ResourceExhausted`] while the login is locked; [`Error::KeyService`] (fail
    /// closed).
    pub(crate) async fn check_login_factor(
        &self,
        principal: &PrincipalRow,
        code: &SecretString,
        source: &Source,
    ) -> Result<()> {
        let (tenant, username) = (principal.tenant.as_str(), principal.id.as_str());
        let checked = self.now();
        self.check_login_lock(tenant, username, checked).await?;
        if self.check_second_factor(tenant, username, code).await? {
            self.store
                .clear_failures(&login_subject(tenant, username))
                .await?;
            return Ok(());
        }
        self.record_login_failure(tenant, username, source, checked)
            .await?;
        Err(Error::unauthenticated("wrong second factor"))
    }

    async fn check_login_lock(&self, tenant: &str, username: &str, now: i64) -> Result<()> {
        let subject = login_subject(tenant, username);
        if self.store.locked_until(&subject, now).await?.is_some() {
            return Err(Error::ResourceExhausted(
                "too many failed logins; try again later",
            ));
        }
        Ok(())
    }

    async fn record_login_failure(
        &self,
        tenant: &str,
        username: &str,
        source: &Source,
        now: i64,
    ) -> Result<()> {
        self.record_source_failure(source, now).await?;
        let window = seconds(self.lockout.duration);
        if self
            .store
            .record_failure(
                &login_subject(tenant, username),
                self.lockout.max_failures,
                now,
                window,
            )
            .await?
        {
            tracing::warn!(tenant, "login locked after repeated failures");
        }
        Ok(())
    }

    /// Spends a refresh token for a new pair. A spent token presented again revokes its
    /// family and writes an audit event.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for anything but a valid, unspent token.
    pub(crate) async fn refresh(&self, refresh_token: &SecretString) -> Result<Tokens> {
        let hash = refresh_hash(refresh_token)?;
        let (successor, successor_hash) = new_refresh_token()?;
        // The spend and its successor commit in one transaction: no window in which the
        // family is spent but its new token not yet written.
        let spent = self
            .store
            .spend_refresh_token(&hash, self.now(), &|spent, principal| {
                // An OAuth client's refresh token is spent only at the token endpoint, by
                // that client: here it would turn into a token for Coffer with every scope.
                if spent.client_id.is_some() {
                    return Err(Error::unauthenticated("an OAuth client's refresh token"));
                }
                Ok((
                    successor_hash.clone(),
                    self.refresh_row(principal, Some(spent.family.clone()))?,
                ))
            })
            .await?;
        match spent {
            Spend::Spent(principal, _) => self.tokens(&principal, successor),
            Spend::Reused(row) => {
                let event = ChainEvent {
                    tenant: &row.tenant,
                    actor: &row.principal_id,
                    action: "refresh_token.reuse",
                    subject: &row.family,
                    outcome: "family_revoked",
                };
                self.store
                    .audit(self.audit_key(), &event, self.now())
                    .await?;
                tracing::warn!(tenant = %row.tenant, "refresh token reuse: family revoked");
                Err(Error::unauthenticated("refresh token reused"))
            }
            Spend::Invalid => Err(Error::unauthenticated(
                "unknown, expired or revoked refresh token",
            )),
        }
    }

    /// Revokes a token of either kind (RFC 7009: anything unrecognised is ignored).
    ///
    /// # Errors
    /// [`Error::Database`] only.
    pub(crate) async fn revoke(&self, token: &SecretString) -> Result<()> {
        self.revoke_issued_to(token, None).await
    }

    /// Revokes a token of either kind, if it was issued to `client` (any token for `None`);
    /// anything else is ignored (RFC 7009).
    ///
    /// # Errors
    /// [`Error::Database`] only.
    pub(crate) async fn revoke_issued_to(
        &self,
        token: &SecretString,
        client: Option<&str>,
    ) -> Result<()> {
        let issued_to_client =
            |issued: Option<&str>| client.is_none_or(|client| issued == Some(client));
        if let Ok(hash) = refresh_hash(token) {
            if let Some(row) = self.store.refresh_token(&hash).await?
                && issued_to_client(row.client_id.as_deref())
            {
                self.store
                    .revoke_refresh_family(&row.family, self.now())
                    .await?;
            }
            return Ok(());
        }
        if let Ok(verified) = self
            .keys
            .current()
            .any_audience
            .verify(token.expose_secret())
            && issued_to_client(verified.claims.client_id.as_deref())
        {
            let forget_time = verified
                .claims
                .exp
                .saturating_add(seconds(self.keys.settings().leeway));
            self.store
                .revoke_access_token(&verified.claims.jti, forget_time, self.now())
                .await?;
        }
        Ok(())
    }

    /// What a token grants, if it is active now (RFC 7662: `None` for anything invalid).
    ///
    /// # Errors
    /// [`Error::Database`] only.
    pub(crate) async fn introspect(&self, token: &SecretString) -> Result<Option<Introspection>> {
        if let Ok(hash) = refresh_hash(token) {
            let row = self.store.refresh_token(&hash).await?.filter(|r| {
                r.spent_time.is_none() && r.revoke_time.is_none() && r.expire_time > self.now()
            });
            return match row {
                Some(row) if !self.store.is_refresh_family_revoked(&row.family).await? => {
                    Ok(Some(Introspection::Refresh(row)))
                }
                _ => Ok(None),
            };
        }
        Ok(self
            .verify_any_audience(token.expose_secret())
            .await
            .ok()
            .map(|v| Introspection::Access(v.claims)))
    }

    /// Verifies an access token for Coffer's own audience, including revocation: the bearer
    /// of a Coffer RPC.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for any invalid or revoked token; [`Error::Database`].
    pub(crate) async fn verify_access_token(&self, token: &str) -> Result<Verified> {
        let verified = self
            .keys
            .current()
            .verifier
            .verify(token)
            .map_err(|_| Error::unauthenticated("invalid access token"))?;
        self.unrevoked(verified).await
    }

    /// Verifies an access token for any audience this server issues tokens for (Coffer's and
    /// the OAuth resources'), including revocation: for introspection only.
    ///
    /// # Errors
    /// As [`Auth::verify_access_token`].
    pub(crate) async fn verify_any_audience(&self, token: &str) -> Result<Verified> {
        let verified = self
            .keys
            .current()
            .any_audience
            .verify(token)
            .map_err(|_| Error::unauthenticated("invalid access token"))?;
        self.unrevoked(verified).await
    }

    /// The token, unless the revocation feed ends it.
    async fn unrevoked(&self, verified: Verified) -> Result<Verified> {
        // One look at the revocation feed, the same one other services mirror: the token
        // itself, the API key it was exchanged for (it dies with the key), and its
        // principal's role generation (an older one carries scopes no longer held).
        let claims = &verified.claims;
        let principal = format!("{}/{}", claims.tenant, claims.sub);
        if self
            .store
            .is_token_revoked(&claims.jti, claims.akid.as_deref(), &principal, claims.pgen)
            .await?
        {
            return Err(Error::unauthenticated("revoked access token"));
        }
        Ok(verified)
    }

    /// Signs an access token for `grant`.
    pub(super) fn access_token(&self, grant: &Grant<'_>) -> Result<String> {
        Ok(self.access_token_with_claims(grant)?.0)
    }

    /// Signs an access token for `grant`, and returns its claims beside it.
    pub(super) fn access_token_with_claims(&self, grant: &Grant<'_>) -> Result<(String, Claims)> {
        let settings = self.keys.settings();
        let issued = self.now();
        let claims = Claims {
            iss: settings.issuer.clone(),
            sub: grant.subject.to_owned(),
            aud: grant
                .audience
                .map_or_else(|| settings.audience.clone(), str::to_owned),
            exp: issued.saturating_add(seconds(grant.ttl)),
            iat: issued,
            nbf: issued,
            jti: random_id(16)?,
            tenant: grant.tenant.to_owned(),
            scope: grant.scopes.to_string(),
            roles: grant.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            akid: grant.akid.map(str::to_owned),
            pgen: grant.generation,
            client_id: grant.client_id.map(str::to_owned),
        };
        let token = self.keys.current().signer.sign(&claims)?;
        Ok((token, claims))
    }

    /// Issues an access token and a refresh token (in `family`, or a new one).
    async fn issue(&self, principal: &PrincipalRow, family: Option<String>) -> Result<Tokens> {
        let (refresh_token, hash) = new_refresh_token()?;
        let row = self.refresh_row(principal, family)?;
        self.store.insert_refresh_token(&hash, &row).await?;
        self.tokens(principal, refresh_token)
    }

    /// A new refresh-token row for `principal`, in `family` or a new one.
    fn refresh_row(&self, principal: &PrincipalRow, family: Option<String>) -> Result<RefreshRow> {
        let issued = self.now();
        Ok(RefreshRow {
            family: family.map_or_else(|| random_id(16), Ok)?,
            tenant: principal.tenant.clone(),
            principal_id: principal.id.clone(),
            scope: effective_scopes(principal)?.to_string(),
            create_time: issued,
            expire_time: issued.saturating_add(seconds(self.refresh_token_ttl)),
            spent_time: None,
            revoke_time: None,
            client_id: None,
            audience: None,
        })
    }

    /// An access token for `principal`, with `refresh_token` beside it.
    fn tokens(&self, principal: &PrincipalRow, refresh_token: SecretString) -> Result<Tokens> {
        let settings = self.keys.settings();
        let scopes = effective_scopes(principal)?;
        let roles = stored_roles(&principal.roles)?;
        let access_token = self.access_token(&Grant {
            tenant: &principal.tenant,
            subject: &principal.id,
            scopes: &scopes,
            roles: &roles,
            akid: None,
            generation: principal.generation,
            ttl: settings.access_token_ttl,
            audience: None,
            client_id: None,
        })?;
        Ok(Tokens {
            access_token,
            expires_in: settings.access_token_ttl.as_secs(),
            refresh_token,
            refresh_expires_in: self.refresh_token_ttl.as_secs(),
            scope: scopes.to_string(),
        })
    }
}

/// A fresh refresh token (`mcp_rt_` + 256 random bits) and its stored hash.
pub(super) fn new_refresh_token() -> Result<(SecretString, String)> {
    let mut random = [0u8; 32];
    coffer_crypto::fill_random(&mut random)?;
    let token = SecretString::from(format!(
        "{REFRESH_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(random)
    ));
    let hash = refresh_hash(&token)?;
    Ok((token, hash))
}

/// What an access token says.
pub(super) struct Grant<'a> {
    pub(super) tenant: &'a str,
    pub(super) subject: &'a str,
    pub(super) scopes: &'a Scopes,
    pub(super) roles: &'a [Role],
    /// The API key it was exchanged for, if any.
    pub(super) akid: Option<&'a str>,
    /// The principal's role generation now.
    pub(super) generation: u64,
    pub(super) ttl: std::time::Duration,
    /// The OAuth resource it is for (`aud`); `None` is Coffer's own audience.
    pub(super) audience: Option<&'a str>,
    /// The OAuth client it is issued to, if any.
    pub(super) client_id: Option<&'a str>,
}

/// The stored form of a refresh token: hex SHA-256. Refuses anything not shaped like one
/// before any database work.
pub(super) fn refresh_hash(token: &SecretString) -> Result<String> {
    let token = token.expose_secret();
    let well_formed = token.len() == REFRESH_LEN
        && token.starts_with(REFRESH_PREFIX)
        && token[REFRESH_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err(Error::unauthenticated("malformed refresh token"));
    }
    Ok(Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
