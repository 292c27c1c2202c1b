//! The OAuth RPCs' messages, to and from the operations of [`crate::ops::oauth`]. The caller
//! is already authorized (the gateway or an operator); see `api.rs`.

use coffer_authn::Scopes;
use coffer_proto::pb;
use secrecy::SecretString;

use crate::ops::Auth;
use crate::ops::oauth::authorize::{AuthorizationRequest, ConsentView, SignedIn, Step};
use crate::ops::oauth::clients::{AuthMethod, NewClient, Presented, Registration};
use crate::ops::oauth::token::TokenRequest;
use crate::source::Source;
use crate::store::ClientRow;
use crate::{Error, Result};

pub(crate) async fn register_client(
    auth: &Auth,
    request: pb::RegisterClientRequest,
    source: &Source,
) -> Result<pb::OAuthClient> {
    let row = auth
        .register_client(
            Registration {
                redirect_uris: request.redirect_uris,
                client_name: request.client_name,
                grant_types: request.grant_types,
                response_types: request.response_types,
                token_endpoint_auth_method: request.token_endpoint_auth_method,
                application_type: request.application_type,
            },
            source,
        )
        .await?;
    Ok(client_proto(&row))
}

pub(crate) async fn create_client(
    auth: &Auth,
    request: pb::CreateClientRequest,
) -> Result<pb::CreateClientResponse> {
    use pb::TokenEndpointAuthMethod as Method;
    let auth_method = match Method::try_from(request.token_endpoint_auth_method) {
        Ok(Method::Unspecified) => None,
        Ok(Method::None) => Some(AuthMethod::None),
        Ok(Method::ClientSecretBasic) => Some(AuthMethod::SecretBasic),
        Ok(Method::ClientSecretPost) => Some(AuthMethod::SecretPost),
        Ok(Method::PrivateKeyJwt) => Some(AuthMethod::PrivateKeyJwt),
        Err(_) => {
            return Err(Error::invalid(
                "token_endpoint_auth_method",
                "unknown method",
            ));
        }
    };
    let principal = if request.principal.is_empty() {
        None
    } else {
        let name = crate::ids::PrincipalName::parse("principal", &request.principal)?;
        Some((name.tenant().to_string(), name.id().to_owned()))
    };
    let scopes = Scopes::parse_list(&request.scopes)
        .map_err(|unknown| Error::invalid("scopes", format!("unknown scope {unknown}")))?;
    let (row, secret) = auth
        .create_client(NewClient {
            client_name: request.client_name,
            redirect_uris: request.redirect_uris,
            grant_types: request.grant_types,
            auth_method,
            resource: (!request.resource_server.is_empty()).then_some(request.resource_server),
            principal,
            scopes,
            jwks: (!request.jwks.is_empty()).then_some(request.jwks),
        })
        .await?;
    Ok(pb::CreateClientResponse {
        client: Some(client_proto(&row)),
        client_secret: secret
            .map(|s| secrecy::ExposeSecret::expose_secret(&s).to_owned())
            .unwrap_or_default(),
    })
}

pub(crate) async fn start_authorization(
    auth: &Auth,
    request: pb::StartAuthorizationRequest,
) -> Result<pb::AuthorizationStep> {
    let session = (!request.session.is_empty()).then(|| SecretString::from(request.session));
    let step = auth
        .start_authorization(
            AuthorizationRequest {
                response_type: request.response_type,
                client_id: request.client_id,
                redirect_uri: request.redirect_uri,
                scope: request.scope,
                state: request.state,
                code_challenge: request.code_challenge,
                code_challenge_method: request.code_challenge_method,
                resource: request.resource,
            },
            session.as_ref(),
        )
        .await?;
    Ok(step_proto(step))
}

