//! gRPC statuses with machine-readable details, the same way in every service.
//!
//! Every error status a Coffer service returns carries a `google.rpc.ErrorInfo` whose `reason`
//! is a stable UPPER_SNAKE_CASE name (`KEY_DESTROYED`, `NOT_ALLOWED`, ...) and whose `domain`
//! is the gRPC service that raised it; an INVALID_ARGUMENT also carries a `google.rpc.BadRequest`
//! naming the field and why. A client branches on `reason`, never on the message text; the
//! gateway turns both into the `details` of its JSON errors. Messages and details never carry
//! secrets, SQL or stack traces: they are built from the service's own words.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

pub use tonic_types::{BadRequest, ErrorInfo, FieldViolation};

/// A status with `code`, `message` and an `ErrorInfo` of `reason` in `domain`.
pub fn with_reason(
    code: Code,
    message: impl Into<String>,
    domain: &'static str,
    reason: &'static str,
) -> Status {
    let details = ErrorDetails::with_error_info(reason, domain, std::collections::HashMap::new());
    Status::with_error_details(code, message, details)
}

/// INVALID_ARGUMENT for `field`: `ErrorInfo` with `reason` and a `BadRequest` field violation
/// saying `description`.
pub fn invalid_argument(
    field: &str,
    description: impl Into<String>,
    domain: &'static str,
    reason: &'static str,
) -> Status {
    let description = description.into();
    let mut details =
        ErrorDetails::with_error_info(reason, domain, std::collections::HashMap::new());
    details.add_bad_request_violation(field, description.clone());
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid {field}: {description}"),
        details,
    )
}

/// The statuses of one service, every one with an `ErrorInfo` in its domain (the gRPC service
/// name): the failures every service shares get the same code, reason and wording everywhere,
/// and the server-side ones are logged here, once, with their cause chain (which never reaches
/// the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Domain(pub &'static str);

impl Domain {
    /// A status with `code`, `message` and `reason`.
    pub fn status(self, code: Code, message: impl Into<String>, reason: &'static str) -> Status {
        with_reason(code, message, self.0, reason)
    }

    /// INVALID_ARGUMENT naming `field` and why.
    pub fn invalid_argument(self, field: &str, description: impl Into<String>) -> Status {
        invalid_argument(field, description, self.0, reasons::INVALID_ARGUMENT)
    }

    /// NOT_FOUND, `message` naming the resource.
    pub fn not_found(self, message: impl Into<String>) -> Status {
        self.status(Code::NotFound, message, reasons::NOT_FOUND)
    }

    /// ALREADY_EXISTS, `message` naming the resource.
    pub fn already_exists(self, message: impl Into<String>) -> Status {
        self.status(Code::AlreadyExists, message, reasons::ALREADY_EXISTS)
    }

    /// PERMISSION_DENIED; `why` is logged at INFO for the operator, never sent.
    pub fn permission_denied(self, why: &dyn std::fmt::Display) -> Status {
        tracing::info!(%why, "permission denied");
        self.status(
            Code::PermissionDenied,
            "permission denied",
            reasons::NOT_ALLOWED,
        )
    }

    /// PERMISSION_DENIED because the principal lacks `scope`: the message and the `ErrorInfo`
    /// metadata `scope` name it (scopes are not secret), so a client can ask for it (the
    /// gateway answers RFC 6750's `insufficient_scope` with it).
    pub fn missing_scope(self, scope: &str) -> Status {
        tracing::info!(scope, "permission denied: missing scope");
        let metadata = std::collections::HashMap::from([(SCOPE.to_owned(), scope.to_owned())]);
        let details = ErrorDetails::with_error_info(reasons::SCOPE_MISSING, self.0, metadata);
        Status::with_error_details(
            Code::PermissionDenied,
            format!("permission denied: missing scope {scope}"),
            details,
        )
    }

    /// UNAVAILABLE because the database cannot be reached; `cause` is logged at ERROR.
    pub fn storage_unavailable(self, cause: &dyn std::fmt::Display) -> Status {
        tracing::error!(error = %cause, "database unavailable");
        self.status(
            Code::Unavailable,
            "storage unavailable",
            reasons::UNAVAILABLE,
        )
    }

