//! The tonic service: authorize the caller, parse the request into validated types, call the
//! operation, map the result. Nothing else happens here.

use std::sync::Arc;

use coffer_proto::pb::key_service_server::KeyService;
use coffer_proto::pb::{self, batch_decrypt_result, batch_rewrap_result, decrypt_request};
use coffer_transport::SpiffeId;
use tonic::{Request, Response, Status};

use crate::authz::{Policy, Rpc, Target};
use crate::names::{EncryptionContext, KeyName, TenantId};
use crate::ops::{BatchInput, Decrypted, Kms, PolicyUpdate, Rewrapped};
use crate::store::{KeyRecord, KeyState};
use crate::{Error, Result};

/// Largest plaintext Encrypt accepts, in bytes.
pub(crate) const MAX_PLAINTEXT: usize = 64 * 1024;
/// Most items in one batch request.
pub(crate) const MAX_BATCH_ITEMS: usize = 1000;

/// The `coffer.v1.KeyService` implementation.
pub(crate) struct KeyServiceApi {
    kms: Arc<Kms>,
    authz: Policy,
    bearers: Option<Bearers>,
}

/// Forwarders and the authenticator that checks the bearers they pass on.
pub(crate) struct Bearers {
    /// The identities whose calls the forwarded bearer authorizes.
    pub(crate) forwarders: Vec<SpiffeId>,
    /// Connected on first use: auth-service starts after key-service.
    pub(crate) authenticator: coffer_authn::authenticator::Deferred,
}

impl KeyServiceApi {
    /// Serves `kms`, letting callers in according to `authz`, and the clients of `bearers`'
    /// forwarders by their bearer credential.
    pub(crate) fn new(kms: Arc<Kms>, authz: Policy, bearers: Option<Bearers>) -> Self {
        Self {
            kms,
            authz,
            bearers,
        }
    }

    /// Authorizes the call: a forwarder's by the bearer principal it passes on (its own
    /// identity grants nothing), anyone else's by the table. Returns the peer's identity.
    async fn authorize<T>(
        &self,
        request: &Request<T>,
        rpc: Rpc,
        target: Target<'_>,
    ) -> Result<SpiffeId> {
        let caller = SpiffeId::from_request(request).ok_or(Error::Unauthenticated)?;
        if let Some(bearers) = &self.bearers
            && bearers.forwarders.contains(&caller)
        {
            // Refused without asking auth-service, which may be down.
            if request.metadata().get("authorization").is_none() {
                return Err(coffer_authn::authenticator::Error::Missing.into());
            }
            let principal = bearers
                .authenticator
                .get()
                .await?
                .authenticate(request)
                .await?;
            self.authz.allows_principal(&principal, rpc, target)?;
            return Ok(caller);
        }
        if self.authz.allows(&caller, rpc, target) {
            Ok(caller)
        } else {
            Err(Error::PermissionDenied {
                caller: caller.to_string(),
                rpc: rpc.name(),
            })
        }
    }
}

type Reply<T> = std::result::Result<Response<T>, Status>;

/// A request's key `name` field.
fn key_name(name: &str) -> Result<KeyName> {
    Ok(KeyName::parse("name", name)?)
}

/// A request's `parent` field, `tenants/{tenant}`.
fn parent(parent: &str) -> Result<TenantId> {
    Ok(TenantId::from_name("parent", parent)?)
}

#[tonic::async_trait]
impl KeyService for KeyServiceApi {
    async fn create_key(&self, request: Request<pb::CreateKeyRequest>) -> Reply<pb::Key> {
        let tenant = parent(&request.get_ref().parent)?;
        let name =
            KeyName::new(tenant, "key_id", &request.get_ref().key_id).map_err(Error::from)?;
        self.authorize(&request, Rpc::CreateKey, Target::Key(&name))
            .await?;
        let deletion_allowed = request
            .into_inner()
            .key
            .is_some_and(|key| key.deletion_allowed);
        let record = self.kms.create_key(&name, deletion_allowed).await?;
        Ok(Response::new(key_proto(&record)))
    }

