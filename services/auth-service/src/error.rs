//! The auth-service's one error type and its one mapping to a gRPC status.

use tonic::Status;

/// Everything that can go wrong in the auth-service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is invalid; `reason` never quotes secret input.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The offending field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// No such object (in the caller's tenant).
    #[error("{0} not found")]
    NotFound(String),
    /// The object exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// No, or no valid, credential. `why` is for the log only: the caller always gets the same
    /// message, so it learns nothing about which check failed.
    #[error("unauthenticated ({why})")]
    Unauthenticated {
        /// What failed.
        why: &'static str,
    },
    /// The caller may not do this; `why` is for the log only.
    #[error("permission denied ({why})")]
    PermissionDenied {
        /// What was missing.
        why: String,
    },
    /// Too many failed attempts, or password hashing is saturated.
    #[error("{0}")]
    ResourceExhausted(&'static str),
    /// key-service refused or failed a call.
    #[error("key-service call failed")]
    KeyService(#[source] tonic::Status),
    /// key-service cannot be reached.
    #[error("key-service unreachable")]
    KeyServiceConnect(#[source] coffer_transport::Error),
    /// The database failed or is unreachable.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// The database could not be opened or migrated at start-up.
    #[error(transparent)]
    Open(#[from] coffer_db::Error),
    /// A token or signing-key operation failed.
    #[error("token failure")]
    Token(#[from] coffer_authn::jwt::Error),
    /// Password hashing failed.
    #[error("password hashing failed")]
    Bcrypt(#[from] bcrypt::BcryptError),
    /// The OS random number generator failed.
    #[error("cryptographic failure")]
    Crypto(#[from] coffer_crypto::Error),
    /// Stored data could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(&'static str),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed")]
    Task(#[from] tokio::task::JoinError),
    /// The TLS configuration was refused.
    #[error("TLS configuration refused")]
    Tls(#[source] tonic::transport::Error),
    /// The gRPC server failed or could not be set up.
    #[error("gRPC server failed")]
    Serve(#[source] coffer_proto::ServeError),
}

/// `Result` with the auth-service [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn unauthenticated(why: &'static str) -> Self {
        Self::Unauthenticated { why }
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
            Error::AlreadyExists(_) => Status::already_exists(error.to_string()),
            Error::Unauthenticated { why } => {
                tracing::info!(why, "authentication failed");
                Status::unauthenticated("invalid credentials")
            }
            Error::PermissionDenied { ref why } => {
                tracing::info!(why, "permission denied");
                Status::permission_denied("permission denied")
            }
            Error::ResourceExhausted(message) => Status::resource_exhausted(message),
            Error::KeyService(ref status) => {
                tracing::error!(code = ?status.code(), "key-service call failed");
                Status::unavailable("a dependency is unavailable")
            }
            Error::KeyServiceConnect(_) => {
                tracing::error!(error = %coffer_telemetry::error_chain(&error), "key-service unreachable");
                Status::unavailable("a dependency is unavailable")
            }
            Error::Database(ref cause) if coffer_db::is_unavailable(cause) => {
                tracing::error!(error = %cause, "database unavailable");
                Status::unavailable("storage unavailable")
            }
            Error::Database(_)
            | Error::Open(_)
            | Error::Token(_)
            | Error::Bcrypt(_)
            | Error::Crypto(_)
            | Error::Corrupt(_)
            | Error::Task(_)
            | Error::Tls(_)
            | Error::Serve(_) => {
                tracing::error!(error = %coffer_telemetry::error_chain(&error), "internal error");
                Status::internal("internal error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_authentication_failure_looks_the_same() {
        for why in ["unknown user", "wrong password", "expired token"] {
            let status = Status::from(Error::unauthenticated(why));
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
            assert_eq!(status.message(), "invalid credentials");
        }
    }

    #[test]
    fn dependency_failures_are_unavailable_without_detail() {
        let status = Status::from(Error::KeyService(Status::internal("secret detail")));
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(!status.message().contains("secret"));
    }
}
