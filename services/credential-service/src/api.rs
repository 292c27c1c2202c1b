//! The tonic service: authenticate the bearer, check tenant and scope, parse the request, call
//! the operation, map the result (masking every value on the way out, except for Reveal).

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use coffer_authn::Scope;
use coffer_authn::authenticator::Authenticator;
use coffer_crypto::mask::mask;
use coffer_proto::pb;
use coffer_proto::pb::credential_service_server::CredentialService;
use coffer_server::paging::Cursor;
use tonic::{Request, Response, Status};

use crate::authz::Gate;
use crate::content::{Content, Opaque};
use crate::env::{Env, check_name};
use crate::names::{CredentialName, validate_new};
use crate::ops::audit::ChainCheck;
use crate::ops::sweep::Progress;
use crate::ops::{Credentials, credential_name};
use crate::sealing::SealingKeys;
use crate::store::{AuditEvent, AuditHead, CredentialRow};
use crate::{Error, Result};

/// The `coffer.v1.CredentialService` implementation.
pub(crate) struct CredentialServiceApi {
    credentials: Arc<Credentials>,
    gate: Gate,
    sealing: Arc<SealingKeys>,
}

impl CredentialServiceApi {
    /// Serves `credentials`, authenticating bearers with `authenticator`.
    pub(crate) fn new(
        credentials: Arc<Credentials>,
        authenticator: Arc<Authenticator>,
        sealing: Arc<SealingKeys>,
    ) -> Self {
        Self {
            gate: Gate::new(authenticator, Arc::clone(&credentials)),
            credentials,
            sealing,
        }
    }
}

type Reply<T> = std::result::Result<Response<T>, Status>;

#[tonic::async_trait]
impl CredentialService for CredentialServiceApi {
    async fn create_credential(
        &self,
        request: Request<pb::CreateCredentialRequest>,
    ) -> Reply<pb::Credential> {
        let (tenant, actor) = self
            .gate
            .parent(&request, &request.get_ref().parent, Scope::McpWrite)
            .await?;
        let mut request = request.into_inner();
        let sealed = std::mem::take(&mut request.sealed_env);
        request.env = self.sealing.open_into(
            tenant.as_str(),
            "sealed_env",
            sealed,
            std::mem::take(&mut request.env),
        )?;
        let new = validate_new(tenant.to_string(), request, self.credentials.now())?;
        let (row, content) = self.credentials.create(new, &actor).await?;
        Ok(Response::new(credential_proto(&row, &content)?))
    }

    async fn get_credential(
        &self,
        request: Request<pb::GetCredentialRequest>,
    ) -> Reply<pb::Credential> {
        let (name, actor) = self
            .gate
            .credential(&request, &request.get_ref().name, Scope::McpRead)
            .await?;
        let (row, content) = self.credentials.get(&name, &actor).await?;
        Ok(Response::new(credential_proto(&row, &content)?))
    }

