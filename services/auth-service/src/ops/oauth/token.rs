//! The token endpoint (OAuth 2.1 section 3.2): the authorization code, refresh token and
//! client credentials grants; and revocation (RFC 7009) by the client a token was issued to.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coffer_authn::Scopes;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::clients::{AUTHORIZATION_CODE, CLIENT_CREDENTIALS, Presented, REFRESH_TOKEN};
use super::{MAX_URI_LEN, OAuthError, Requested, bounded, canonical_resource, hash};
use crate::ops::directory::{effective_scopes, stored_roles};
use crate::ops::tokens::{Grant, new_refresh_token, refresh_hash};
use crate::ops::{Auth, seconds};
use crate::store::{
    ChainEvent, ClientRow, CodeSpend, Issued, PrincipalKind, PrincipalRow, RefreshRow, Spend,
};
use crate::{Error, Result};

/// A token request's parameters, as sent (the client's credentials apart).
#[derive(Debug, Default)]
pub(crate) struct TokenRequest {
    pub(crate) grant_type: String,
    pub(crate) code: SecretString,
    pub(crate) redirect_uri: String,
    pub(crate) code_verifier: SecretString,
    pub(crate) refresh_token: SecretString,
    pub(crate) scope: String,
    pub(crate) resource: Vec<String>,
}

/// A token response.
#[derive(Debug)]
pub(crate) struct Issue {
    pub(crate) access_token: String,
    pub(crate) expires_in: u64,
    pub(crate) refresh_token: Option<SecretString>,
    /// Granted scopes, with `offline_access` when a refresh token comes with them.
    pub(crate) scope: String,
}

impl Auth {
    /// The token endpoint.
    ///
    /// # Errors
    /// [`Error::OAuth`] with the RFC 6749 error; storage errors.
    pub(crate) async fn exchange_token(
        &self,
        presented: &Presented,
        request: TokenRequest,
    ) -> Result<Issue> {
        let client = self.authenticate_client(presented).await?;
        match request.grant_type.as_str() {
            AUTHORIZATION_CODE if client.allows(AUTHORIZATION_CODE) => {
                self.code_grant(&client, request).await
            }
            REFRESH_TOKEN if client.allows(REFRESH_TOKEN) => {
                self.refresh_grant(&client, request).await
            }
            CLIENT_CREDENTIALS if client.allows(CLIENT_CREDENTIALS) => {
                self.credentials_grant(&client, &request).await
            }
            AUTHORIZATION_CODE | REFRESH_TOKEN | CLIENT_CREDENTIALS => {
                Err(OAuthError::UnauthorizedClient
                    .because("this client may not use this grant type"))
            }
            _ => Err(OAuthError::UnsupportedGrantType
                .because("grant_type: authorization_code, refresh_token or client_credentials")),
        }
    }

    /// Revokes a token issued to the authenticated client; anything else is ignored.
    ///
    /// # Errors
    /// [`OAuthError::InvalidClient`]; storage errors.
    pub(crate) async fn revoke_client_token(
        &self,
        presented: &Presented,
        token: &SecretString,
    ) -> Result<()> {
        let client = self.authenticate_client(presented).await?;
        self.revoke_issued_to(token, Some(&client.client_id)).await
    }

    /// Introspection by a resource server's client: the claims of an active access token for
    /// its resource (revocations included), `None` for anything else.
    ///
    /// # Errors
    /// [`OAuthError::InvalidClient`], also for a client that is not a resource server's.
    pub(crate) async fn introspect_for_resource_server(
        &self,
        presented: &Presented,
        token: &SecretString,
    ) -> Result<Option<coffer_authn::jwt::Claims>> {
        let client = self.authenticate_client(presented).await?;
        let Some(resource) = &client.resource else {
            return Err(
                OAuthError::InvalidClient.because("only a resource server's client may introspect")
            );
        };
        let Ok(verified) = self.verify_any_audience(token.expose_secret()).await else {
            return Ok(None);
        };
        Ok((verified.claims.aud == *resource).then_some(verified.claims))
    }

