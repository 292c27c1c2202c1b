//! The credential-service's one error type and its one mapping to a gRPC status.

use tonic::Status;

/// Everything that can go wrong in the credential-service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is invalid; `reason` never quotes a secret.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// No such credential in the caller's tenant.
    #[error("{0} not found")]
    NotFound(String),
    /// The row version is stale.
    #[error("{0} changed since row version {1}; re-read and retry")]
    Aborted(String, u64),
    /// The credential's state forbids the operation.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Authentication failed.
    #[error(transparent)]
    Unauthenticated(#[from] coffer_authn::authenticator::Error),
    /// A missing scope (for the log only).
    #[error("permission denied ({0})")]
    PermissionDenied(String),
    /// key-service refused or failed.
    #[error("key-service call failed")]
    KeyService(#[source] Status),
    /// A dependency could not be reached at start-up.
    #[error("cannot connect to {0}")]
    Connect(&'static str, #[source] coffer_transport::Error),
    /// Stored ciphertext does not decrypt (tampered or swapped).
    #[error("stored credential does not decrypt")]
    Undecryptable,
    /// The database failed or is unreachable.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// The database could not be opened.
    #[error(transparent)]
    Open(#[from] coffer_db::Error),
    /// A local cryptographic failure (RNG).
    #[error("cryptographic failure")]
    Crypto(#[from] coffer_crypto::Error),
    /// Stored data could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(&'static str),
    /// The TLS configuration was refused.
    #[error("TLS configuration refused")]
    Tls(#[source] tonic::transport::Error),
    /// The gRPC server failed or could not be set up.
    #[error("gRPC server failed")]
    Serve(#[source] coffer_proto::ServeError),
}

/// `Result` with the credential-service [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }
}

impl coffer_telemetry::process::Failure for Error {
    /// Configuration is refused before `serve`; every failure here is a fault.
    fn is_misconfiguration(&self) -> bool {
        false
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument { .. } => Status::invalid_argument(error.to_string()),
            Error::NotFound(_) => Status::not_found(error.to_string()),
            Error::Aborted(..) => Status::aborted(error.to_string()),
            Error::FailedPrecondition(_) => Status::failed_precondition(error.to_string()),
            Error::Unauthenticated(cause) => cause.into(),
            Error::PermissionDenied(ref why) => {
                tracing::info!(why, "permission denied");
                Status::permission_denied("permission denied")
            }
            Error::KeyService(ref status) => {
                tracing::error!(code = ?status.code(), "key-service call failed");
                Status::unavailable("a dependency is unavailable")
            }
            Error::Database(ref cause) if coffer_db::is_unavailable(cause) => {
                tracing::error!(error = %cause, "database unavailable");
                Status::unavailable("storage unavailable")
            }
            Error::Undecryptable => {
                tracing::error!("stored credential does not decrypt");
                Status::internal("internal error")
            }
            Error::Connect(..)
            | Error::Database(_)
            | Error::Open(_)
            | Error::Crypto(_)
            | Error::Corrupt(_)
            | Error::Tls(_)
            | Error::Serve(_) => {
                tracing::error!(error = %coffer_telemetry::error_chain(&error), "internal error");
                Status::internal("internal error")
            }
        }
    }
}
