//! The key-service's one error type and its one mapping to a gRPC status.
//!
//! Every status carries a `google.rpc.ErrorInfo` in the domain `coffer.v1.KeyService` whose
//! `reason` is one of [`reasons`] (stable: callers branch on it), and an INVALID_ARGUMENT also a
//! `google.rpc.BadRequest` naming the field.

use coffer_crypto as crypto;
use coffer_server::status::{self, Domain, reasons as common};
use coffer_transport as transport;
use tonic::{Code, Status};

/// The `ErrorInfo.domain` of every key-service error.
pub const DOMAIN: &str = "coffer.v1.KeyService";

/// The `ErrorInfo.reason` values key-service answers with.
pub mod reasons {
    pub use coffer_server::status::reasons::key::*;
    pub use coffer_server::status::reasons::*;
    /// The ciphertext does not decrypt with this key and encryption context.
    pub const UNDECRYPTABLE: &str = "UNDECRYPTABLE";
    /// The key is one of Coffer's own services' keys: a bearer principal may only read it.
    pub const RESERVED_KEY: &str = "RESERVED_KEY";
}

/// Everything that can go wrong in the key-service, at start-up or in a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is invalid: which field and the rule it breaks, never the value (so
    /// never secret input).
    #[error(transparent)]
    InvalidArgument(#[from] coffer_server::names::Invalid),
    /// The ciphertext does not decrypt with this key and context: malformed, tampered with, or
    /// made for another tenant, key or encryption context. Deliberately not more specific.
    #[error("ciphertext does not decrypt with this key and encryption context")]
    Undecryptable,
    /// No such key.
    #[error("key {0} not found")]
    NotFound(String),
    /// The key already exists.
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// The key's state or policy forbids the operation; the first field is its
    /// [`reasons`] entry.
    #[error("{1}")]
    FailedPrecondition(&'static str, String),
    /// The caller presented no usable identity.
    #[error("no verified caller identity")]
    Unauthenticated,
    /// The caller's identity may not call this RPC.
    #[error("caller {caller} may not call {rpc}")]
    PermissionDenied {
        /// The caller's SPIFFE ID.
        caller: String,
        /// The RPC it tried.
        rpc: &'static str,
    },
    /// A forwarded call's bearer credential was missing, invalid, or could not be checked.
    #[error(transparent)]
    Bearer(#[from] coffer_authn::authenticator::Error),
    /// A bearer principal lacks the scope the RPC needs (scopes are not secret: the message
    /// names it, so a client can ask for it).
    #[error("missing scope {0}")]
    ScopeMissing(coffer_authn::Scope),
    /// A bearer principal tried to use a key reserved for Coffer's services.
    #[error("key {0} is reserved for Coffer's services; a bearer credential may only read it")]
    ReservedKey(String),
    /// An RPC for operators and services only, called with a bearer credential.
    #[error("{0} cannot be called with a bearer credential")]
    NotForBearers(&'static str),
    /// A stored key version is wrapped under a root key version that is not in the keyring.
    #[error("root key version {0} is not in the keyring")]
    RootKeyMissing(u32),
    /// A configured root key is not the key its version number names in this database (its
    /// check value differs, or it cannot open what that version wrapped).
    #[error(
        "root key version {0} does not match the key this database was written with; \
         refusing to start (check COFFER_ROOT_KEYS or the root keys file)"
    )]
    RootKeyMismatch(u32),
    /// A stored key version does not authenticate under its root key: the row was altered.
    #[error("stored version {1} of key {0} does not authenticate")]
    StoredVersionCorrupt(String, u32),
    /// The database failed or is unreachable.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// The database could not be opened or migrated at start-up.
    #[error(transparent)]
    Open(#[from] coffer_db::Error),
    /// A cryptographic operation failed for a reason other than a bad ciphertext (the OS RNG).
    #[error("cryptographic failure")]
    Crypto(#[source] crypto::Error),
    /// TLS material could not be loaded.
    #[error(transparent)]
    Transport(#[from] transport::Error),
    /// The gRPC server failed or could not be set up.
    #[error("gRPC server failed")]
    Serve(#[source] coffer_server::ServeError),
}

/// `Result` with the key-service [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::InvalidArgument`] for `field`.
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument(coffer_server::names::Invalid::new(field, reason))
    }
}

impl coffer_server::Failure for Error {
    /// Root keys that do not fit the database are the operator's to fix.
    fn is_misconfiguration(&self) -> bool {
        matches!(self, Error::RootKeyMismatch(_) | Error::RootKeyMissing(_))
    }

    /// The database cannot be reached.
    fn is_unavailable(&self) -> bool {
        matches!(self, Error::Open(coffer_db::Error::Connect { .. }))
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let domain = Domain(DOMAIN);
        match error {
            Error::InvalidArgument(invalid) => {
                domain.invalid_argument(invalid.field, invalid.reason)
            }
            Error::Undecryptable => status::invalid_argument(
                "ciphertext",
                "does not decrypt with this key and encryption context",
                DOMAIN,
                reasons::UNDECRYPTABLE,
            ),
            Error::NotFound(_) => domain.not_found(error.to_string()),
            Error::AlreadyExists(_) => domain.already_exists(error.to_string()),
            Error::FailedPrecondition(reason, message) => {
                domain.status(Code::FailedPrecondition, message, reason)
            }
            Error::Unauthenticated => domain.status(
                Code::Unauthenticated,
                "no valid client identity",
                common::UNAUTHENTICATED,
            ),
            Error::PermissionDenied { ref caller, rpc } => {
                // A service identity refused by the table is a deployment to fix: WARN.
                tracing::warn!(%caller, rpc, "permission denied");
                domain.status(
                    Code::PermissionDenied,
                    "permission denied",
                    common::NOT_ALLOWED,
                )
            }
            Error::Bearer(cause) => cause.into(),
            Error::ScopeMissing(scope) => domain.missing_scope(scope.as_str()),
            Error::NotForBearers(_) => domain.status(
                Code::PermissionDenied,
                error.to_string(),
                common::NOT_ALLOWED,
            ),
            Error::ReservedKey(_) => domain.status(
                Code::PermissionDenied,
                error.to_string(),
                reasons::RESERVED_KEY,
            ),
            Error::Database(ref cause) if coffer_db::is_unavailable(cause) => {
                domain.storage_unavailable(cause)
            }
            Error::RootKeyMismatch(version) | Error::RootKeyMissing(version) => {
                tracing::error!(version, error = %error, "root key unavailable");
                domain.status(
                    Code::Unavailable,
                    "key material unavailable",
                    reasons::ROOT_KEY_UNAVAILABLE,
                )
            }
            Error::StoredVersionCorrupt(..) => domain.data_loss(&error),
            Error::Database(_)
            | Error::Open(_)
            | Error::Crypto(_)
            | Error::Transport(_)
            | Error::Serve(_) => domain.internal(&error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_side_failures_never_leak_their_cause() {
        let status = Status::from(Error::Database(sqlx::Error::Protocol(
            "SELECT secret FROM t".into(),
        )));
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(status.message(), "internal error");
        assert_eq!(status::reason(&status).as_deref(), Some("INTERNAL"));
        let status = Status::from(Error::Database(sqlx::Error::PoolTimedOut));
        assert_eq!(status.code(), tonic::Code::Unavailable);
    }

    #[test]
    fn authorization_failures_do_not_say_which_check_failed() {
        let status = Status::from(Error::PermissionDenied {
            caller: "spiffe://x/y".into(),
            rpc: "Decrypt",
        });
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert!(!status.message().contains("spiffe"));
        assert_eq!(status::reason(&status).as_deref(), Some("NOT_ALLOWED"));
    }

    #[test]
    fn every_state_error_names_its_reason_and_invalid_arguments_their_field() {
        let status = Status::from(Error::FailedPrecondition(
            reasons::KEY_DESTROYED,
            "key tenants/a/keys/b is destroyed".into(),
        ));
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert_eq!(status::reason(&status).as_deref(), Some("KEY_DESTROYED"));
        let status = Status::from(Error::invalid(
            "name",
            "must be tenants/{tenant}/keys/{key}",
        ));
        assert_eq!(
            status::field_violations(&status),
            vec![(
                "name".to_owned(),
                "must be tenants/{tenant}/keys/{key}".to_owned()
            )]
        );
        let status = Status::from(Error::StoredVersionCorrupt("tenants/a/keys/b".into(), 1));
        assert_eq!(status.code(), tonic::Code::DataLoss);
        assert!(!status.message().contains("tenants/a"));
    }
}
