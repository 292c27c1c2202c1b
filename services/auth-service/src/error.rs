//! The auth-service's one error type and its one mapping to a gRPC status, with a
//! `google.rpc.ErrorInfo` (domain [`DOMAIN`]) on every status and a `google.rpc.BadRequest`
//! on INVALID_ARGUMENT.

use coffer_server::status::{Domain, reasons};
use tonic::{Code, Status};

/// The `ErrorInfo.domain` of every auth-service error.
pub const DOMAIN: &str = "coffer.v1.AuthService";

/// The reason of a Login whose password was right for a user with a second factor, when the
/// request carried none: ask the user for it and log in again.
pub const SECOND_FACTOR_REQUIRED: &str = "SECOND_FACTOR_REQUIRED";

/// Everything that can go wrong in the auth-service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is invalid: which field and the rule it breaks, never the value (so
    /// never secret input).
    #[error(transparent)]
    InvalidArgument(#[from] coffer_server::names::Invalid),
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
    /// The principal lacks this scope (named to the caller, who can ask for it).
    #[error("missing scope {0}")]
    ScopeMissing(coffer_authn::Scope),
    /// The object's state does not allow this; the message says which state.
    #[error("{0}")]
    FailedPrecondition(&'static str),
    /// The password was right, and the user's second factor is needed too.
    #[error("a second factor is required")]
    SecondFactorRequired,
    /// Too many failed attempts, or password hashing is saturated.
    #[error("{0}")]
    ResourceExhausted(&'static str),
    /// key-service refused or failed a call.
    #[error("key-service call failed")]
    KeyService(#[from] coffer_key_client::Error),
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
    /// An OAuth protocol error (RFC 6749 section 5.2 and its extensions), for the client.
    #[error("{error}: {description}")]
    OAuth {
        /// The error code.
        error: crate::ops::oauth::OAuthError,
        /// What was wrong; never a secret.
        description: String,
    },
    /// The gRPC server failed or could not be set up.
    #[error("gRPC server failed")]
    Serve(#[source] coffer_server::ServeError),
}

/// `Result` with the auth-service [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::InvalidArgument`] for `field`.
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument(coffer_server::names::Invalid::new(field, reason))
    }

    pub(crate) fn unauthenticated(why: &'static str) -> Self {
        Self::Unauthenticated { why }
    }
}

impl coffer_server::Failure for Error {
    /// key-service refusing this service's identity is its authorization table to fix.
    fn is_misconfiguration(&self) -> bool {
        matches!(
            self,
            Error::KeyService(coffer_key_client::Error::Refused(_))
        )
    }

    /// The database or key-service cannot be reached.
    fn is_unavailable(&self) -> bool {
        match self {
            Error::Open(coffer_db::Error::Connect { .. }) | Error::KeyServiceConnect(_) => true,
            Error::KeyService(cause) => cause.is_unavailable(),
            _ => false,
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let domain = Domain(DOMAIN);
        match error {
            Error::InvalidArgument(invalid) => {
                domain.invalid_argument(invalid.field, invalid.reason)
            }
            Error::NotFound(_) => domain.not_found(error.to_string()),
            Error::AlreadyExists(_) => domain.already_exists(error.to_string()),
            Error::Unauthenticated { why } => {
                tracing::info!(why, "authentication failed");
                domain.status(
                    Code::Unauthenticated,
                    "invalid credentials",
                    reasons::UNAUTHENTICATED,
                )
            }
            Error::PermissionDenied { ref why } => domain.permission_denied(why),
            Error::ScopeMissing(scope) => domain.missing_scope(scope.as_str()),
            Error::FailedPrecondition(message) => domain.status(
                Code::FailedPrecondition,
                message,
                reasons::FAILED_PRECONDITION,
            ),
            Error::SecondFactorRequired => domain.status(
                Code::Unauthenticated,
                "a second factor is required: the code from the authenticator app, or a \
                 recovery code",
                SECOND_FACTOR_REQUIRED,
            ),
            Error::ResourceExhausted(message) => domain.status(
                Code::ResourceExhausted,
                message,
                reasons::RESOURCE_EXHAUSTED,
            ),
            Error::KeyService(ref cause) => cause.to_status(DOMAIN),
            Error::KeyServiceConnect(_) => {
                tracing::error!(error = %coffer_telemetry::error_chain(&error), "key-service unreachable");
                domain.status(
                    Code::Unavailable,
                    "key-service is unavailable; retry later",
                    reasons::UNAVAILABLE,
                )
            }
            Error::Database(ref cause) if coffer_db::is_unavailable(cause) => {
                domain.storage_unavailable(cause)
            }
            Error::Corrupt(_) => domain.data_loss(&error),
            Error::OAuth {
                error,
                ref description,
            } => domain.status(error.grpc_code(), description.clone(), error.reason()),
            Error::Database(_)
            | Error::Open(_)
            | Error::Token(_)
            | Error::Bcrypt(_)
            | Error::Crypto(_)
            | Error::Task(_)
            | Error::Serve(_) => domain.internal(&error),
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
    fn only_a_dependency_outage_is_unavailable_and_no_answer_carries_its_detail() {
        let status = Status::from(Error::KeyService(
            Status::unavailable("secret detail").into(),
        ));
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(!status.message().contains("secret"));
        let status = Status::from(Error::KeyService(
            Status::permission_denied("secret detail").into(),
        ));
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(!status.message().contains("secret"));
    }
}
