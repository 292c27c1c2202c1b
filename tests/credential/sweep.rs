//! Re-wrap sweeps after a tenant key rotation: every row moves to the primary version, a
//! sweep cut short resumes after a restart, and everything still decrypts.

use coffer_proto::pb;
use coffer_test_support::on_each_backend;
use sqlx::Row as _;
use tonic::Code;

use crate::helpers::{Stack, assert_status};

#[tokio::test]
async fn after_a_rotation_the_sweep_moves_every_row_and_resumes_after_a_restart() {
    on_each_backend(|db| async {
        let mut stack = Stack::spawn(db).await;
        let mut names = Vec::new();
        for i in 0..5 {
            names.push(
                stack
                    .create(
                        &format!("server-{i}"),
                        &[("TOKEN", &format!("secret-number-{i}-padded"))],
                    )
                    .await
                    .name,
            );
        }
        assert_eq!(stack.rotate_tenant_key("acme").await, 2);

        let rewrap = |max_pages: u32| {
            stack.as_user(
                "admin",
                pb::RewrapCredentialsRequest {
                    parent: "tenants/acme".into(),
                    max_pages,
                },
            )
        };
        let mut client = stack.client().await;
        let first = client
            .rewrap_credentials(rewrap(1))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (
                first.target_version,
                first.rewrapped,
                first.remaining,
                first.done
            ),
            (2, 2, 3, false)
        );
        assert!(!first.cursor.is_empty());
        let progress = client
            .get_rewrap_progress(stack.as_user(
                "viewer",
                pb::GetRewrapProgressRequest {
                    parent: "tenants/acme".into(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(progress, first, "progress is visible");
        assert_status(
            client
                .rewrap_credentials(stack.as_user(
                    "viewer",
                    pb::RewrapCredentialsRequest {
                        parent: "tenants/acme".into(),
                        max_pages: 1,
                    },
                ))
                .await,
            Code::PermissionDenied,
            "permission denied",
        );

        // The sweep is cut short by a restart, and resumes from its saved cursor.
        stack.restart_credential_service().await;
        let mut client = stack.client().await;
        let rewrap = |max_pages: u32| {
            stack.as_user(
                "admin",
                pb::RewrapCredentialsRequest {
                    parent: "tenants/acme".into(),
                    max_pages,
                },
            )
        };
        let done = client
            .rewrap_credentials(rewrap(0))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (done.rewrapped, done.remaining, done.done, done.failed),
            (5, 0, true, 0)
        );

        let mut raw = stack.raw_database().await;
        let versions: Vec<i64> =
            sqlx::query("SELECT dek_key_version FROM cred_credentials ORDER BY id")
                .fetch_all(&mut raw)
                .await
                .unwrap()
                .iter()
                .map(|row| row.get(0))
                .collect();
        assert_eq!(versions, vec![2; 5]);
        for (i, name) in names.iter().enumerate() {
            assert_eq!(
                stack.reveal(name).await.unwrap().env["TOKEN"],
                format!("secret-number-{i}-padded")
            );
        }
        // Nothing left: another run moves nothing.
        let again = client
            .rewrap_credentials(rewrap(0))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((again.rewrapped, again.remaining), (5, 0));
        stack.shutdown().await;
    })
    .await;
}