    /// `authorization_code`: the code once, by its client, with its redirect URI, PKCE
    /// verifier and resource. A code presented again revokes what its first use issued.
    async fn code_grant(&self, client: &ClientRow, request: TokenRequest) -> Result<Issue> {
        let invalid = |why: &str| OAuthError::InvalidGrant.because(why.to_owned());
        let code = request.code.expose_secret();
        if code.is_empty() || code.len() > 64 {
            return Err(OAuthError::InvalidRequest.because("code is required"));
        }
        let code_hash = hash(code);
        let row = match self.store.spend_code(&code_hash, self.now()).await? {
            CodeSpend::Spent(row) => row,
            CodeSpend::Reused(issued) => {
                self.undo_code(&code_hash, issued).await?;
                return Err(invalid(
                    "the code was used before: what it issued is revoked",
                ));
            }
            CodeSpend::Invalid => return Err(invalid("unknown or expired code")),
        };
        if row.client_id != client.client_id {
            return Err(invalid("the code was issued to another client"));
        }
        bounded("redirect_uri", &request.redirect_uri, MAX_URI_LEN)?;
        let redirect_matches = request.redirect_uri == row.redirect_uri
            || (request.redirect_uri.is_empty() && client.redirect_uris.len() == 1);
        if !redirect_matches {
            return Err(invalid(
                "redirect_uri differs from the authorization request's",
            ));
        }
        if !pkce_matches(request.code_verifier.expose_secret(), &row.code_challenge) {
            return Err(invalid("code_verifier does not match the code_challenge"));
        }
        self.same_resource(&request.resource, &row.resource)?;
        let principal = self.granting_user(&row.tenant, &row.principal_id).await?;
        let granted = stored(&row.scope)?.intersection(&effective_scopes(&principal)?);
        let refresh = if row.offline && client.allows(REFRESH_TOKEN) {
            let (token, token_hash) = new_refresh_token()?;
            let refresh_row =
                self.client_refresh_row(&principal, client, &row.resource, &granted, None)?;
            self.store
                .insert_refresh_token(&token_hash, &refresh_row)
                .await?;
            Some((token, refresh_row.family))
        } else {
            None
        };
        let issue = self.client_tokens(
            &principal,
            client,
            &row.resource,
            &granted,
            refresh.as_ref().map(|(t, _)| t.clone()),
        )?;
        self.store
            .record_code_issue(
                &code_hash,
                &Issued {
                    family: refresh.map(|(_, family)| family),
                    jti: issue.1,
                    jti_expire_time: issue.2,
                },
            )
            .await?;
        Ok(issue.0)
    }

    /// `refresh_token`: a token issued to this client, rotated; at most the scopes it had
    /// and the user holds now, or fewer when `scope` narrows them.
    async fn refresh_grant(&self, client: &ClientRow, request: TokenRequest) -> Result<Issue> {
        let invalid = |why: &'static str| OAuthError::InvalidGrant.because(why);
        let token_hash = refresh_hash(&request.refresh_token)
            .map_err(|_| invalid("unknown, expired or revoked refresh token"))?;
        let narrowing = if request.scope.is_empty() {
            None
        } else {
            Some(Requested::parse(&request.scope)?.scopes)
        };
        let (successor, successor_hash) = new_refresh_token()?;
        let spent = self
            .store
            .spend_refresh_token(&token_hash, self.now(), &|spent, principal| {
                if spent.client_id.as_deref() != Some(client.client_id.as_str()) {
                    return Err(invalid("the refresh token was issued to another client"));
                }
                let audience = spent
                    .audience
                    .clone()
                    .ok_or(Error::Corrupt("refresh audience"))?;
                self.same_resource(&request.resource, &audience)?;
                let had = stored(&spent.scope)?;
                if let Some(narrower) = &narrowing {
                    let beyond = narrower.beyond(&had);
                    if !beyond.is_empty() {
                        return Err(OAuthError::InvalidScope
                            .because(format!("the refresh token was not granted {beyond}")));
                    }
                }
                let scopes = narrowing
                    .as_ref()
                    .unwrap_or(&had)
                    .intersection(&effective_scopes(principal)?);
                let row = self.client_refresh_row(
                    principal,
                    client,
                    &audience,
                    &scopes,
                    Some(spent.family.clone()),
                )?;
                Ok((successor_hash.clone(), row))
            })
            .await?;
        match spent {
            Spend::Spent(principal, next) => {
                let audience = next
                    .audience
                    .clone()
                    .ok_or(Error::Corrupt("refresh audience"))?;
                let (issue, _, _) = self.client_tokens(
                    &principal,
                    client,
                    &audience,
                    &stored(&next.scope)?,
                    Some(successor),
                )?;
                Ok(issue)
            }
            Spend::Reused(row) => {
                self.audit_reuse(
                    &row.tenant,
                    &row.principal_id,
                    &row.family,
                    "refresh_token.reuse",
                )
                .await?;
                Err(invalid("refresh token reused: its family is revoked"))
            }
            Spend::Invalid => Err(invalid("unknown, expired or revoked refresh token")),
        }
    }

    /// `client_credentials`: a confidential client acting as its service account, for one
    /// resource, with at most its own scopes and the account's now.
    async fn credentials_grant(&self, client: &ClientRow, request: &TokenRequest) -> Result<Issue> {
        let resource = self.resource(&request.resource)?;
        let (Some(tenant), Some(id)) = (&client.tenant, &client.principal_id) else {
            return Err(Error::Corrupt(
                "client credentials client without an account",
            ));
        };
        let account = self
            .store
            .principal(tenant, id)
            .await?
            .filter(|row| row.kind == PrincipalKind::ServiceAccount)
            .ok_or_else(|| {
                OAuthError::InvalidClient.because("the client's service account is gone")
            })?;
        let allowed = stored(&client.scope)?.intersection(&resource.scopes);
        let requested = Requested::parse(&request.scope)?;
        if requested.offline {
            return Err(OAuthError::InvalidScope.because("client credentials get no refresh token"));
        }
        let wanted = if requested.scopes.is_empty() {
            allowed
        } else {
            let beyond = requested.scopes.beyond(&allowed);
            if !beyond.is_empty() {
                return Err(OAuthError::InvalidScope.because(format!("not allowed {beyond}")));
            }
            requested.scopes
        };
        let granted = wanted.intersection(&effective_scopes(&account)?);
        let (issue, _, _) = self.client_tokens(&account, client, &resource.uri, &granted, None)?;
        Ok(issue)
    }

