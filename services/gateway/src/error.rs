//! Every error the gateway answers, in Google's JSON error format:
//! `{"error": {"code": 404, "status": "NOT_FOUND", "message": "...", "details": [...]}}`, with
//! the standard gRPC-to-HTTP status mapping and the `google.rpc` details the services attach.
//!
//! A status that a Coffer service made carries an `ErrorInfo` (every service attaches one to
//! every error); its message and details are passed on. A status without one, of a code the
//! transport produces itself (a refused connection, a reset stream, a timeout), gets a fixed
//! message for its code, so no internal address or library text reaches a client.
//! `DebugInfo` is never passed on.

use http::StatusCode;
use serde_json::{Map, Value, json};
use tonic::Code;
use tonic_types::StatusExt as _;

/// An error answer: its HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonError {
    /// The HTTP status.
    pub http: StatusCode,
    /// `{"error": {...}}`.
    pub body: Value,
}

/// The `WWW-Authenticate` challenge (RFC 6750) for a service's refusal: on 401,
/// `Bearer realm="coffer"`, with `error="invalid_token"` when the request carried a credential;
/// on a 403 for a missing scope (reason `SCOPE_MISSING`), `error="insufficient_scope"` and the
/// scope the call needs, so a client can ask for it (step-up). With `resource_metadata`
/// (the URL of the RFC 9728 document, when the gateway serves an authorization server), each
/// challenge names it, so an MCP client can discover where to get a token. `None` for
/// anything else.
pub fn challenge(
    status: &tonic::Status,
    presented_credential: bool,
    resource_metadata: Option<&str>,
) -> Option<String> {
    let realm = match resource_metadata {
        Some(url) if !url.contains(['"', '\\']) => {
            format!("Bearer realm=\"coffer\", resource_metadata=\"{url}\"")
        }
        _ => "Bearer realm=\"coffer\"".to_owned(),
    };
    let realm = realm.as_str();
    match status.code() {
        Code::Unauthenticated if presented_credential => {
            Some(format!("{realm}, error=\"invalid_token\""))
        }
        Code::Unauthenticated => Some(realm.to_owned()),
        Code::PermissionDenied => {
            let info = status.get_error_details().error_info()?.clone();
            let scope = info.metadata.get(coffer_server::status::SCOPE)?;
            // RFC 6750 scope tokens: printable ASCII without space, quote or backslash.
            let plain = info.reason == coffer_server::status::reasons::SCOPE_MISSING
                && !scope.is_empty()
                && scope
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
            plain.then(|| format!("{realm}, error=\"insufficient_scope\", scope=\"{scope}\""))
        }
        _ => None,
    }
}

/// The prefix of a detail's `@type`.
const TYPE_PREFIX: &str = "type.googleapis.com/google.rpc.";

