//! The key-service's one error type and its one mapping to a gRPC status.

use coffer_crypto as crypto;
use coffer_transport as transport;
use tonic::Status;

/// Everything that can go wrong in the key-service, at start-up or in a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is invalid. `reason` says why and never quotes secret input.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The offending request field.
        field: &'static str,
        /// Why it is invalid.
        reason: String,
    },
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
    /// The key's state or policy forbids the operation.
    #[error("{0}")]
    FailedPrecondition(String),
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
    /// The database failed or is unreachable.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// The database could not be opened or migrated at start-up.
    #[error(transparent)]
    Open(#[from] coffer_db::Error),
    /// A cryptographic operation failed for a reason other than a bad ciphertext (for example
    /// the OS RNG, or stored material that no longer authenticates).
    #[error("cryptographic failure")]
    Crypto(#[source] crypto::Error),
    /// The TLS configuration was refused by the server.
    #[error("TLS configuration refused")]
    Tls(#[source] tonic::transport::Error),
    /// TLS material could not be loaded.
    #[error(transparent)]
    Transport(#[from] transport::Error),
    /// The gRPC server failed or could not be set up.
    #[error("gRPC server failed")]
    Serve(#[source] coffer_proto::ServeError),
}

/// `Result` with the key-service [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::InvalidArgument`] for `field`.
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }
}

impl coffer_telemetry::process::Failure for Error {
    /// Root keys that do not fit the database are the operator's to fix.
    fn is_misconfiguration(&self) -> bool {
        matches!(self, Error::RootKeyMismatch(_) | Error::RootKeyMissing(_))
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument { .. } | Error::Undecryptable => {
                Status::invalid_argument(error.to_string())
            }
            Error::NotFound(_) => Status::not_found(error.to_string()),
            Error::AlreadyExists(_) => Status::already_exists(error.to_string()),
            Error::FailedPrecondition(_) => Status::failed_precondition(error.to_string()),
            Error::Unauthenticated => Status::unauthenticated("no valid client identity"),
            Error::PermissionDenied { ref caller, rpc } => {
                tracing::warn!(%caller, rpc, "permission denied");
                Status::permission_denied("permission denied")
            }
            Error::Database(ref cause) if coffer_db::is_unavailable(cause) => {
                tracing::error!(error = %cause, "database unavailable");
                Status::unavailable("storage unavailable")
            }
            Error::RootKeyMismatch(version) => {
                tracing::error!(version, "root key does not match the database");
                Status::unavailable("key material unavailable")
            }
            Error::RootKeyMissing(version) => {
                tracing::error!(version, "root key version missing from the keyring");
                Status::unavailable("key material unavailable")
            }
            Error::Database(_)
            | Error::Open(_)
            | Error::Crypto(_)
            | Error::Tls(_)
            | Error::Transport(_)
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
    fn server_side_failures_never_leak_their_cause() {
        let status = Status::from(Error::Database(sqlx::Error::Protocol(
            "SELECT secret FROM t".into(),
        )));
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(status.message(), "internal error");
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
    }
}