    /// DATA_LOSS: stored data fails its integrity check; `what` is logged at ERROR.
    pub fn data_loss(self, what: &dyn std::fmt::Display) -> Status {
        tracing::error!(error = %what, "stored data fails its integrity check");
        self.status(
            Code::DataLoss,
            "stored data fails its integrity check",
            reasons::DATA_LOSS,
        )
    }

    /// INTERNAL for a fault of this server; `error` is logged at ERROR with its cause chain.
    pub fn internal(self, error: &(dyn std::error::Error + 'static)) -> Status {
        tracing::error!(error = %coffer_telemetry::error_chain(error), "internal error");
        self.status(Code::Internal, "internal error", reasons::INTERNAL)
    }
}

/// A `google.rpc.Status` message (the per-item error of a batch response).
pub type RpcStatus = tonic_types::pb::Status;

/// `status` as a `google.rpc.Status` message, with its details.
pub fn to_rpc_status(status: &Status) -> RpcStatus {
    let bare = || RpcStatus {
        code: status.code() as i32,
        message: status.message().to_owned(),
        details: Vec::new(),
    };
    // No details: empty bytes would decode as a default (OK) status.
    if status.details().is_empty() {
        return bare();
    }
    <RpcStatus as prost::Message>::decode(status.details()).unwrap_or_else(|_| bare())
}

/// A `google.rpc.Status` message (a batch item's error) as a `tonic::Status`, with its
/// details.
pub fn from_rpc_status(status: &RpcStatus) -> Status {
    Status::with_details(
        Code::from(status.code),
        status.message.clone(),
        prost::Message::encode_to_vec(status).into(),
    )
}

/// The `ErrorInfo` of `status`, if it carries one.
pub fn error_info(status: &Status) -> Option<ErrorInfo> {
    status.get_error_details().error_info().cloned()
}

/// The `ErrorInfo.reason` of `status`, if it carries one.
pub fn reason(status: &Status) -> Option<String> {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
}

/// The field violations of `status`, as `(field, description)`.
pub fn field_violations(status: &Status) -> Vec<(String, String)> {
    status
        .get_error_details()
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|v| (v.field.clone(), v.description.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The `ErrorInfo` metadata key naming the scope a [`reasons::SCOPE_MISSING`] call needs.
pub const SCOPE: &str = "scope";

/// Reasons shared by every service, for the failures every service has.
pub mod reasons {
    /// A request field is malformed or out of range (see the `BadRequest` detail).
    pub const INVALID_ARGUMENT: &str = "INVALID_ARGUMENT";
    /// No such resource in the caller's tenant.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// The resource exists already.
    pub const ALREADY_EXISTS: &str = "ALREADY_EXISTS";
    /// The caller presented no valid credential.
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    /// The caller's identity or scopes do not allow the call.
    pub const NOT_ALLOWED: &str = "NOT_ALLOWED";
    /// The principal lacks one scope the call needs; the metadata `scope` names it.
    pub const SCOPE_MISSING: &str = "SCOPE_MISSING";
    /// The resource's state does not allow the call; the message says which state.
    pub const FAILED_PRECONDITION: &str = "FAILED_PRECONDITION";
    /// A limit was reached; retry later.
    pub const RESOURCE_EXHAUSTED: &str = "RESOURCE_EXHAUSTED";
    /// The resource changed since it was read; re-read and retry.
    pub const ABORTED: &str = "ABORTED";
    /// The database or a dependency is unavailable; retry later.
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
    /// Stored data failed an integrity check (a ciphertext or audit link that does not
    /// authenticate).
    pub const DATA_LOSS: &str = "DATA_LOSS";
    /// A fault on the server; the log says which.
    pub const INTERNAL: &str = "INTERNAL";

    /// The states of a key-service key that forbid an operation (FAILED_PRECONDITION). Here,
    /// not in key-service, because the services that call key-service pass them on to their
    /// own callers unchanged.
    pub mod key {
        /// The key is destroyed (crypto-shredded): nothing it protected can be decrypted.
        pub const KEY_DESTROYED: &str = "KEY_DESTROYED";
        /// The key is disabled; EnableKey makes it usable again.
        pub const KEY_DISABLED: &str = "KEY_DISABLED";
        /// The key is scheduled for deletion; CancelKeyDeletion makes it usable again.
        pub const DELETION_PENDING: &str = "DELETION_PENDING";
        /// The key's policy does not allow deletion.
        pub const DELETION_NOT_ALLOWED: &str = "DELETION_NOT_ALLOWED";
        /// CancelKeyDeletion on a key whose deletion is not pending.
        pub const DELETION_NOT_PENDING: &str = "DELETION_NOT_PENDING";
        /// The key version is below the key's minimum version for the operation.
        pub const VERSION_RETIRED: &str = "VERSION_RETIRED";
        /// The key version's material is gone.
        pub const VERSION_DESTROYED: &str = "VERSION_DESTROYED";
        /// The key has used every version number.
        pub const VERSIONS_EXHAUSTED: &str = "VERSIONS_EXHAUSTED";
        /// The root key a stored version needs is missing or wrong.
        pub const ROOT_KEY_UNAVAILABLE: &str = "ROOT_KEY_UNAVAILABLE";

        /// Every state reason above.
        pub const ALL: [&str; 9] = [
            KEY_DESTROYED,
            KEY_DISABLED,
            DELETION_PENDING,
            DELETION_NOT_ALLOWED,
            DELETION_NOT_PENDING,
            VERSION_RETIRED,
            VERSION_DESTROYED,
            VERSIONS_EXHAUSTED,
            ROOT_KEY_UNAVAILABLE,
        ];
    }
}

/// The canonical name of a gRPC code (`NOT_FOUND`), as `google.rpc.Code` and the gRPC
/// documentation spell it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_failures_answer_alike_and_never_carry_their_cause() {
        let domain = Domain("coffer.v1.TestService");
        let cause = std::io::Error::other("SELECT secret FROM t: password=hunter2");
        let answers = [
            (domain.internal(&cause), Code::Internal, reasons::INTERNAL),
            (
                domain.storage_unavailable(&cause),
                Code::Unavailable,
                reasons::UNAVAILABLE,
            ),
            (domain.data_loss(&cause), Code::DataLoss, reasons::DATA_LOSS),
            (
                domain.permission_denied(&cause),
                Code::PermissionDenied,
                reasons::NOT_ALLOWED,
            ),
        ];
        for (status, code, expected) in answers {
            assert_eq!(status.code(), code);
            assert_eq!(reason(&status).as_deref(), Some(expected));
            assert_eq!(
                error_info(&status).map(|info| info.domain),
                Some("coffer.v1.TestService".to_owned())
            );
            let wire = format!("{}{:?}", status.message(), status.details());
            assert!(
                !wire.contains("hunter2") && !wire.contains("SELECT"),
                "{wire}"
            );
        }
        let missing = domain.not_found("tenants/acme/keys/k not found");
        assert_eq!(
            (missing.code(), missing.message()),
            (Code::NotFound, "tenants/acme/keys/k not found")
        );
        assert_eq!(
            field_violations(&domain.invalid_argument("name", "must be x")),
            vec![("name".to_owned(), "must be x".to_owned())]
        );
    }

    #[test]
    fn details_survive_the_wire_form() {
        let status = invalid_argument(
            "name",
            "must be tenants/{tenant}",
            "coffer.v1.Test",
            "BAD_NAME",
        );
        // What a client sees: the status rebuilt from its header bytes.
        let received = Status::with_details(
            status.code(),
            status.message(),
            status.details().to_vec().into(),
        );
        assert_eq!(received.code(), Code::InvalidArgument);
        assert_eq!(received.message(), "invalid name: must be tenants/{tenant}");
        assert_eq!(reason(&received).as_deref(), Some("BAD_NAME"));
        assert_eq!(
            field_violations(&received),
            vec![("name".to_owned(), "must be tenants/{tenant}".to_owned())]
        );
        let plain = with_reason(
            Code::FailedPrecondition,
            "destroyed",
            "coffer.v1.Test",
            "KEY_DESTROYED",
        );
        assert_eq!(reason(&plain).as_deref(), Some("KEY_DESTROYED"));
        assert!(field_violations(&plain).is_empty());
        assert_eq!(reason(&Status::internal("x")), None);
        let item = to_rpc_status(&plain);
        assert_eq!(
            (item.code, item.message.as_str()),
            (Code::FailedPrecondition as i32, "destroyed")
        );
        let back = from_rpc_status(&item);
        assert_eq!(reason(&back).as_deref(), Some("KEY_DESTROYED"));
        let bare = to_rpc_status(&Status::not_found("gone"));
        assert_eq!(bare.code, Code::NotFound as i32);
    }
}