impl JsonError {
    /// An error with `code` and `message` and no details.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self::with_details(code, message.into(), Vec::new())
    }

    /// The same error answered with `http` (for the HTTP-only answers: 405, 413), which its
    /// `code` then says too.
    #[must_use]
    pub fn at(mut self, http: StatusCode) -> Self {
        self.http = http;
        self.body["error"]["code"] = Value::from(http.as_u16());
        self
    }

    /// INVALID_ARGUMENT with one field violation (`field`, `description`).
    pub fn invalid(field: &str, description: &str) -> Self {
        Self::with_details(
            Code::InvalidArgument,
            format!("{field}: {description}"),
            vec![json!({
                "@type": format!("{TYPE_PREFIX}BadRequest"),
                "fieldViolations": [{"field": field, "description": description}],
            })],
        )
    }

    /// The answer for a service's (or the transport's) status.
    pub fn from_status(status: &tonic::Status) -> Self {
        let details = status.get_error_details();
        let Some(info) = details.error_info() else {
            return if is_transport_code(status.code()) {
                Self::new(status.code(), transport_message(status.code()))
            } else {
                Self::new(status.code(), status.message())
            };
        };
        let mut out = vec![json!({
            "@type": format!("{TYPE_PREFIX}ErrorInfo"),
            "reason": info.reason,
            "domain": info.domain,
            "metadata": info.metadata,
        })];
        if let Some(bad) = details.bad_request() {
            let violations: Vec<Value> = bad
                .field_violations
                .iter()
                .map(|v| json!({"field": v.field, "description": v.description}))
                .collect();
            out.push(json!({
                "@type": format!("{TYPE_PREFIX}BadRequest"),
                "fieldViolations": violations,
            }));
        }
        if let Some(failure) = details.precondition_failure() {
            let violations: Vec<Value> = failure
                .violations
                .iter()
                .map(|v| json!({"type": v.r#type, "subject": v.subject, "description": v.description}))
                .collect();
            out.push(json!({
                "@type": format!("{TYPE_PREFIX}PreconditionFailure"),
                "violations": violations,
            }));
        }
        if let Some(resource) = details.resource_info() {
            out.push(json!({
                "@type": format!("{TYPE_PREFIX}ResourceInfo"),
                "resourceType": resource.resource_type,
                "resourceName": resource.resource_name,
                "owner": resource.owner,
                "description": resource.description,
            }));
        }
        if let Some(retry) = details.retry_info()
            && let Some(delay) = retry.retry_delay
        {
            out.push(json!({
                "@type": format!("{TYPE_PREFIX}RetryInfo"),
                "retryDelay": format!("{}s", delay.as_secs_f64()),
            }));
        }
        Self::with_details(status.code(), status.message().to_owned(), out)
    }

    fn with_details(code: Code, message: String, details: Vec<Value>) -> Self {
        let mut error = Map::new();
        let http = http_status(code);
        error.insert("code".into(), Value::from(http.as_u16()));
        error.insert(
            "status".into(),
            Value::from(coffer_server::status::code_name(code)),
        );
        error.insert("message".into(), Value::from(message));
        error.insert("details".into(), Value::Array(details));
        Self {
            http,
            body: json!({ "error": error }),
        }
    }
}

/// The HTTP status of a gRPC code (`google/rpc/code.proto`'s mapping).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The codes tonic and hyper produce themselves (a refused connection, a reset stream, a
/// timeout, an unknown method): without an `ErrorInfo` such a status is the transport's, and
/// its text stays inside. Every other code only a service sends.
fn is_transport_code(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Unknown
            | Code::Internal
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::DataLoss
            | Code::Unimplemented
            | Code::ResourceExhausted
    )
}

/// The message of a status that did not come from a service.
fn transport_message(code: Code) -> &'static str {
    match code {
        Code::Unavailable => "the service is unavailable; try again",
        Code::DeadlineExceeded => "the service did not answer in time",
        Code::Cancelled => "the call was cancelled",
        Code::ResourceExhausted => "too many requests",
        _ => "the service failed to answer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_follow_rfc_6750_and_name_only_a_plain_scope() {
        let domain = coffer_server::status::Domain("coffer.v1.KeyService");
        let unauthenticated = tonic::Status::unauthenticated("invalid credentials");
        assert_eq!(
            challenge(&unauthenticated, false, None).as_deref(),
            Some(r#"Bearer realm="coffer""#)
        );
        assert_eq!(
            challenge(&unauthenticated, true, None).as_deref(),
            Some(r#"Bearer realm="coffer", error="invalid_token""#)
        );
        assert_eq!(
            challenge(&domain.missing_scope("key:decrypt"), true, None).as_deref(),
            Some(r#"Bearer realm="coffer", error="insufficient_scope", scope="key:decrypt""#)
        );
        // Another refusal, or a scope that would break the header, gets no challenge.
        let identity = domain.status(
            tonic::Code::PermissionDenied,
            "permission denied",
            coffer_server::status::reasons::NOT_ALLOWED,
        );
        assert_eq!(challenge(&identity, true, None), None);
        assert_eq!(challenge(&domain.missing_scope("a\"b"), true, None), None);
        assert_eq!(challenge(&domain.missing_scope("a b"), true, None), None);
        assert_eq!(challenge(&tonic::Status::not_found("x"), true, None), None);
    }
    use tonic_types::ErrorDetails;

    #[test]
    fn a_service_error_keeps_its_message_and_details() {
        let status = tonic::Status::with_error_details(
            Code::InvalidArgument,
            "page_size: must be at most 100",
            {
                let mut details = ErrorDetails::with_error_info(
                    "INVALID_ARGUMENT",
                    "coffer.v1.CredentialService",
                    [],
                );
                details.add_bad_request_violation("page_size", "must be at most 100");
                details
            },
        );
        let error = JsonError::from_status(&status);
        assert_eq!(error.http, StatusCode::BAD_REQUEST);
        assert_eq!(
            error.body,
            json!({"error": {
                "code": 400,
                "status": "INVALID_ARGUMENT",
                "message": "page_size: must be at most 100",
                "details": [
                    {"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                     "reason": "INVALID_ARGUMENT", "domain": "coffer.v1.CredentialService",
                     "metadata": {}},
                    {"@type": "type.googleapis.com/google.rpc.BadRequest",
                     "fieldViolations": [{"field": "page_size", "description": "must be at most 100"}]},
                ],
            }})
        );
    }

    #[test]
    fn a_transport_error_says_nothing_of_the_inside() {
        let status = tonic::Status::unavailable(
            "error trying to connect: tcp connect error: 10.0.0.7:50053 Connection refused",
        );
        let error = JsonError::from_status(&status);
        assert_eq!(error.http, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            error.body["error"]["message"],
            "the service is unavailable; try again"
        );
        assert!(!error.body.to_string().contains("10.0.0.7"));
    }

    #[test]
    fn a_code_only_services_send_keeps_its_message_without_details() {
        let error = JsonError::from_status(&tonic::Status::unauthenticated("a bearer is required"));
        assert_eq!(error.http, StatusCode::UNAUTHORIZED);
        assert_eq!(error.body["error"]["message"], "a bearer is required");
    }

    #[test]
    fn debug_info_never_leaves() {
        let mut details = ErrorDetails::with_error_info("INTERNAL", "coffer.v1.KeyService", []);
        details.set_debug_info(vec!["at store.rs:12".into()], "SELECT secret FROM keys");
        let status = tonic::Status::with_error_details(Code::Internal, "internal error", details);
        let error = JsonError::from_status(&status);
        assert!(!error.body.to_string().contains("SELECT"), "{}", error.body);
        assert!(
            !error.body.to_string().contains("store.rs"),
            "{}",
            error.body
        );
    }

    #[test]
    fn every_code_maps_to_the_standard_http_status() {
        let table = [
            (Code::Ok, 200),
            (Code::Cancelled, 499),
            (Code::Unknown, 500),
            (Code::InvalidArgument, 400),
            (Code::DeadlineExceeded, 504),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::PermissionDenied, 403),
            (Code::ResourceExhausted, 429),
            (Code::FailedPrecondition, 400),
            (Code::Aborted, 409),
            (Code::OutOfRange, 400),
            (Code::Unimplemented, 501),
            (Code::Internal, 500),
            (Code::Unavailable, 503),
            (Code::DataLoss, 500),
            (Code::Unauthenticated, 401),
        ];
        for (code, http) in table {
            assert_eq!(http_status(code).as_u16(), http, "{code:?}");
        }
        let invalid = JsonError::invalid("body", "not valid JSON");
        assert_eq!(
            invalid.body["error"]["details"][0]["fieldViolations"][0]["field"],
            "body"
        );
    }
}