    async fn list_credentials(
        &self,
        request: Request<pb::ListCredentialsRequest>,
    ) -> Reply<pb::ListCredentialsResponse> {
        let (tenant, actor) = self
            .gate
            .parent(&request, &request.get_ref().parent, Scope::McpRead)
            .await?;
        let request = request.into_inner();
        let page_size = page_size(request.page_size)?;
        let filter = (request.server_id.as_str(), request.template_id.as_str());
        let cursor = Cursor::new("ListCredentials", &tenant.name(), &[filter.0, filter.1]);
        let after = match cursor.position(&request.page_token) {
            Ok(Some(id)) => CredentialName::new(tenant.clone(), "page_token", &id)
                .map_err(Error::from)?
                .id()
                .to_owned(),
            Ok(None) => String::new(),
            Err(why) => return Err(Error::invalid("page_token", why).into()),
        };
        let (page, next) = self
            .credentials
            .list(tenant.as_str(), filter, page_size, &after, &actor)
            .await?;
        let next = next.map(|id| cursor.token(&id));
        Ok(Response::new(pb::ListCredentialsResponse {
            credentials: page
                .iter()
                .map(|(row, env)| credential_proto(row, env))
                .collect::<Result<_>>()?,
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn update_credential(
        &self,
        request: Request<pb::UpdateCredentialRequest>,
    ) -> Reply<pb::Credential> {
        let (name, actor) = self
            .gate
            .credential(&request, &request.get_ref().name, Scope::McpWrite)
            .await?;
        let request = request.into_inner();
        let (row, content) = if let Some(opaque) = request.set_opaque {
            let plain = request.set_env.is_empty()
                && request.set_sealed_env.is_empty()
                && request.unset_env.is_empty();
            if !plain {
                return Err(
                    Error::invalid("set_opaque", "cannot be combined with env changes").into(),
                );
            }
            let opaque = Opaque::parse("set_opaque", opaque.blob, opaque.metadata)?;
            self.credentials
                .replace_opaque(&name, request.row_version, opaque, &actor)
                .await?
        } else {
            let set = self.sealing.open_into(
                name.tenant().as_str(),
                "set_sealed_env",
                request.set_sealed_env,
                request.set_env,
            )?;
            let set = Env::parse("set_env", set)?;
            for unset in &request.unset_env {
                check_name("unset_env", unset)?;
            }
            self.credentials
                .update(&name, request.row_version, set, &request.unset_env, &actor)
                .await?
        };
        Ok(Response::new(credential_proto(&row, &content)?))
    }

    async fn delete_credential(
        &self,
        request: Request<pb::DeleteCredentialRequest>,
    ) -> Reply<pb::DeleteCredentialResponse> {
        let (name, actor) = self
            .gate
            .credential(&request, &request.get_ref().name, Scope::McpWrite)
            .await?;
        self.credentials.delete(&name, &actor).await?;
        Ok(Response::new(pb::DeleteCredentialResponse {}))
    }

    async fn reveal_credential(
        &self,
        request: Request<pb::RevealCredentialRequest>,
    ) -> Reply<pb::RevealCredentialResponse> {
        let (name, actor) = self
            .gate
            .credential(&request, &request.get_ref().name, Scope::CredentialReveal)
            .await?;
        let (row, env) = self.credentials.reveal(&name, "reveal", &actor).await?;
        Ok(Response::new(pb::RevealCredentialResponse {
            env: env.into_revealed(),
            row_version: u64::try_from(row.row_version).unwrap_or(0),
        }))
    }

    async fn validate_credential(
        &self,
        request: Request<pb::ValidateCredentialRequest>,
    ) -> Reply<pb::ValidateCredentialResponse> {
        let (name, actor) = self
            .gate
            .credential(&request, &request.get_ref().name, Scope::McpRead)
            .await?;
        let required = request.into_inner().required_keys;
        for key in &required {
            check_name("required_keys", key)?;
        }
        let missing = self.credentials.validate(&name, &required, &actor).await?;
        Ok(Response::new(pb::ValidateCredentialResponse {
            valid: missing.is_empty(),
            missing,
        }))
    }

    async fn get_sealing_key(
        &self,
        request: Request<pb::GetSealingKeyRequest>,
    ) -> Reply<pb::SealingKey> {
        let (tenant, _) = self
            .gate
            .parent(&request, &request.get_ref().parent, Scope::McpWrite)
            .await?;
        let key = self.sealing.current(tenant.as_str())?;
        Ok(Response::new(pb::SealingKey {
            kid: key.kid,
            alg: crate::sealing::ALG.to_owned(),
            public_key: STANDARD.encode(key.public_key),
            encoding: "base64".to_owned(),
            max_size_bytes: u32::try_from(crate::sealing::MAX_SIZE_BYTES).unwrap_or(u32::MAX),
            expires_at: Some(timestamp(key.expires_at)),
        }))
    }

    async fn hydrate_config(
        &self,
        request: Request<pb::HydrateConfigRequest>,
    ) -> Reply<pb::HydrateConfigResponse> {
        let (name, actor) = self
            .gate
            .credential(&request, &request.get_ref().name, Scope::CredentialReveal)
            .await?;
        let request = request.into_inner();
        // Every limit that does not need the values is checked before the reveal.
        let plan = crate::hydrate::Plan::parse(&request.base_config, &request.paths)?;
        for variable in plan.variables() {
            check_name("paths", variable)?;
        }
        let (_, env) = self.credentials.reveal(&name, "hydrate", &actor).await?;
        let config = plan.apply(&env)?;
        Ok(Response::new(pb::HydrateConfigResponse { config }))
    }

    async fn rewrap_credentials(
        &self,
        request: Request<pb::RewrapCredentialsRequest>,
    ) -> Reply<pb::RewrapProgress> {
        let (tenant, _) = self
            .gate
            .parent(&request, &request.get_ref().parent, Scope::OrgAdmin)
            .await?;
        let progress = self
            .credentials
            .rewrap(tenant.as_str(), request.get_ref().max_pages)
            .await?;
        Ok(Response::new(progress_proto(progress)))
    }

    async fn get_rewrap_progress(
        &self,
        request: Request<pb::GetRewrapProgressRequest>,
    ) -> Reply<pb::RewrapProgress> {
        let (tenant, _) = self
            .gate
            .parent(&request, &request.get_ref().parent, Scope::OrgRead)
            .await?;
        Ok(Response::new(progress_proto(
            self.credentials.rewrap_progress(tenant.as_str()).await?,
        )))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Reply<pb::ListAuditEventsResponse> {
        let (tenant, _) = self
            .gate
            .parent(&request, &request.get_ref().parent, Scope::OrgRead)
            .await?;
        let request = request.into_inner();
        let page_size = page_size(request.page_size)?;
        let cursor = Cursor::new("ListAuditEvents", &request.parent, &[]);
        let after = cursor
            .sequence(&request.page_token)
            .map_err(|why| Error::invalid("page_token", why))?;
        let rows = self
            .credentials
            .audit_events(tenant.as_str(), after, page_size + 1)
            .await?;
        let (events, next) = coffer_server::paging::split_page(rows, page_size, |e| {
            cursor.token(&e.sequence.to_string())
        });
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: events.iter().map(audit_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn verify_audit_chain(
        &self,
        request: Request<pb::VerifyAuditChainRequest>,
    ) -> Reply<pb::VerifyAuditChainResponse> {
        let (tenant, _) = self
            .gate
            .parent(&request, &request.get_ref().parent, Scope::OrgRead)
            .await?;
        let expected = request
            .into_inner()
            .expected_head
            .map(|head| parse_head(tenant.as_str(), head))
            .transpose()?;
        let ChainCheck {
            checked,
            first_broken,
            head,
        } = self
            .credentials
            .verify_chain(tenant.as_str(), expected.as_ref())
            .await?;
        if let Some(sequence) = first_broken {
            tracing::error!(tenant = tenant.as_str(), sequence, "audit chain broken");
        }
        Ok(Response::new(pb::VerifyAuditChainResponse {
            valid: first_broken.is_none(),
            events_checked: checked,
            first_broken_sequence: first_broken
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(0),
            head: head.map(|head| pb::AuditHead {
                sequence: u64::try_from(head.sequence).unwrap_or(0),
                link: head.link,
                mac: head.mac,
                time: Some(timestamp(head.time)),
            }),
        }))
    }
}

fn progress_proto(progress: Progress) -> pb::RewrapProgress {
    pb::RewrapProgress {
        target_version: progress.target_version,
        rewrapped: progress.rewrapped,
        remaining: progress.remaining,
        done: progress.remaining == 0,
        cursor: progress.cursor,
        failed: progress.failed,
    }
}

/// Parses a page size: 0 means the default; beyond the maximum is refused.
fn page_size(requested: u32) -> Result<u32> {
    coffer_server::paging::page_size(requested).map_err(|why| Error::invalid("page_size", why))
}

fn timestamp(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

fn credential_proto(row: &CredentialRow, content: &Content) -> Result<pb::Credential> {
    let (env, opaque) = match content {
        Content::Env(env) => (
            env.entries()
                .iter()
                .map(|(k, v)| (k.clone(), mask(v)))
                .collect(),
            None,
        ),
        Content::Opaque(opaque) => (
            HashMap::new(),
            Some(pb::OpaqueEntry {
                blob: opaque.blob.clone(),
                metadata: opaque.metadata.clone().into_iter().collect(),
            }),
        ),
    };
    Ok(pb::Credential {
        name: credential_name(&row.tenant, &row.id),
        server_id: row.server_id.clone(),
        template_id: row.template_id.clone(),
        server_name: row.server_name.clone(),
        env,
        configured_integrations: serde_json::from_str(&row.configured_integrations)
            .map_err(|_| Error::Corrupt("integrations"))?,
        created_by: row.created_by.clone(),
        create_time: Some(timestamp(row.create_time)),
        updated_by: row.updated_by.clone(),
        update_time: Some(timestamp(row.update_time)),
        expire_time: row.expire_time.map(timestamp),
        row_version: u64::try_from(row.row_version).unwrap_or(0),
        zero_knowledge: opaque.is_some(),
        opaque,
    })
}

/// An exported head as the caller sent it back.
fn parse_head(tenant: &str, head: pb::AuditHead) -> Result<AuditHead> {
    let parsed = coffer_crypto::audit::Head::parse(head.sequence, &head.link, &head.mac)
        .map_err(|why| Error::invalid("expected_head", why))?;
    Ok(AuditHead {
        tenant: tenant.to_owned(),
        sequence: parsed.sequence,
        link: parsed.link,
        mac: parsed.mac,
        time: head.time.map_or(0, |t| t.seconds),
    })
}

fn audit_proto(event: &AuditEvent) -> pb::AuditEvent {
    pb::AuditEvent {
        name: format!("tenants/{}/auditEvents/{}", event.tenant, event.sequence),
        sequence: u64::try_from(event.sequence).unwrap_or(0),
        time: Some(timestamp(event.time)),
        tenant: event.tenant.clone(),
        actor: event.actor.clone(),
        action: event.action.clone(),
        credential: event.credential.clone(),
        outcome: event.outcome.clone(),
        request_id: event.request_id.clone(),
        previous_hash: event.previous_hash.clone(),
        hash: event.hash.clone(),
    }
}