    async fn get_key(&self, request: Request<pb::GetKeyRequest>) -> Reply<pb::Key> {
        let name = key_name(&request.get_ref().name)?;
        self.authorize(&request, Rpc::GetKey, Target::Key(&name))
            .await?;
        Ok(Response::new(key_proto(&self.kms.get_key(&name).await?)))
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Reply<pb::ListKeysResponse> {
        let tenant = parent(&request.get_ref().parent)?;
        self.authorize(&request, Rpc::ListKeys, Target::Tenant(&tenant))
            .await?;
        let request = request.into_inner();
        let page_size = coffer_server::paging::page_size(request.page_size)
            .map_err(|why| Error::invalid("page_size", why))?;
        let (keys, next) = self
            .kms
            .list_keys(&tenant, page_size, &request.page_token)
            .await?;
        Ok(Response::new(pb::ListKeysResponse {
            keys: keys.iter().map(key_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn rotate_key(&self, request: Request<pb::RotateKeyRequest>) -> Reply<pb::Key> {
        let name = key_name(&request.get_ref().name)?;
        self.authorize(&request, Rpc::RotateKey, Target::Key(&name))
            .await?;
        Ok(Response::new(key_proto(&self.kms.rotate_key(&name).await?)))
    }

    async fn update_key_policy(
        &self,
        request: Request<pb::UpdateKeyPolicyRequest>,
    ) -> Reply<pb::Key> {
        let name = key_name(&request.get_ref().name)?;
        self.authorize(&request, Rpc::UpdateKeyPolicy, Target::Key(&name))
            .await?;
        let update = policy_update(request.into_inner())?;
        Ok(Response::new(key_proto(
            &self.kms.update_policy(&name, update).await?,
        )))
    }

    async fn disable_key(&self, request: Request<pb::DisableKeyRequest>) -> Reply<pb::Key> {
        let name = key_name(&request.get_ref().name)?;
        self.authorize(&request, Rpc::DisableKey, Target::Key(&name))
            .await?;
        Ok(Response::new(key_proto(
            &self.kms.set_disabled(&name, true).await?,
        )))
    }

    async fn enable_key(&self, request: Request<pb::EnableKeyRequest>) -> Reply<pb::Key> {
        let name = key_name(&request.get_ref().name)?;
        self.authorize(&request, Rpc::EnableKey, Target::Key(&name))
            .await?;
        Ok(Response::new(key_proto(
            &self.kms.set_disabled(&name, false).await?,
        )))
    }

    async fn generate_data_key(
        &self,
        request: Request<pb::GenerateDataKeyRequest>,
    ) -> Reply<pb::GenerateDataKeyResponse> {
        let name = key_name(&request.get_ref().name)?;
        self.authorize(&request, Rpc::GenerateDataKey, Target::Key(&name))
            .await?;
        let request = request.into_inner();
        let context = EncryptionContext::parse(request.encryption_context)?;
        let outcome = self
            .kms
            .generate_data_key(&name, &context, request.wrapped_only)
            .await?;
        Ok(Response::new(pb::GenerateDataKeyResponse {
            plaintext: outcome
                .plaintext
                .map(|key| key.expose_secret().to_vec())
                .unwrap_or_default(),
            ciphertext: outcome.ciphertext,
            key_version: outcome.key_version,
        }))
    }

    async fn encrypt(&self, request: Request<pb::EncryptRequest>) -> Reply<pb::EncryptResponse> {
        let name = key_name(&request.get_ref().name)?;
        self.authorize(&request, Rpc::Encrypt, Target::Key(&name))
            .await?;
        let request = request.into_inner();
        if request.plaintext.len() > MAX_PLAINTEXT {
            return Err(
                Error::invalid("plaintext", format!("at most {MAX_PLAINTEXT} bytes")).into(),
            );
        }
        let context = EncryptionContext::parse(request.encryption_context)?;
        let plaintext = coffer_crypto::SecretBytes::new(request.plaintext);
        let (ciphertext, key_version) = self
            .kms
            .encrypt(
                &name,
                &context,
                plaintext.expose_secret(),
                request.key_version,
            )
            .await?;
        let ciphertext_text = coffer_crypto::text::encode(&ciphertext).map_err(Error::Crypto)?;
        Ok(Response::new(pb::EncryptResponse {
            ciphertext,
            key_version,
            ciphertext_text,
        }))
    }

    async fn decrypt(&self, request: Request<pb::DecryptRequest>) -> Reply<pb::DecryptResponse> {
        let name = key_name(&request.get_ref().name)?;
        self.authorize(&request, Rpc::Decrypt, Target::Key(&name))
            .await?;
        let request = request.into_inner();
        let ciphertext = match request.input {
            Some(decrypt_request::Input::Ciphertext(bytes)) if !bytes.is_empty() => bytes,
            Some(decrypt_request::Input::CiphertextText(text)) if !text.is_empty() => {
                coffer_crypto::text::decode(&text)
                    .map_err(|e| Error::invalid("ciphertext_text", e.to_string()))?
            }
            _ => {
                return Err(Error::invalid(
                    "ciphertext",
                    "required: set ciphertext or ciphertext_text",
                )
                .into());
            }
        };
        let context = EncryptionContext::parse(request.encryption_context)?;
        let decrypted = self.kms.decrypt(&name, &context, &ciphertext).await?;
        Ok(Response::new(decrypt_proto(decrypted)))
    }

    async fn rewrap(&self, request: Request<pb::RewrapRequest>) -> Reply<pb::RewrapResponse> {
        let name = key_name(&request.get_ref().name)?;
        self.authorize(&request, Rpc::Rewrap, Target::Key(&name))
            .await?;
        let request = request.into_inner();
        let context = EncryptionContext::parse(request.encryption_context)?;
        let rewrapped = self
            .kms
            .rewrap(&name, &context, &request.ciphertext)
            .await?;
        Ok(Response::new(rewrap_proto(rewrapped)))
    }

    async fn batch_decrypt(
        &self,
        request: Request<pb::BatchDecryptRequest>,
    ) -> Reply<pb::BatchDecryptResponse> {
        let name = key_name(&request.get_ref().name)?;
        self.authorize(&request, Rpc::BatchDecrypt, Target::Key(&name))
            .await?;
        let request = request.into_inner();
        let items = batch_items(request.items)?;
        let results = self.kms.batch_decrypt(&name, items).await?;
        Ok(Response::new(pb::BatchDecryptResponse {
            results: results
                .into_iter()
                .map(|result| pb::BatchDecryptResult {
                    result: Some(match result {
                        Ok(decrypted) => batch_decrypt_result::Result::Ok(decrypt_proto(decrypted)),
                        Err(error) => batch_decrypt_result::Result::Error(item_error(error)),
                    }),
                })
                .collect(),
        }))
    }

    async fn batch_rewrap(
        &self,
        request: Request<pb::BatchRewrapRequest>,
    ) -> Reply<pb::BatchRewrapResponse> {
        let name = key_name(&request.get_ref().name)?;
        self.authorize(&request, Rpc::BatchRewrap, Target::Key(&name))
            .await?;
        let request = request.into_inner();
        let items = batch_items(request.items)?;
        let results = self.kms.batch_rewrap(&name, items).await?;
        Ok(Response::new(pb::BatchRewrapResponse {
            results: results
                .into_iter()
                .map(|result| pb::BatchRewrapResult {
                    result: Some(match result {
                        Ok(rewrapped) => batch_rewrap_result::Result::Ok(rewrap_proto(rewrapped)),
                        Err(error) => batch_rewrap_result::Result::Error(item_error(error)),
                    }),
                })
                .collect(),
        }))
    }

    async fn schedule_key_deletion(
        &self,
        request: Request<pb::ScheduleKeyDeletionRequest>,
    ) -> Reply<pb::Key> {
        let name = key_name(&request.get_ref().name)?;
        self.authorize(&request, Rpc::ScheduleKeyDeletion, Target::Key(&name))
            .await?;
        Ok(Response::new(key_proto(
            &self.kms.schedule_deletion(&name).await?,
        )))
    }

    async fn cancel_key_deletion(
        &self,
        request: Request<pb::CancelKeyDeletionRequest>,
    ) -> Reply<pb::Key> {
        let name = key_name(&request.get_ref().name)?;
        self.authorize(&request, Rpc::CancelKeyDeletion, Target::Key(&name))
            .await?;
        Ok(Response::new(key_proto(
            &self.kms.cancel_deletion(&name).await?,
        )))
    }

    async fn list_key_changes(
        &self,
        request: Request<pb::ListKeyChangesRequest>,
    ) -> Reply<pb::ListKeyChangesResponse> {
        let caller = SpiffeId::from_request(&request).ok_or(Error::Unauthenticated)?;
        if !self.authz.grants(&caller, Rpc::ListKeyChanges) {
            return Err(Error::PermissionDenied {
                caller: caller.to_string(),
                rpc: Rpc::ListKeyChanges.name(),
            }
            .into());
        }
        let since = request
            .get_ref()
            .since_time
            .as_ref()
            .map_or(0, |t| t.seconds.max(0));
        let (records, truncated, server_time) = self.kms.key_changes(since).await?;
        Ok(Response::new(pb::ListKeyChangesResponse {
            keys: records
                .iter()
                .filter(|record| {
                    self.authz
                        .allows(&caller, Rpc::ListKeyChanges, Target::Key(&record.name))
                })
                .map(key_proto)
                .collect(),
            server_time: Some(prost_types::Timestamp {
                seconds: server_time,
                nanos: 0,
            }),
            truncated,
        }))
    }

    async fn rotate_root_key(
        &self,
        request: Request<pb::RotateRootKeyRequest>,
    ) -> Reply<pb::RotateRootKeyResponse> {
        let caller = self
            .authorize(&request, Rpc::RotateRootKey, Target::Service)
            .await?;
        tracing::info!(%caller, "root key rotation requested");
        let (root_key_version, rewrapped_versions) = self.kms.rotate_root_key().await?;
        Ok(Response::new(pb::RotateRootKeyResponse {
            root_key_version,
            rewrapped_versions,
        }))
    }
}

/// Validates the item count, then each item on its own.
fn batch_items(items: Vec<pb::BatchItem>) -> Result<Vec<BatchInput>> {
    if items.is_empty() || items.len() > MAX_BATCH_ITEMS {
        return Err(Error::invalid(
            "items",
            format!("must hold 1 to {MAX_BATCH_ITEMS} items"),
        ));
    }
    Ok(items
        .into_iter()
        .map(|item| {
            Ok((
                EncryptionContext::parse(item.encryption_context)?,
                item.ciphertext,
            ))
        })
        .collect())
}

/// A per-item failure: the status (with its details) the item would have failed with on its
/// own.
fn item_error(error: Error) -> coffer_server::status::RpcStatus {
    coffer_server::status::to_rpc_status(&Status::from(error))
}

/// The fields of UpdateKeyPolicy: those the mask names (each must be set), or without a mask
/// those that are set.
fn policy_update(request: pb::UpdateKeyPolicyRequest) -> Result<PolicyUpdate> {
    let Some(mask) = request.update_mask.filter(|mask| !mask.paths.is_empty()) else {
        return Ok(PolicyUpdate {
            min_decryption_version: request.min_decryption_version,
            min_encryption_version: request.min_encryption_version,
            deletion_allowed: request.deletion_allowed,
            exact: false,
        });
    };
    let mut update = PolicyUpdate {
        min_decryption_version: None,
        min_encryption_version: None,
        deletion_allowed: None,
        exact: true,
    };
    for path in &mask.paths {
        let unset = |field: &'static str| Error::invalid(field, "named in update_mask but not set");
        match path.as_str() {
            "min_decryption_version" => {
                update.min_decryption_version = Some(
                    request
                        .min_decryption_version
                        .ok_or_else(|| unset("min_decryption_version"))?,
                );
            }
            "min_encryption_version" => {
                update.min_encryption_version = Some(
                    request
                        .min_encryption_version
                        .ok_or_else(|| unset("min_encryption_version"))?,
                );
            }
            "deletion_allowed" => {
                update.deletion_allowed = Some(
                    request
                        .deletion_allowed
                        .ok_or_else(|| unset("deletion_allowed"))?,
                );
            }
            _ => {
                return Err(Error::invalid(
                    "update_mask",
                    "may name only min_decryption_version, min_encryption_version and \
                     deletion_allowed",
                ));
            }
        }
    }
    Ok(update)
}

fn decrypt_proto(decrypted: Decrypted) -> pb::DecryptResponse {
    pb::DecryptResponse {
        plaintext: decrypted.plaintext.into_inner(),
        key_version: decrypted.key_version,
    }
}

fn rewrap_proto(rewrapped: Rewrapped) -> pb::RewrapResponse {
    pb::RewrapResponse {
        ciphertext: rewrapped.ciphertext,
        key_version: rewrapped.key_version,
        source_key_version: rewrapped.source_key_version,
    }
}

fn key_proto(record: &KeyRecord) -> pb::Key {
    let timestamp = |seconds: i64| prost_types::Timestamp { seconds, nanos: 0 };
    pb::Key {
        name: record.name.to_string(),
        primary_version: record.primary_version,
        min_decryption_version: record.min_decryption_version,
        min_encryption_version: record.min_encryption_version,
        deletion_allowed: record.deletion_allowed,
        state: match record.state {
            KeyState::Enabled if record.disabled => pb::KeyState::Disabled,
            KeyState::Enabled => pb::KeyState::Enabled,
            KeyState::PendingDeletion => pb::KeyState::PendingDeletion,
            KeyState::Destroyed => pb::KeyState::Destroyed,
        } as i32,
        create_time: Some(timestamp(record.create_time)),
        update_time: Some(timestamp(record.update_time)),
        destroy_time: record.destroy_time.map(timestamp),
    }
}