    /// An access token for a client (and the refresh token beside it), with its `jti` and
    /// expiry.
    fn client_tokens(
        &self,
        principal: &PrincipalRow,
        client: &ClientRow,
        audience: &str,
        scopes: &Scopes,
        refresh_token: Option<SecretString>,
    ) -> Result<(Issue, String, i64)> {
        let settings = self.keys.settings();
        let roles = stored_roles(&principal.roles)?;
        let (access_token, claims) = self.access_token_with_claims(&Grant {
            tenant: &principal.tenant,
            subject: &principal.id,
            scopes,
            roles: &roles,
            akid: None,
            generation: principal.generation,
            ttl: settings.access_token_ttl,
            audience: Some(audience),
            client_id: Some(&client.client_id),
        })?;
        Ok((
            Issue {
                access_token,
                expires_in: settings.access_token_ttl.as_secs(),
                scope: Requested::text(scopes, refresh_token.is_some()),
                refresh_token,
            },
            claims.jti,
            claims.exp,
        ))
    }

    /// A refresh-token row bound to a client and resource.
    fn client_refresh_row(
        &self,
        principal: &PrincipalRow,
        client: &ClientRow,
        audience: &str,
        scopes: &Scopes,
        family: Option<String>,
    ) -> Result<RefreshRow> {
        let issued = self.now();
        Ok(RefreshRow {
            family: family.map_or_else(|| super::super::random_id(16), Ok)?,
            tenant: principal.tenant.clone(),
            principal_id: principal.id.clone(),
            scope: scopes.to_string(),
            create_time: issued,
            expire_time: issued.saturating_add(seconds(self.refresh_token_ttl)),
            spent_time: None,
            revoke_time: None,
            client_id: Some(client.client_id.clone()),
            audience: Some(audience.to_owned()),
        })
    }

    /// Revokes what a code's first exchange issued, and records the reuse.
    async fn undo_code(&self, code_hash: &str, issued: Option<Issued>) -> Result<()> {
        let Some(issued) = issued else {
            return Ok(());
        };
        if let Some(family) = &issued.family {
            self.store.revoke_refresh_family(family, self.now()).await?;
        }
        let forget = issued
            .jti_expire_time
            .saturating_add(seconds(self.keys.settings().leeway));
        self.store
            .revoke_access_token(&issued.jti, forget, self.now())
            .await?;
        tracing::warn!(code = %&code_hash[..8], "authorization code reused: its tokens are revoked");
        Ok(())
    }

    /// Writes a reuse (code or refresh token) to the tenant's privilege-change chain.
    async fn audit_reuse(
        &self,
        tenant: &str,
        actor: &str,
        subject: &str,
        action: &str,
    ) -> Result<()> {
        let event = ChainEvent {
            tenant,
            actor,
            action,
            subject,
            outcome: "family_revoked",
        };
        self.store
            .audit(self.audit_key(), &event, self.now())
            .await?;
        tracing::warn!(tenant, "OAuth refresh token reuse: family revoked");
        Ok(())
    }

    /// The user a code was issued for, if still a user.
    async fn granting_user(&self, tenant: &str, id: &str) -> Result<PrincipalRow> {
        self.user(tenant, id)
            .await?
            .ok_or_else(|| OAuthError::InvalidGrant.because("the user is gone"))
    }

    /// A token request's `resource`, if sent, must name the grant's resource.
    fn same_resource(&self, sent: &[String], granted: &str) -> Result<()> {
        match sent {
            [] => Ok(()),
            [one] if canonical_resource(one) == canonical_resource(granted) => Ok(()),
            _ => {
                Err(OAuthError::InvalidTarget
                    .because("resource differs from the one the grant is for"))
            }
        }
    }
}

/// Whether `verifier` (43 to 128 unreserved characters) hashes to `challenge` (S256).
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !well_formed {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

fn stored(scope: &str) -> Result<Scopes> {
    Scopes::parse(scope).map_err(|_| Error::Corrupt("stored scope"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_an_independent_computation() {
        // Python: base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
        let verifier = "dBjftJeZ4CVP-mJ0zUsXObE3yzjdxlkgzg1Sn2dRuYY";
        let challenge = "u3aA9bhuJry0GtVk4xiX6KaZRgLOmgs9ZPQWjQbNF8U";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mJ0zUsXObE3yzjdxlkgzg1Sn2dRuYZ",
            challenge
        ));
        // The challenge itself as a verifier (what a plain-method client sends) fails.
        assert!(!pkce_matches(challenge, challenge));
        assert!(!pkce_matches("short", challenge));
    }
}
