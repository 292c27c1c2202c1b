//! The tonic service: authenticate and authorize the caller, parse the request, call the
//! operation, map the result.

use std::sync::Arc;
use std::time::Duration;

use coffer_authn::{Role, Scope, Scopes};
use coffer_proto::pb;
use coffer_proto::pb::auth_service_server::AuthService;
use coffer_server::paging::{self, Cursor};
use secrecy::{ExposeSecret as _, SecretString};
use tonic::{Request, Response, Status};

use crate::authz::{self, Caller, Identities, Manage, ServiceRpc};
use crate::ids::{ApiKeyName, PrincipalName, TenantId};
use crate::oauth_api as oauth;
use crate::ops::api_keys::{IssuedKey, NewApiKey};
use crate::ops::directory::{NewPrincipal, effective_scopes, stored_roles};
use crate::ops::factors::FactorStatus;
use crate::ops::{Auth, Introspection, Tokens};
use crate::source::Source;
use crate::store::{ApiKeyRow, PrincipalKind, PrincipalRow, RevocationKind, TenantRow};

/// Most revocations in one ListRevocations answer.
const MAX_REVOCATIONS_PER_PAGE: u32 = 10_000;
use crate::{Error, Result};

/// The `coffer.v1.AuthService` implementation.
pub(crate) struct AuthServiceApi {
    auth: Arc<Auth>,
    identities: Identities,
}

impl AuthServiceApi {
    /// Serves `auth`, trusting `identities`.
    pub(crate) fn new(auth: Arc<Auth>, identities: Identities) -> Self {
        Self { auth, identities }
    }

    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller> {
        authz::caller(&self.auth, &self.identities, request).await
    }
}

type Reply<T> = std::result::Result<Response<T>, Status>;

#[tonic::async_trait]
impl AuthService for AuthServiceApi {
    async fn create_tenant(&self, request: Request<pb::CreateTenantRequest>) -> Reply<pb::Tenant> {
        authz::require_operator(&self.identities, &request)?;
        let request = request.into_inner();
        let id = TenantId::parse("tenant_id", &request.tenant_id).map_err(Error::from)?;
        let row = self
            .auth
            .create_tenant(id.to_string(), request.display_name)
            .await?;
        Ok(Response::new(tenant_proto(&row)))
    }

    async fn get_tenant(&self, request: Request<pb::GetTenantRequest>) -> Reply<pb::Tenant> {
        let caller = self.caller(&request).await?;
        let id = TenantId::from_name("name", &request.get_ref().name).map_err(Error::from)?;
        caller.require(id.as_str(), Scope::OrgRead, || id.name())?;
        Ok(Response::new(tenant_proto(
            &self.auth.tenant(id.as_str()).await?,
        )))
    }

    async fn create_principal(
        &self,
        request: Request<pb::CreatePrincipalRequest>,
    ) -> Reply<pb::Principal> {
        let caller = self.caller(&request).await?;
        let source = self.identities.source(&request)?;
        let request = request.into_inner();
        let tenant = parent(&request.parent)?;
        caller.require(tenant.as_str(), Scope::OrgAdmin, || tenant.name())?;
        let name = PrincipalName::new(tenant, "principal_id", &request.principal_id)
            .map_err(Error::from)?;
        let roles = parse_roles(&request.roles)?;
        let new = match pb::PrincipalKind::try_from(request.kind) {
            Ok(pb::PrincipalKind::User) if request.scopes.is_empty() => NewPrincipal::User {
                password: SecretString::from(request.password),
            },
            Ok(pb::PrincipalKind::User) => {
                return Err(Error::invalid("scopes", "users get scopes from roles only").into());
            }
            Ok(pb::PrincipalKind::ServiceAccount) if request.password.is_empty() => {
                let scopes = Scopes::parse_list(&request.scopes).map_err(|unknown| {
                    Error::invalid("scopes", format!("unknown scope `{unknown}`"))
                })?;
                NewPrincipal::ServiceAccount { scopes }
            }
            Ok(pb::PrincipalKind::ServiceAccount) => {
                return Err(Error::invalid("password", "service accounts have no password").into());
            }
            _ => return Err(Error::invalid("kind", "must be USER or SERVICE_ACCOUNT").into()),
        };
        let granted = match &new {
            NewPrincipal::User { .. } => coffer_authn::scope::scopes_of(&roles),
            NewPrincipal::ServiceAccount { scopes } => coffer_authn::scope::scopes_of(&roles)
                .iter()
                .chain(scopes.iter())
                .collect(),
        };
        caller.may_grant(&granted)?;
        let row = self
            .auth
            .create_principal(&name, new, roles, &source, &caller.actor())
            .await?;
        Ok(Response::new(principal_proto(&row)?))
    }

