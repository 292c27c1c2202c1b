//! The typed error contract: every error status carries a `google.rpc.ErrorInfo` with a
//! stable reason in the `coffer.v1.KeyService` domain, and INVALID_ARGUMENT also a
//! `google.rpc.BadRequest` naming the field; callers branch on these, not on messages.

use coffer_proto::pb;
use coffer_server::status::{error_info, field_violations, reason};
use coffer_test_support::on_each_backend;
use tonic::Code;

use crate::helpers::{create_key_request, spawn_app};

const KEY: &str = "tenants/acme/keys/db";
const WEEK: i64 = 7 * 24 * 3600;

#[track_caller]
fn assert_reason(status: &tonic::Status, code: Code, expected: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason(status).as_deref(), Some(expected), "{status:?}");
    assert_eq!(
        error_info(status).map(|info| info.domain),
        Some("coffer.v1.KeyService".to_owned())
    );
}

#[tokio::test]
async fn every_error_names_a_stable_reason_and_bad_fields_are_named() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        app.create_key(KEY).await;
        let ciphertext = app.encrypt(KEY, b"payload", &[]).await;

        let bad_name = app
            .client()
            .get_key(pb::GetKeyRequest {
                name: "keys/db".into(),
            })
            .await
            .unwrap_err();
        assert_reason(&bad_name, Code::InvalidArgument, "INVALID_ARGUMENT");
        let violations = field_violations(&bad_name);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert_eq!(violations[0].0, "name");
        assert!(
            violations[0].1.contains("tenants/{tenant}/keys/{key}"),
            "{violations:?}"
        );

        let mut tampered = ciphertext.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        let undecryptable = app.decrypt(KEY, &tampered, &[]).await.unwrap_err();
        assert_reason(&undecryptable, Code::InvalidArgument, "UNDECRYPTABLE");
        assert_eq!(field_violations(&undecryptable)[0].0, "ciphertext");

        let missing = app
            .client()
            .get_key(pb::GetKeyRequest {
                name: "tenants/acme/keys/none".into(),
            })
            .await
            .unwrap_err();
        assert_reason(&missing, Code::NotFound, "NOT_FOUND");

        let exists = app
            .client()
            .create_key(create_key_request(KEY, false))
            .await
            .unwrap_err();
        assert_reason(&exists, Code::AlreadyExists, "ALREADY_EXISTS");

        let not_allowed = app
            .client()
            .schedule_key_deletion(pb::ScheduleKeyDeletionRequest { name: KEY.into() })
            .await
            .unwrap_err();
        assert_reason(
            &not_allowed,
            Code::FailedPrecondition,
            "DELETION_NOT_ALLOWED",
        );

        let stranger = app.client_as("some-service").await;
        let denied = stranger
            .clone()
            .encrypt(pb::EncryptRequest {
                name: KEY.into(),
                plaintext: b"x".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_reason(&denied, Code::PermissionDenied, "NOT_ALLOWED");

        // Retired, pending deletion, destroyed.
        app.rotate(KEY).await;
        app.update_policy(KEY, Some(2), None, Some(true))
            .await
            .unwrap();
        let retired = app.decrypt(KEY, &ciphertext, &[]).await.unwrap_err();
        assert_reason(&retired, Code::FailedPrecondition, "VERSION_RETIRED");
        app.client()
            .schedule_key_deletion(pb::ScheduleKeyDeletionRequest { name: KEY.into() })
            .await
            .unwrap();
        let pending = app.decrypt(KEY, &ciphertext, &[]).await.unwrap_err();
        assert_reason(&pending, Code::FailedPrecondition, "DELETION_PENDING");
        app.clock.advance(WEEK + 1);
        let destroyed = app.decrypt(KEY, &ciphertext, &[]).await.unwrap_err();
        assert_reason(&destroyed, Code::FailedPrecondition, "KEY_DESTROYED");
    })
    .await;
}

#[tokio::test]
async fn metrics_count_and_time_every_rpc_by_status_code() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        app.create_key(KEY).await;
        app.encrypt(KEY, b"one", &[]).await;
        let ciphertext = app.encrypt(KEY, b"two", &[]).await;
        // Failed decryptions are counted (and logged at most once per ten seconds).
        for _ in 0..3 {
            app.decrypt(KEY, &ciphertext, &[("other", "context")])
                .await
                .unwrap_err();
        }
        let _ = app
            .client()
            .get_key(pb::GetKeyRequest {
                name: "tenants/acme/keys/none".into(),
            })
            .await
            .unwrap_err();
        let page = coffer_server::metrics::scrape(app.metrics_addr)
            .await
            .unwrap();
        for line in [
            r#"coffer_rpc_requests_total{rpc="coffer.v1.KeyService/Encrypt",code="OK"} 2"#,
            r#"coffer_rpc_requests_total{rpc="coffer.v1.KeyService/CreateKey",code="OK"} 1"#,
            r#"coffer_rpc_requests_total{rpc="coffer.v1.KeyService/GetKey",code="NOT_FOUND"} 1"#,
            r#"coffer_rpc_duration_seconds_count{rpc="coffer.v1.KeyService/Encrypt",code="OK"} 2"#,
            r#"coffer_rpc_requests_total{rpc="coffer.v1.KeyService/Decrypt",code="INVALID_ARGUMENT"} 3"#,
            "coffer_key_decrypt_failures_total 3",
        ] {
            assert!(page.contains(line), "missing `{line}` in:\n{page}");
        }
    })
    .await;
}