pub(crate) async fn sign_in(
    auth: &Auth,
    request: pb::SignInRequest,
    source: &Source,
) -> Result<pb::SignInResponse> {
    // Malformed ids cannot match anyone: the same answer as a wrong password.
    let (Ok(tenant), Ok(username)) = (
        crate::ids::TenantId::parse("tenant_id", &request.tenant_id),
        coffer_server::names::parse_id("username", &request.username),
    ) else {
        return Err(Error::unauthenticated("malformed tenant or username"));
    };
    let signed_in = auth
        .sign_in(
            &SecretString::from(request.request),
            tenant.as_str(),
            &username,
            SecretString::from(request.password),
            source,
        )
        .await?;
    Ok(signed_in_proto(signed_in))
}

pub(crate) async fn verify_second_factor(
    auth: &Auth,
    request: pb::VerifySecondFactorRequest,
    source: &Source,
) -> Result<pb::SignInResponse> {
    let signed_in = auth
        .verify_second_factor(
            &SecretString::from(request.request),
            &SecretString::from(request.code),
            source,
        )
        .await?;
    Ok(signed_in_proto(signed_in))
}

fn signed_in_proto(signed_in: SignedIn) -> pb::SignInResponse {
    pb::SignInResponse {
        session: signed_in
            .session
            .map(|session| secrecy::ExposeSecret::expose_secret(&session).to_owned())
            .unwrap_or_default(),
        session_expires_in: signed_in.expires_in,
        step: Some(step_proto(signed_in.step)),
    }
}

pub(crate) async fn finish_authorization(
    auth: &Auth,
    request: pb::FinishAuthorizationRequest,
) -> Result<pb::AuthorizationStep> {
    let step = auth
        .finish_authorization(
            &SecretString::from(request.request),
            &SecretString::from(request.session),
            request.approve,
        )
        .await?;
    Ok(step_proto(step))
}

pub(crate) async fn exchange_token(
    auth: &Auth,
    request: pb::ExchangeTokenRequest,
) -> Result<pb::OAuthTokenResponse> {
    let presented = Presented {
        client_id: request.client_id,
        client_secret: SecretString::from(request.client_secret),
        basic: request.basic_auth,
        assertion_type: request.client_assertion_type,
        assertion: SecretString::from(request.client_assertion),
    };
    let issue = auth
        .exchange_token(
            &presented,
            TokenRequest {
                grant_type: request.grant_type,
                code: SecretString::from(request.code),
                redirect_uri: request.redirect_uri,
                code_verifier: SecretString::from(request.code_verifier),
                refresh_token: SecretString::from(request.refresh_token),
                scope: request.scope,
                resource: request.resource,
            },
        )
        .await?;
    Ok(pb::OAuthTokenResponse {
        access_token: issue.access_token,
        token_type: "Bearer".into(),
        expires_in: issue.expires_in,
        refresh_token: issue
            .refresh_token
            .map(|t| secrecy::ExposeSecret::expose_secret(&t).to_owned())
            .unwrap_or_default(),
        scope: issue.scope,
    })
}

pub(crate) async fn revoke_client_token(
    auth: &Auth,
    request: pb::RevokeClientTokenRequest,
) -> Result<()> {
    let presented = Presented {
        client_id: request.client_id,
        client_secret: SecretString::from(request.client_secret),
        basic: request.basic_auth,
        assertion_type: request.client_assertion_type,
        assertion: SecretString::from(request.client_assertion),
    };
    auth.revoke_client_token(&presented, &SecretString::from(request.token))
        .await
}

