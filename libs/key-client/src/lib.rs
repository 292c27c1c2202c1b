//! The one key-service client of Coffer's services (credential-service and auth-service).
//!
//! [`KeyClient`] wraps the generated client with the calls the services make, and turns every
//! key-service status into a typed [`Error`] using the `google.rpc.ErrorInfo` reason
//! key-service attaches, so a caller can tell a key that is gone from an outage:
//!
//! | key-service answer | [`Error`] | what the service's caller gets ([`Error::to_status`]) |
//! |---|---|---|
//! | UNAVAILABLE, DEADLINE_EXCEEDED, a transport failure | `Unavailable` | UNAVAILABLE: retry later |
//! | FAILED_PRECONDITION (`KEY_DESTROYED`, `DELETION_PENDING`, `VERSION_RETIRED`, ...) | `KeyState` | FAILED_PRECONDITION naming the state, same reason: retrying will not help |
//! | NOT_FOUND | `KeyNotFound` | FAILED_PRECONDITION, `KEY_NOT_FOUND` |
//! | INVALID_ARGUMENT with `UNDECRYPTABLE` | `Undecryptable` | DATA_LOSS: stored data does not authenticate |
//! | DATA_LOSS | `DataLoss` | DATA_LOSS |
//! | PERMISSION_DENIED, UNAUTHENTICATED | `Refused` | INTERNAL, and an ERROR log for the operator: key-service's authorization table does not let this service in (a misconfiguration, not an outage) |
//! | anything else | `Rejected` | INTERNAL (a request this service should not have made) |
//!
//! [`wrapped`] holds the one "make a data key once, store it wrapped, unwrap it on start"
//! procedure both services use for their audit keys.

pub mod wrapped;

use std::collections::HashMap;

use coffer_crypto::SecretBytes;
use coffer_proto::pb;
use coffer_proto::pb::key_service_client::KeyServiceClient;
use coffer_server::status::{self, reasons};
use coffer_server::throttle::Throttle;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// An encryption context: the map key-service binds into the AES-GCM AAD.
pub type Context = HashMap<String, String>;