    async fn list_principals(
        &self,
        request: Request<pb::ListPrincipalsRequest>,
    ) -> Reply<pb::ListPrincipalsResponse> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let tenant = parent(&request.parent)?;
        caller.require(tenant.as_str(), Scope::UserRead, || tenant.name())?;
        let page_size = page_size(request.page_size)?;
        let cursor = Cursor::new("ListPrincipals", &tenant.name(), &[]);
        let after = match page_position(&cursor, &request.page_token)? {
            Some(id) => coffer_server::names::parse_id("page_token", &id).map_err(Error::from)?,
            None => String::new(),
        };
        let (rows, next) = self
            .auth
            .list_principals(tenant.as_str(), page_size, &after)
            .await?;
        Ok(Response::new(pb::ListPrincipalsResponse {
            principals: rows.iter().map(principal_proto).collect::<Result<_>>()?,
            next_page_token: next.map(|id| cursor.token(&id)).unwrap_or_default(),
        }))
    }

    async fn set_roles(&self, request: Request<pb::SetRolesRequest>) -> Reply<pb::Principal> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let name = PrincipalName::parse("name", &request.name).map_err(Error::from)?;
        caller.require(name.tenant().as_str(), Scope::OrgAdmin, || name.to_string())?;
        let roles = parse_roles(&request.roles)?;
        caller.may_grant(&coffer_authn::scope::scopes_of(&roles))?;
        let row = self.auth.set_roles(&name, &roles, &caller.actor()).await?;
        Ok(Response::new(principal_proto(&row)?))
    }

    async fn login(&self, request: Request<pb::LoginRequest>) -> Reply<pb::TokenResponse> {
        let source = self.identities.source(&request)?;
        let request = request.into_inner();
        // Malformed ids cannot match anyone: the same answer as a wrong password.
        let (Ok(tenant), Ok(username)) = (
            TenantId::parse("tenant_id", &request.tenant_id),
            coffer_server::names::parse_id("username", &request.username),
        ) else {
            return Err(Error::unauthenticated("malformed tenant or username").into());
        };
        let tokens = self
            .auth
            .login(
                tenant.as_str(),
                &username,
                SecretString::from(request.password),
                &SecretString::from(request.second_factor),
                &source,
            )
            .await?;
        Ok(Response::new(token_proto(tokens)))
    }

    async fn refresh(&self, request: Request<pb::RefreshRequest>) -> Reply<pb::TokenResponse> {
        authz::peer(&request)?;
        let token = SecretString::from(request.into_inner().refresh_token);
        Ok(Response::new(token_proto(self.auth.refresh(&token).await?)))
    }

    async fn revoke(&self, request: Request<pb::RevokeRequest>) -> Reply<pb::RevokeResponse> {
        authz::peer(&request)?;
        let token = SecretString::from(request.into_inner().token);
        self.auth.revoke(&token).await?;
        Ok(Response::new(pb::RevokeResponse {}))
    }

    async fn introspect(
        &self,
        request: Request<pb::IntrospectRequest>,
    ) -> Reply<pb::IntrospectResponse> {
        authz::require_service(&self.identities, &request, ServiceRpc::Introspect)?;
        let token = SecretString::from(request.into_inner().token);
        let response = match self.auth.introspect(&token).await? {
            None => pb::IntrospectResponse::default(),
            Some(Introspection::Access(claims)) => pb::IntrospectResponse {
                active: true,
                token_type: "access_token".into(),
                scope: claims.scope,
                sub: claims.sub,
                tenant: claims.tenant,
                exp: claims.exp,
                iat: claims.iat,
                jti: claims.jti,
                iss: claims.iss,
                aud: claims.aud,
                client_id: claims.client_id.unwrap_or_default(),
            },
            Some(Introspection::Refresh(row)) => pb::IntrospectResponse {
                active: true,
                token_type: "refresh_token".into(),
                scope: row.scope,
                sub: row.principal_id,
                tenant: row.tenant,
                exp: row.expire_time,
                iat: row.create_time,
                ..Default::default()
            },
        };
        Ok(Response::new(response))
    }

    async fn get_jwks(&self, request: Request<pb::GetJwksRequest>) -> Reply<pb::Jwks> {
        authz::peer(&request)?;
        let keys = self.auth.keys().current();
        Ok(Response::new(pb::Jwks {
            keys: keys
                .jwks
                .keys
                .iter()
                .map(|jwk| pb::Jwk {
                    kty: jwk.kty.clone(),
                    kid: jwk.kid.clone(),
                    alg: jwk.alg.clone(),
                    r#use: jwk.use_.clone(),
                    n: jwk.n.clone(),
                    e: jwk.e.clone(),
                })
                .collect(),
        }))
    }

    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Reply<pb::CreateApiKeyResponse> {
        let caller = self.caller(&request).await?;
        let source = self.identities.source(&request)?;
        let request = request.into_inner();
        let tenant = parent(&request.parent)?;
        let named = if request.principal.is_empty() {
            None
        } else {
            let principal =
                PrincipalName::parse("principal", &request.principal).map_err(Error::from)?;
            if principal.tenant() != &tenant {
                return Err(Error::invalid("principal", "must be in the parent tenant").into());
            }
            Some(principal.id().to_owned())
        };
        let parent_id = match &caller {
            Caller::Principal(me) => me.api_key.clone(),
            Caller::Operator(_) => None,
        };
        let (principal_id, created_by, creator_scopes) = match (&caller, named) {
            (Caller::Operator(_), None) => {
                return Err(
                    Error::invalid("principal", "operators must name the principal").into(),
                );
            }
            (Caller::Operator(operator), Some(id)) => (id, operator.to_string(), None),
            (Caller::Principal(me), named) => {
                let target = named.unwrap_or_else(|| me.subject.clone());
                let scope = if target == me.subject {
                    Scope::UserToken
                } else {
                    Scope::OrgAdmin
                };
                caller.require(tenant.as_str(), scope, || tenant.name())?;
                (target, me.subject.clone(), Some(me.scopes.clone()))
            }
        };
        let scopes = if request.scopes.is_empty() {
            None
        } else {
            Some(Scopes::parse_list(&request.scopes).map_err(|unknown| {
                Error::invalid("scopes", format!("unknown scope `{unknown}`"))
            })?)
        };
        let ttl = match whole_seconds("ttl", request.ttl.as_ref())? {
            Some(ttl) if ttl.is_zero() => {
                return Err(Error::invalid(
                    "ttl",
                    "must be more than zero; leave it unset for no expiry",
                )
                .into());
            }
            ttl => ttl,
        };
        let issued = self
            .auth
            .create_api_key(NewApiKey {
                tenant: tenant.to_string(),
                principal_id,
                display_name: request.display_name,
                scopes,
                ttl,
                created_by,
                creator_scopes,
                source,
                parent_id,
            })
            .await?;
        Ok(Response::new(issued_key_proto(issued)))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Reply<pb::ListApiKeysResponse> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let tenant = parent(&request.parent)?;
        caller.require(tenant.as_str(), Scope::UserRead, || tenant.name())?;
        let page_size = page_size(request.page_size)?;
        let cursor = Cursor::new("ListApiKeys", &tenant.name(), &[]);
        let after = match page_position(&cursor, &request.page_token)? {
            Some(id) => coffer_crypto::apikey::ApiKeyId::parse(&id)
                .map_err(|_| Error::invalid("page_token", paging::FOREIGN_TOKEN))?
                .as_str()
                .to_owned(),
            None => String::new(),
        };
        let (rows, next) = self
            .auth
            .list_api_keys(tenant.as_str(), page_size, &after)
            .await?;
        Ok(Response::new(pb::ListApiKeysResponse {
            api_keys: rows.iter().map(api_key_proto).collect(),
            next_page_token: next.map(|id| cursor.token(&id)).unwrap_or_default(),
        }))
    }

    async fn revoke_api_key(&self, request: Request<pb::RevokeApiKeyRequest>) -> Reply<pb::ApiKey> {
        let caller = self.caller(&request).await?;
        let row = self
            .manageable_key(&caller, &request.get_ref().name, Manage::Revoke)
            .await?;
        let revoked = self
            .auth
            .revoke_api_key(&row.tenant, &row.id, &caller.actor())
            .await?;
        Ok(Response::new(api_key_proto(&revoked)))
    }

    async fn roll_api_key(
        &self,
        request: Request<pb::RollApiKeyRequest>,
    ) -> Reply<pb::CreateApiKeyResponse> {
        let caller = self.caller(&request).await?;
        let row = self
            .manageable_key(&caller, &request.get_ref().name, Manage::Roll)
            .await?;
        let grace = whole_seconds("grace_period", request.get_ref().grace_period.as_ref())?
            .unwrap_or(Duration::ZERO);
        let source = self.identities.source(&request)?;
        let issued = self
            .auth
            .roll_api_key(&row.tenant, &row.id, grace, &source, &caller.actor())
            .await?;
        Ok(Response::new(issued_key_proto(issued)))
    }

    async fn verify_api_key(
        &self,
        request: Request<pb::VerifyApiKeyRequest>,
    ) -> Reply<pb::VerifyApiKeyResponse> {
        let introspector =
            authz::require_service(&self.identities, &request, ServiceRpc::VerifyApiKey)?;
        let request = request.into_inner();
        let source = Source::on_behalf_of(&introspector, &request.client)?;
        let key = SecretString::from(request.key);
        let verified = self.auth.verify_api_key(&key, &source).await?;
        Ok(Response::new(pb::VerifyApiKeyResponse {
            principal: format!(
                "tenants/{}/principals/{}",
                verified.tenant, verified.principal_id
            ),
            scopes: verified.scopes.names(),
            api_key: format!("tenants/{}/apiKeys/{}", verified.tenant, verified.id),
            tenant: verified.tenant,
            expire_time: verified
                .expire_time
                .map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
        }))
    }

    async fn exchange_api_key(
        &self,
        request: Request<pb::ExchangeApiKeyRequest>,
    ) -> Reply<pb::TokenResponse> {
        let source = self.identities.source(&request)?;
        let key = SecretString::from(request.into_inner().key);
        Ok(Response::new(token_proto(
            self.auth.exchange_api_key(&key, &source).await?,
        )))
    }

    async fn list_revocations(
        &self,
        request: Request<pb::ListRevocationsRequest>,
    ) -> Reply<pb::ListRevocationsResponse> {
        authz::require_service(&self.identities, &request, ServiceRpc::ListRevocations)?;
        let since = request
            .get_ref()
            .since_time
            .as_ref()
            .map_or(0, |t| t.seconds.max(0));
        let (rows, truncated, server_time) = self
            .auth
            .revocations_since(since, MAX_REVOCATIONS_PER_PAGE)
            .await?;
        let time = |seconds: i64| Some(prost_types::Timestamp { seconds, nanos: 0 });
        Ok(Response::new(pb::ListRevocationsResponse {
            revocations: rows
                .into_iter()
                .map(|row| pb::Revocation {
                    kind: match row.kind {
                        RevocationKind::AccessToken => pb::revocation::Kind::AccessToken,
                        RevocationKind::ApiKey => pb::revocation::Kind::ApiKey,
                        RevocationKind::Principal => pb::revocation::Kind::Principal,
                    } as i32,
                    id: row.id,
                    revoke_time: time(row.revoke_time),
                    forget_time: time(row.forget_time),
                    generation: row.generation,
                })
                .collect(),
            server_time: time(server_time),
            truncated,
        }))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuthAuditEventsRequest>,
    ) -> Reply<pb::ListAuthAuditEventsResponse> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let tenant = parent(&request.parent)?;
        caller.require(tenant.as_str(), Scope::OrgRead, || tenant.name())?;
        let page_size = page_size(request.page_size)?;
        let cursor = Cursor::new("ListAuditEvents", &tenant.name(), &[]);
        let after = cursor
            .sequence(&request.page_token)
            .map_err(|why| Error::invalid("page_token", why))?;
        let rows = self
            .auth
            .audit_events(tenant.as_str(), after, page_size + 1)
            .await?;
        let (events, next) =
            paging::split_page(rows, page_size, |e| cursor.token(&e.sequence.to_string()));
        Ok(Response::new(pb::ListAuthAuditEventsResponse {
            events: events
                .into_iter()
                .map(|e| pb::AuthAuditEvent {
                    name: format!("tenants/{}/authAuditEvents/{}", e.tenant, e.sequence),
                    sequence: u64::try_from(e.sequence).unwrap_or(0),
                    time: Some(prost_types::Timestamp {
                        seconds: e.time,
                        nanos: 0,
                    }),
                    tenant: e.tenant,
                    actor: e.actor,
                    action: e.action,
                    subject: e.subject,
                    outcome: e.outcome,
                    previous_hash: e.previous_hash,
                    hash: e.hash,
                })
                .collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn verify_audit_chain(
        &self,
        request: Request<pb::VerifyAuditChainRequest>,
    ) -> Reply<pb::VerifyAuditChainResponse> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let tenant = parent(&request.parent)?;
        caller.require(tenant.as_str(), Scope::OrgRead, || tenant.name())?;
        let expected = request.expected_head.map(parse_head).transpose()?;
        let check = self
            .auth
            .verify_audit_chain(tenant.as_str(), expected)
            .await?;
        if let Some(sequence) = check.first_broken {
            tracing::error!(
                tenant = tenant.as_str(),
                sequence,
                "auth audit chain broken"
            );
        }
        Ok(Response::new(pb::VerifyAuditChainResponse {
            valid: check.first_broken.is_none(),
            events_checked: check.checked,
            first_broken_sequence: check
                .first_broken
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(0),
            head: check.head.map(|head| pb::AuditHead {
                sequence: u64::try_from(head.sequence).unwrap_or(0),
                link: head.link,
                mac: head.mac,
                time: Some(prost_types::Timestamp {
                    seconds: head.time,
                    nanos: 0,
                }),
            }),
        }))
    }

    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> Reply<pb::RotateSigningKeyResponse> {
        let operator = authz::require_operator(&self.identities, &request)?;
        tracing::info!(%operator, "signing key rotation requested");
        let published_kids = self.auth.keys().rotate(operator.as_str()).await?;
        let kid = self.auth.keys().current().signer.kid().to_owned();
        Ok(Response::new(pb::RotateSigningKeyResponse {
            kid,
            published_kids,
        }))
    }

    async fn register_client(
        &self,
        request: Request<pb::RegisterClientRequest>,
    ) -> Reply<pb::OAuthClient> {
        self.oauth(&request)?;
        let source = self.identities.source(&request)?;
        Ok(Response::new(
            oauth::register_client(&self.auth, request.into_inner(), &source).await?,
        ))
    }

    async fn create_client(
        &self,
        request: Request<pb::CreateClientRequest>,
    ) -> Reply<pb::CreateClientResponse> {
        authz::require_operator(&self.identities, &request)?;
        Ok(Response::new(
            oauth::create_client(&self.auth, request.into_inner()).await?,
        ))
    }

    async fn start_authorization(
        &self,
        request: Request<pb::StartAuthorizationRequest>,
    ) -> Reply<pb::AuthorizationStep> {
        self.oauth(&request)?;
        Ok(Response::new(
            oauth::start_authorization(&self.auth, request.into_inner()).await?,
        ))
    }

    async fn sign_in(&self, request: Request<pb::SignInRequest>) -> Reply<pb::SignInResponse> {
        self.oauth(&request)?;
        let source = self.identities.source(&request)?;
        Ok(Response::new(
            oauth::sign_in(&self.auth, request.into_inner(), &source).await?,
        ))
    }

    async fn verify_second_factor(
        &self,
        request: Request<pb::VerifySecondFactorRequest>,
    ) -> Reply<pb::SignInResponse> {
        self.oauth(&request)?;
        let source = self.identities.source(&request)?;
        Ok(Response::new(
            oauth::verify_second_factor(&self.auth, request.into_inner(), &source).await?,
        ))
    }

    async fn enroll_totp(
        &self,
        request: Request<pb::EnrollTotpRequest>,
    ) -> Reply<pb::TotpEnrollment> {
        let session = request.get_ref().session.clone();
        let owner =
            authz::factor_owner(&self.auth, &self.identities, &request, &session, "", false)
                .await?;
        let enrollment = self.auth.enroll_totp(&owner.tenant, &owner.id).await?;
        Ok(Response::new(pb::TotpEnrollment {
            secret: enrollment.secret.expose_secret().to_owned(),
            uri: enrollment.uri.expose_secret().to_owned(),
            account: enrollment.account,
        }))
    }

    async fn confirm_totp(
        &self,
        request: Request<pb::ConfirmTotpRequest>,
    ) -> Reply<pb::ConfirmTotpResponse> {
        let session = request.get_ref().session.clone();
        let owner =
            authz::factor_owner(&self.auth, &self.identities, &request, &session, "", false)
                .await?;
        let code = SecretString::from(request.into_inner().code);
        let codes = self
            .auth
            .confirm_totp(&owner.tenant, &owner.id, &code, &owner.actor)
            .await?;
        Ok(Response::new(pb::ConfirmTotpResponse {
            recovery_codes: codes
                .iter()
                .map(|code| code.expose_secret().to_owned())
                .collect(),
        }))
    }

    async fn get_totp(&self, request: Request<pb::GetTotpRequest>) -> Reply<pb::TotpStatus> {
        let (session, parent) = (&request.get_ref().session, &request.get_ref().parent);
        let (tenant, id) =
            authz::grant_owner(&self.auth, &self.identities, &request, session, parent).await?;
        let status = self.auth.factor_status(&tenant, &id).await?;
        Ok(Response::new(totp_status_proto(status)))
    }

    async fn remove_totp(&self, request: Request<pb::RemoveTotpRequest>) -> Reply<pb::TotpStatus> {
        let (session, parent) = (&request.get_ref().session, &request.get_ref().parent);
        let owner = authz::factor_owner(
            &self.auth,
            &self.identities,
            &request,
            session,
            parent,
            true,
        )
        .await?;
        let (tenant, id) = (&owner.tenant, &owner.id);
        if owner.own && self.auth.has_second_factor(tenant, id).await? {
            // A stolen session or token alone cannot turn the factor off.
            let source = self.identities.source(&request)?;
            let code = SecretString::from(request.into_inner().code);
            let user = self
                .auth
                .user(tenant, id)
                .await?
                .ok_or(Error::NotFound(format!("tenants/{tenant}/principals/{id}")))?;
            self.auth.check_login_factor(&user, &code, &source).await?;
        }
        self.auth.remove_totp(tenant, id, &owner.actor).await?;
        // Removed: nothing is asked at sign-in, and no recovery code is left.
        Ok(Response::new(totp_status_proto(FactorStatus {
            confirm_time: None,
            recovery_codes_left: 0,
        })))
    }

    async fn finish_authorization(
        &self,
        request: Request<pb::FinishAuthorizationRequest>,
    ) -> Reply<pb::AuthorizationStep> {
        self.oauth(&request)?;
        Ok(Response::new(
            oauth::finish_authorization(&self.auth, request.into_inner()).await?,
        ))
    }

    async fn exchange_token(
        &self,
        request: Request<pb::ExchangeTokenRequest>,
    ) -> Reply<pb::OAuthTokenResponse> {
        self.oauth(&request)?;
        Ok(Response::new(
            oauth::exchange_token(&self.auth, request.into_inner()).await?,
        ))
    }

    async fn revoke_client_token(
        &self,
        request: Request<pb::RevokeClientTokenRequest>,
    ) -> Reply<pb::RevokeResponse> {
        self.oauth(&request)?;
        oauth::revoke_client_token(&self.auth, request.into_inner()).await?;
        Ok(Response::new(pb::RevokeResponse {}))
    }

    async fn list_grants(
        &self,
        request: Request<pb::ListGrantsRequest>,
    ) -> Reply<pb::ListGrantsResponse> {
        let (session, parent) = (&request.get_ref().session, &request.get_ref().parent);
        let (tenant, id) =
            authz::grant_owner(&self.auth, &self.identities, &request, session, parent).await?;
        let grants = self.auth.grants(&tenant, &id).await?;
        Ok(Response::new(pb::ListGrantsResponse {
            grants: grants
                .into_iter()
                .map(|grant| oauth::grant_proto(&tenant, &id, grant))
                .collect(),
        }))
    }

    async fn revoke_grant(&self, request: Request<pb::RevokeGrantRequest>) -> Reply<pb::Grant> {
        let name = request.get_ref().name.clone();
        let Some((parent, grant)) = name.rsplit_once("/grants/") else {
            return Err(Error::invalid(
                "name",
                "tenants/{tenant}/principals/{principal}/grants/{id}",
            )
            .into());
        };
        let session = request.get_ref().session.clone();
        let (tenant, id) =
            authz::grant_owner(&self.auth, &self.identities, &request, &session, parent).await?;
        let revoked = self.auth.revoke_grant(&tenant, &id, grant).await?;
        Ok(Response::new(oauth::grant_proto(&tenant, &id, revoked)))
    }

    async fn introspect_client_token(
        &self,
        request: Request<pb::IntrospectClientTokenRequest>,
    ) -> Reply<pb::IntrospectResponse> {
        self.oauth(&request)?;
        Ok(Response::new(
            oauth::introspect_client_token(&self.auth, request.into_inner()).await?,
        ))
    }
}

impl AuthServiceApi {
    /// The OAuth RPCs are the gateway's (and operators').
    fn oauth<T>(&self, request: &Request<T>) -> Result<()> {
        authz::require_service(&self.identities, request, ServiceRpc::OAuth).map(|_| ())
    }
}

fn totp_status_proto(status: FactorStatus) -> pb::TotpStatus {
    pb::TotpStatus {
        enabled: status.confirm_time.is_some(),
        confirm_time: status
            .confirm_time
            .map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
        recovery_codes_left: u32::try_from(status.recovery_codes_left).unwrap_or(u32::MAX),
    }
}

fn api_key_proto(row: &ApiKeyRow) -> pb::ApiKey {
    let time = |seconds: i64| prost_types::Timestamp { seconds, nanos: 0 };
    pb::ApiKey {
        name: format!("tenants/{}/apiKeys/{}", row.tenant, row.id),
        principal: format!("tenants/{}/principals/{}", row.tenant, row.principal_id),
        display_name: row.display_name.clone(),
        hint: row.hint.clone(),
        scopes: scope_names(&row.scopes),
        created_by: row.created_by.clone(),
        create_time: Some(time(row.create_time)),
        last_used_time: row.last_used_time.map(time),
        expire_time: row.expire_time.map(time),
        revoke_time: row.revoke_time.map(time),
    }
}

fn issued_key_proto(issued: IssuedKey) -> pb::CreateApiKeyResponse {
    pb::CreateApiKeyResponse {
        api_key: Some(api_key_proto(&issued.row)),
        key: issued.key.expose_secret().to_owned(),
    }
}

/// A request's `parent` field, `tenants/{tenant}`.
fn parent(parent: &str) -> Result<TenantId> {
    Ok(TenantId::from_name("parent", parent)?)
}

/// Parses a page size: 0 means the default; beyond the maximum is refused.
fn page_size(requested: u32) -> Result<u32> {
    coffer_server::paging::page_size(requested).map_err(|why| Error::invalid("page_size", why))
}

impl AuthServiceApi {
    /// Loads a key of the caller's tenant that the caller may `action` (see
    /// [`Caller::may_manage`]).
    async fn manageable_key(
        &self,
        caller: &Caller,
        name: &str,
        action: Manage,
    ) -> Result<ApiKeyRow> {
        let name = ApiKeyName::parse("name", name).map_err(Error::from)?;
        caller.require(name.tenant().as_str(), Scope::UserToken, || {
            name.to_string()
        })?;
        let row = self.auth.api_key(name.tenant().as_str(), name.id()).await?;
        caller.may_manage(&row, action, &name.to_string())?;
        Ok(row)
    }
}

/// An exported head as the caller sent it back.
fn parse_head(head: pb::AuditHead) -> Result<coffer_crypto::audit::Head> {
    coffer_crypto::audit::Head::parse(head.sequence, &head.link, &head.mac)
        .map_err(|why| Error::invalid("expected_head", why))
}

fn parse_roles(names: &[String]) -> Result<Vec<Role>> {
    names
        .iter()
        .map(|name| {
            Role::parse(name).ok_or_else(|| {
                Error::invalid(
                    "roles",
                    format!("unknown role `{name}` (org_admin, developer, viewer)"),
                )
            })
        })
        .collect()
}

fn tenant_proto(row: &TenantRow) -> pb::Tenant {
    pb::Tenant {
        name: format!("tenants/{}", row.id),
        display_name: row.display_name.clone(),
        create_time: Some(prost_types::Timestamp {
            seconds: row.create_time,
            nanos: 0,
        }),
    }
}

fn principal_proto(row: &PrincipalRow) -> Result<pb::Principal> {
    let kind = match row.kind {
        PrincipalKind::User => pb::PrincipalKind::User,
        PrincipalKind::ServiceAccount => pb::PrincipalKind::ServiceAccount,
    };
    Ok(pb::Principal {
        name: format!("tenants/{}/principals/{}", row.tenant, row.id),
        kind: kind as i32,
        roles: stored_roles(&row.roles)?
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect(),
        scopes: scope_names(&row.scopes),
        effective_scopes: effective_scopes(row)?.names(),
        create_time: Some(prost_types::Timestamp {
            seconds: row.create_time,
            nanos: 0,
        }),
    })
}

fn token_proto(tokens: Tokens) -> pb::TokenResponse {
    pb::TokenResponse {
        access_token: tokens.access_token,
        token_type: "Bearer".into(),
        expires_in: tokens.expires_in,
        refresh_token: tokens.refresh_token.expose_secret().to_owned(),
        refresh_expires_in: tokens.refresh_expires_in,
        scope: tokens.scope,
    }
}

/// A stored space-separated scope list as a `repeated string` field.
fn scope_names(stored: &str) -> Vec<String> {
    stored.split_ascii_whitespace().map(str::to_owned).collect()
}

/// A `google.protobuf.Duration` of whole, non-negative seconds.
fn whole_seconds(
    field: &'static str,
    duration: Option<&prost_types::Duration>,
) -> Result<Option<Duration>> {
    let Some(duration) = duration else {
        return Ok(None);
    };
    if duration.nanos != 0 {
        return Err(Error::invalid(field, "must be whole seconds"));
    }
    u64::try_from(duration.seconds)
        .map(|seconds| Some(Duration::from_secs(seconds)))
        .map_err(|_| Error::invalid(field, "must not be negative"))
}

/// The position a page token stands for, refusing a token of another list.
fn page_position(cursor: &Cursor, token: &str) -> Result<Option<String>> {
    cursor
        .position(token)
        .map_err(|why| Error::invalid("page_token", why))
}