pub(crate) async fn introspect_client_token(
    auth: &Auth,
    request: pb::IntrospectClientTokenRequest,
) -> Result<pb::IntrospectResponse> {
    let presented = Presented {
        client_id: request.client_id,
        client_secret: SecretString::from(request.client_secret),
        basic: request.basic_auth,
        assertion_type: request.client_assertion_type,
        assertion: SecretString::from(request.client_assertion),
    };
    let claims = auth
        .introspect_for_resource_server(&presented, &SecretString::from(request.token))
        .await?;
    Ok(match claims {
        None => pb::IntrospectResponse::default(),
        Some(claims) => pb::IntrospectResponse {
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
    })
}

pub(crate) fn grant_proto(
    tenant: &str,
    principal: &str,
    grant: crate::ops::oauth::grants::Grant,
) -> pb::Grant {
    pb::Grant {
        name: format!(
            "tenants/{tenant}/principals/{principal}/grants/{}",
            grant.id
        ),
        client_id: grant.consent.client_id,
        client_name: grant.client_name,
        resource: grant.consent.resource,
        scopes: grant
            .consent
            .scope
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect(),
        offline: grant.consent.offline,
        create_time: Some(prost_types::Timestamp {
            seconds: grant.consent.create_time,
            nanos: 0,
        }),
    }
}

fn client_proto(row: &ClientRow) -> pb::OAuthClient {
    use pb::TokenEndpointAuthMethod as Method;
    let method = match AuthMethod::parse(&row.auth_method) {
        Some(AuthMethod::None) => Method::None,
        Some(AuthMethod::SecretBasic) => Method::ClientSecretBasic,
        Some(AuthMethod::SecretPost) => Method::ClientSecretPost,
        Some(AuthMethod::PrivateKeyJwt) => Method::PrivateKeyJwt,
        None => Method::Unspecified,
    };
    pb::OAuthClient {
        client_id: row.client_id.clone(),
        client_name: row.client_name.clone(),
        redirect_uris: row.redirect_uris.clone(),
        grant_types: row
            .grant_types
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect(),
        token_endpoint_auth_method: method.into(),
        application_type: row.application_type.clone(),
        scope: row.scope.clone(),
        create_time: Some(prost_types::Timestamp {
            seconds: row.create_time,
            nanos: 0,
        }),
        tenant_id: row.tenant.clone().unwrap_or_default(),
        principal_id: row.principal_id.clone().unwrap_or_default(),
        resource_server: row.resource.clone().unwrap_or_default(),
    }
}

fn step_proto(step: Step) -> pb::AuthorizationStep {
    pb::AuthorizationStep {
        step: Some(match step {
            Step::Redirect(url) => pb::authorization_step::Step::Redirect(url),
            Step::Consent(view) => pb::authorization_step::Step::Consent(consent_proto(view)),
            Step::SecondFactor(view) => {
                let (tenant, id) = view.principal;
                pb::authorization_step::Step::SecondFactor(pb::SecondFactor {
                    request: view.request,
                    client_name: view.client_name,
                    principal: format!("tenants/{tenant}/principals/{id}"),
                    redirect_origin: origin(&view.redirect_uri),
                })
            }
        }),
    }
}

/// A URI's origin (`scheme://host[:port]`), or empty.
fn origin(uri: &str) -> String {
    url::Url::parse(uri)
        .map(|url| url.origin().ascii_serialization())
        .unwrap_or_default()
}

fn consent_proto(view: ConsentView) -> pb::Consent {
    let redirect = url::Url::parse(&view.redirect_uri).ok();
    let mut scopes: Vec<pb::ScopeDescription> = view
        .scopes
        .iter()
        .map(|scope| pb::ScopeDescription {
            scope: scope.as_str().to_owned(),
            description: scope.description().to_owned(),
        })
        .collect();
    if view.offline {
        scopes.push(pb::ScopeDescription {
            scope: crate::ops::oauth::OFFLINE_ACCESS.to_owned(),
            description: "Stay connected: renew access without asking you again".to_owned(),
        });
    }
    pb::Consent {
        request: view.request,
        client_name: view.client_name,
        client_id: view.client_id,
        redirect_host: redirect
            .as_ref()
            .and_then(|url| url.host_str().map(str::to_owned))
            .unwrap_or_default(),
        redirect_origin: redirect
            .map(|url| url.origin().ascii_serialization())
            .unwrap_or_default(),
        scopes,
        resource: view.resource,
        signed_in: view.principal.is_some(),
        principal: view
            .principal
            .map(|(tenant, id)| format!("tenants/{tenant}/principals/{id}"))
            .unwrap_or_default(),
    }
}
