//! What a caller sees when the tenant's key in key-service cannot be used: the key's state,
//! with key-service's reason, and never "unavailable" (which would have clients retry a
//! destroyed key forever); a key-service that refuses this service's identity is an
//! internal misconfiguration, not an outage.

use std::time::{Duration, Instant};

use coffer_proto::pb;
use coffer_server::status::reason;
use coffer_test_support::on_each_backend;
use tonic::Code;

use crate::helpers::{Stack, new_credential};

/// Reveals `name` until it fails (the data-key cache forgets a changed key within a second)
/// and returns the failure.
async fn first_failure(stack: &Stack, name: &str) -> tonic::Status {
    let started = Instant::now();
    loop {
        match stack.reveal(name).await {
            Err(status) => return status,
            Ok(_) => assert!(
                started.elapsed() < Duration::from_secs(2),
                "still decrypting after {:?}",
                started.elapsed()
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_retired_key_version_is_failed_precondition_with_its_reason() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        let created = stack
            .create("github", &[("TOKEN", "ghp_a_token_value_1234")])
            .await;
        let version = stack.rotate_tenant_key("acme").await;
        stack
            .key_service_operator()
            .await
            .update_key_policy(pb::UpdateKeyPolicyRequest {
                name: "tenants/acme/keys/credentials".into(),
                min_decryption_version: Some(version),
                ..Default::default()
            })
            .await
            .unwrap();
        let status = first_failure(&stack, &created.name).await;
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert_eq!(reason(&status).as_deref(), Some("VERSION_RETIRED"));
        assert!(status.message().contains("retired"), "{}", status.message());
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_key_pending_deletion_is_failed_precondition_not_unavailable() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        let created = stack
            .create("github", &[("TOKEN", "ghp_a_token_value_1234")])
            .await;
        stack
            .key_service_operator()
            .await
            .schedule_key_deletion(pb::ScheduleKeyDeletionRequest {
                name: "tenants/acme/keys/credentials".into(),
            })
            .await
            .unwrap();
        let status = first_failure(&stack, &created.name).await;
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert_eq!(reason(&status).as_deref(), Some("DELETION_PENDING"));
        assert!(
            status.message().contains("pending deletion"),
            "{}",
            status.message()
        );
        // Writing needs a fresh data key from the same key: refused the same way.
        let created = stack
            .client()
            .await
            .create_credential(stack.as_user("admin", new_credential("other", &[("A", "b")])))
            .await
            .unwrap_err();
        assert_eq!(created.code(), Code::FailedPrecondition, "{created:?}");
        assert_eq!(reason(&created).as_deref(), Some("DELETION_PENDING"));
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_key_service_that_refuses_this_service_is_internal_not_an_outage() {
    on_each_backend(|db| async {
        let mut stack = Stack::spawn(db).await;
        // key-service's default table lets credential-service use only the `credentials` and
        // `credential-audit` keys of each tenant: another key id is refused.
        stack
            .restart_credential_service_with(|config| config.data_key_id = "elsewhere".into())
            .await;
        let refused = stack
            .client()
            .await
            .create_credential(stack.as_user("admin", new_credential("s", &[("A", "b")])))
            .await
            .unwrap_err();
        assert_eq!(
            (refused.code(), refused.message()),
            (Code::Internal, "internal error"),
            "{refused:?}"
        );
        assert_eq!(reason(&refused).as_deref(), Some("INTERNAL"));
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn key_service_down_is_unavailable_with_its_reason() {
    on_each_backend(|db| async {
        let mut stack = Stack::spawn(db).await;
        // One call first: the stack is serving (start-up itself needs key-service).
        stack.create("first", &[("A", "b")]).await;
        stack.services.key_service.stop().await.unwrap();
        let status = stack
            .client()
            .await
            .create_credential(stack.as_user("admin", new_credential("s", &[("A", "b")])))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(reason(&status).as_deref(), Some("UNAVAILABLE"));
        stack.services.credential_service.stop().await.unwrap();
        stack.services.auth_service.stop().await.unwrap();
    })
    .await;
}
