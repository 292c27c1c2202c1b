//! The credential-service's one error type and its one mapping to a gRPC status, with a
//! `google.rpc.ErrorInfo` (domain [`DOMAIN`]) on every status and a `google.rpc.BadRequest`
//! on INVALID_ARGUMENT.

use coffer_server::status::Domain;
use tonic::{Code, Status};

/// The `ErrorInfo.domain` of every credential-service error.
pub const DOMAIN: &str = "coffer.v1.CredentialService";

/// The `ErrorInfo.reason` values the credential-service answers with.
pub mod reasons {
    pub use coffer_server::status::reasons::*;
    /// Values of a zero-knowledge credential were asked for: the server cannot read them.
    pub const ZERO_KNOWLEDGE: &str = "ZERO_KNOWLEDGE";
    /// A zero-knowledge update on a credential that is not zero-knowledge.
    pub const NOT_ZERO_KNOWLEDGE: &str = "NOT_ZERO_KNOWLEDGE";
    /// The credential is past its `expire_time`.
    pub const CREDENTIAL_EXPIRED: &str = "CREDENTIAL_EXPIRED";
    /// A sealed value names another tenant's sealing key.
    pub const SEALING_KEY_MISMATCH: &str = "SEALING_KEY_MISMATCH";
    /// A sealed value names a sealing key that is unknown or expired.
    pub const SEALING_KEY_EXPIRED: &str = "SEALING_KEY_EXPIRED";
    /// Sealed intake is disabled on this server.
    pub const SEALED_INTAKE_DISABLED: &str = "SEALED_INTAKE_DISABLED";
}

/// Everything that can go wrong in the credential-service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is invalid: which field and the rule it breaks, never the value (so
    /// never secret input).
    #[error(transparent)]
    InvalidArgument(#[from] coffer_server::names::Invalid),
    /// No such credential in the caller's tenant.
    #[error("{0} not found")]
    NotFound(String),
    /// The row version is stale.
    #[error("{0} changed since row version {1}; re-read and retry")]
    Aborted(String, u64),
    /// The credential's state forbids the operation; the first field is the ErrorInfo reason.
    #[error("{1}")]
    FailedPrecondition(&'static str, String),
    /// Authentication failed.
    #[error(transparent)]
    Unauthenticated(#[from] coffer_authn::authenticator::Error),
    /// The principal lacks this scope (named to the caller, who can ask for it).
    #[error("missing scope {0}")]
    ScopeMissing(coffer_authn::Scope),
    /// key-service refused or failed.
    #[error("key-service call failed")]
    KeyService(#[from] coffer_key_client::Error),
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
    /// The gRPC server failed or could not be set up.
    #[error("gRPC server failed")]
    Serve(#[source] coffer_server::ServeError),
}

/// `Result` with the credential-service [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::InvalidArgument`] for `field`.
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument(coffer_server::names::Invalid::new(field, reason))
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

    /// The database, key-service or auth-service cannot be reached.
    fn is_unavailable(&self) -> bool {
        match self {
            Error::Open(coffer_db::Error::Connect { .. }) | Error::Connect(..) => true,
            Error::KeyService(cause) => cause.is_unavailable(),
            Error::Unauthenticated(coffer_authn::authenticator::Error::Unavailable) => true,
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
            Error::Aborted(..) => domain.status(Code::Aborted, error.to_string(), reasons::ABORTED),
            Error::FailedPrecondition(reason, message) => {
                domain.status(Code::FailedPrecondition, message, reason)
            }
            Error::Unauthenticated(cause) => cause.into(),
            Error::ScopeMissing(scope) => domain.missing_scope(scope.as_str()),
            Error::KeyService(ref cause) => cause.to_status(DOMAIN),
            Error::Database(ref cause) if coffer_db::is_unavailable(cause) => {
                domain.storage_unavailable(cause)
            }
            Error::Undecryptable | Error::Corrupt(_) => domain.data_loss(&error),
            Error::Connect(..)
            | Error::Database(_)
            | Error::Open(_)
            | Error::Crypto(_)
            | Error::Serve(_) => domain.internal(&error),
        }
    }
}