/// A key-service failure, typed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// key-service cannot be reached or is overloaded: retry later.
    #[error("key-service unavailable")]
    Unavailable(#[source] Status),
    /// The key's state forbids the operation: destroyed, pending deletion, a retired
    /// version. `reason` is key-service's ErrorInfo reason.
    #[error("the key cannot be used: {message}")]
    KeyState {
        /// key-service's reason (`KEY_DESTROYED`, `DELETION_PENDING`, `VERSION_RETIRED`, ...).
        reason: String,
        /// key-service's message (names the key and its state; no secret).
        message: String,
    },
    /// The key does not exist.
    #[error("the key does not exist")]
    KeyNotFound,
    /// The ciphertext does not decrypt with this key and context.
    #[error("the ciphertext does not decrypt with this key and context")]
    Undecryptable,
    /// key-service's stored key material fails its integrity check.
    #[error("key-service reports stored key material that fails its integrity check")]
    DataLoss(#[source] Status),
    /// key-service refused this service's identity: its authorization table does not allow
    /// this call (a misconfiguration).
    #[error("key-service refused this service's identity")]
    Refused(#[source] Status),
    /// key-service rejected the request (a bug in the calling service).
    #[error("key-service rejected the request")]
    Rejected(#[source] Status),
}

impl From<Status> for Error {
    fn from(status: Status) -> Self {
        match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                Self::Unavailable(status)
            }
            // A transport failure below gRPC (connection refused, TLS) surfaces as UNKNOWN
            // without an ErrorInfo: key-service itself always attaches one.
            Code::Unknown if status::reason(&status).is_none() => Self::Unavailable(status),
            Code::FailedPrecondition => Self::KeyState {
                reason: status::reason(&status).unwrap_or_else(|| "FAILED_PRECONDITION".to_owned()),
                message: status.message().to_owned(),
            },
            Code::NotFound => Self::KeyNotFound,
            Code::InvalidArgument
                if status::reason(&status).as_deref() == Some("UNDECRYPTABLE") =>
            {
                Self::Undecryptable
            }
            Code::DataLoss => Self::DataLoss(status),
            Code::PermissionDenied | Code::Unauthenticated => Self::Refused(status),
            _ => Self::Rejected(status),
        }
    }
}

impl Error {
    /// Whether the failure is key-service being unavailable (the only case worth retrying).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// The status a service answers its own caller with, in the service's `domain`, logging
    /// what the operator needs (see the crate documentation for the table). An outage or a
    /// refusal fails every call: those lines are written at most once per
    /// [`OUTAGE_LOG_INTERVAL`], with the number left out.
    pub fn to_status(&self, domain: &'static str) -> Status {
        match self {
            Self::Unavailable(cause) => {
                if let Some(suppressed) = UNAVAILABLE_LOG.admit() {
                    tracing::error!(code = ?cause.code(), suppressed, "key-service unavailable");
                }
                status::with_reason(
                    Code::Unavailable,
                    "key-service is unavailable; retry later",
                    domain,
                    reasons::UNAVAILABLE,
                )
            }
            Self::KeyState { reason, message } => {
                tracing::info!(reason, message, "key-service refused a key in its state");
                status::with_reason(
                    Code::FailedPrecondition,
                    format!("the tenant's encryption key cannot be used: {message}"),
                    domain,
                    known_reason(reason),
                )
            }
            Self::KeyNotFound => status::with_reason(
                Code::FailedPrecondition,
                "the tenant's encryption key does not exist",
                domain,
                "KEY_NOT_FOUND",
            ),
            Self::Undecryptable | Self::DataLoss(_) => {
                tracing::error!(error = %self, "stored data fails its integrity check");
                status::with_reason(
                    Code::DataLoss,
                    "stored data fails its integrity check",
                    domain,
                    reasons::DATA_LOSS,
                )
            }
            Self::Refused(cause) => {
                if let Some(suppressed) = REFUSED_LOG.admit() {
                    tracing::error!(
                        code = ?cause.code(),
                        suppressed,
                        "key-service refused this service's identity: check key-service's \
                         authorization table (COFFER_KEY_SERVICE__AUTHZ) and this service's \
                         certificate"
                    );
                }
                status::with_reason(Code::Internal, "internal error", domain, reasons::INTERNAL)
            }
            Self::Rejected(cause) => {
                tracing::error!(code = ?cause.code(), message = cause.message(), "key-service rejected a request");
                status::with_reason(Code::Internal, "internal error", domain, reasons::INTERNAL)
            }
        }
    }
}

/// key-service's state reasons passed through as they are; anything unexpected is
/// FAILED_PRECONDITION (the reason must be a `&'static str`, and an unknown one is not
/// echoed from another service).
fn known_reason(reason: &str) -> &'static str {
    reasons::key::ALL
        .iter()
        .find(|known| **known == reason)
        .copied()
        .unwrap_or("FAILED_PRECONDITION")
}

/// At most one log line per this interval about key-service being down, or refusing.
pub const OUTAGE_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
static UNAVAILABLE_LOG: Throttle = Throttle::new(OUTAGE_LOG_INTERVAL);
static REFUSED_LOG: Throttle = Throttle::new(OUTAGE_LOG_INTERVAL);

/// `Result` with the key-client [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A data key: its plaintext (zeroized on drop) and its wrapped form.
#[derive(Debug)]
pub struct DataKey {
    /// The 256-bit key.
    pub plaintext: SecretBytes,
    /// The key wrapped under the key-service key.
    pub wrapped: Vec<u8>,
    /// The key-service key version that wrapped it.
    pub key_version: u32,
}

/// An answer of ListKeyChanges.
#[derive(Debug)]
pub struct KeyChanges {
    /// The changed keys as they are now, oldest change first.
    pub keys: Vec<pb::Key>,
    /// key-service's clock when it answered, unix seconds.
    pub server_time: i64,
    /// More changes follow (ask again from the last key's `update_time`).
    pub truncated: bool,
}

/// A ciphertext as key-service takes it.
#[derive(Debug, Clone, Copy)]
pub enum Ciphertext<'a> {
    /// The binary envelope.
    Binary(&'a [u8]),
    /// The text form `coffer:v{N}:{base64}`.
    Text(&'a str),
}

/// The key-service client.
#[derive(Debug, Clone)]
pub struct KeyClient {
    inner: KeyServiceClient<Channel>,
}

impl KeyClient {
    /// A client over `channel` (an mTLS channel to key-service, from
    /// [`coffer_server::upstream::Upstream::connect`]).
    pub fn new(channel: Channel) -> Self {
        Self {
            inner: KeyServiceClient::new(channel),
        }
    }

    /// Creates the key `name` unless it exists; whether it was created.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn ensure_key(&self, name: &str, deletion_allowed: bool) -> Result<bool> {
        let (parent, key_id) = name.split_once("/keys/").ok_or_else(|| {
            Error::Rejected(Status::invalid_argument("not a tenants/{t}/keys/{k} name"))
        })?;
        let created = self
            .inner
            .clone()
            .create_key(pb::CreateKeyRequest {
                parent: parent.to_owned(),
                key_id: key_id.to_owned(),
                key: Some(pb::Key {
                    deletion_allowed,
                    ..pb::Key::default()
                }),
            })
            .await;
        match created {
            Ok(_) => Ok(true),
            Err(status) if status.code() == Code::AlreadyExists => Ok(false),
            Err(status) => Err(status.into()),
        }
    }

    /// A fresh data key under `name`, bound to `context`.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn generate_data_key(&self, name: &str, context: Context) -> Result<DataKey> {
        let response = self
            .inner
            .clone()
            .generate_data_key(pb::GenerateDataKeyRequest {
                name: name.to_owned(),
                encryption_context: context,
                wrapped_only: false,
            })
            .await?
            .into_inner();
        Ok(DataKey {
            plaintext: SecretBytes::new(response.plaintext),
            wrapped: response.ciphertext,
            key_version: response.key_version,
        })
    }

    /// Encrypts `plaintext` under `name`'s primary version; the text form of the ciphertext.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn encrypt_text(
        &self,
        name: &str,
        plaintext: &[u8],
        context: Context,
    ) -> Result<String> {
        let response = self
            .inner
            .clone()
            .encrypt(pb::EncryptRequest {
                name: name.to_owned(),
                plaintext: plaintext.to_vec(),
                encryption_context: context,
                key_version: None,
            })
            .await?;
        Ok(response.into_inner().ciphertext_text)
    }

    /// Decrypts `ciphertext` under `name` and `context`.
    ///
    /// # Errors
    /// [`Error::Undecryptable`] if it does not authenticate; [`Error`].
    pub async fn decrypt(
        &self,
        name: &str,
        ciphertext: Ciphertext<'_>,
        context: Context,
    ) -> Result<SecretBytes> {
        let input = match ciphertext {
            Ciphertext::Binary(bytes) => pb::decrypt_request::Input::Ciphertext(bytes.to_vec()),
            Ciphertext::Text(text) => pb::decrypt_request::Input::CiphertextText(text.to_owned()),
        };
        let response = self
            .inner
            .clone()
            .decrypt(pb::DecryptRequest {
                name: name.to_owned(),
                input: Some(input),
                encryption_context: context,
            })
            .await?;
        Ok(SecretBytes::new(response.into_inner().plaintext))
    }

    /// The primary version of `name`, or `None` if the key does not exist.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn primary_version(&self, name: &str) -> Result<Option<u32>> {
        let key = self
            .inner
            .clone()
            .get_key(pb::GetKeyRequest {
                name: name.to_owned(),
            })
            .await;
        match key {
            Ok(key) => Ok(Some(key.into_inner().primary_version)),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(status.into()),
        }
    }

    /// Re-wraps each `(ciphertext, context)` under `name`'s primary version without
    /// unwrapping it here: per item, the new ciphertext and its version, or why not.
    ///
    /// # Errors
    /// [`Error`] when the batch as a whole fails.
    pub async fn batch_rewrap(
        &self,
        name: &str,
        items: Vec<(Vec<u8>, Context)>,
    ) -> Result<Vec<Result<(Vec<u8>, u32)>>> {
        let request = pb::BatchRewrapRequest {
            name: name.to_owned(),
            items: items
                .into_iter()
                .map(|(ciphertext, encryption_context)| pb::BatchItem {
                    ciphertext,
                    encryption_context,
                })
                .collect(),
        };
        let results = self.inner.clone().batch_rewrap(request).await?;
        Ok(results
            .into_inner()
            .results
            .into_iter()
            .map(|result| match result.result {
                Some(pb::batch_rewrap_result::Result::Ok(ok)) => {
                    Ok((ok.ciphertext, ok.key_version))
                }
                Some(pb::batch_rewrap_result::Result::Error(error)) => {
                    Err(Error::from(status::from_rpc_status(&error)))
                }
                None => Err(Error::Rejected(Status::internal("empty batch result"))),
            })
            .collect())
    }

    /// The keys changed at or after `since` (unix seconds), for cache invalidation.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn list_key_changes(&self, since: i64) -> Result<KeyChanges> {
        let response = self
            .inner
            .clone()
            .list_key_changes(pb::ListKeyChangesRequest {
                since_time: Some(prost_types::Timestamp {
                    seconds: since,
                    nanos: 0,
                }),
            })
            .await?
            .into_inner();
        Ok(KeyChanges {
            server_time: response.server_time.map_or(0, |t| t.seconds),
            keys: response.keys,
            truncated: response.truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_typed_errors() {
        let destroyed = status::with_reason(
            Code::FailedPrecondition,
            "key k is destroyed",
            "coffer.v1.KeyService",
            "KEY_DESTROYED",
        );
        match Error::from(destroyed) {
            Error::KeyState { reason, .. } => assert_eq!(reason, "KEY_DESTROYED"),
            other => panic!("{other:?}"),
        }
        assert!(Error::from(Status::unavailable("down")).is_unavailable());
        assert!(Error::from(Status::unknown("transport error")).is_unavailable());
        assert!(matches!(
            Error::from(Status::permission_denied("no")),
            Error::Refused(_)
        ));
        let undecryptable = status::invalid_argument(
            "ciphertext",
            "does not decrypt",
            "coffer.v1.KeyService",
            "UNDECRYPTABLE",
        );
        assert!(matches!(Error::from(undecryptable), Error::Undecryptable));
        assert!(matches!(
            Error::from(Status::invalid_argument("bad name")),
            Error::Rejected(_)
        ));
    }

    #[test]
    fn only_an_outage_is_unavailable_to_the_caller() {
        let domain = "coffer.v1.Test";
        let state = Error::KeyState {
            reason: "KEY_DESTROYED".into(),
            message: "key k is destroyed".into(),
        }
        .to_status(domain);
        assert_eq!(state.code(), Code::FailedPrecondition);
        assert_eq!(status::reason(&state).as_deref(), Some("KEY_DESTROYED"));
        let odd = Error::KeyState {
            reason: "SOMETHING_NEW".into(),
            message: "m".into(),
        }
        .to_status(domain);
        assert_eq!(status::reason(&odd).as_deref(), Some("FAILED_PRECONDITION"));
        assert_eq!(
            Error::Refused(Status::permission_denied("x"))
                .to_status(domain)
                .code(),
            Code::Internal
        );
        assert_eq!(
            Error::Undecryptable.to_status(domain).code(),
            Code::DataLoss
        );
        assert_eq!(
            Error::Unavailable(Status::unavailable("x"))
                .to_status(domain)
                .code(),
            Code::Unavailable
        );
    }
}
