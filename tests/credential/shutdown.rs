//! Graceful shutdown: an in-flight call completes, new calls are not served.

use std::time::Duration;

use coffer_proto::pb;
use coffer_proto::pb::credential_service_client::CredentialServiceClient;
use coffer_test_support::{Backend, RowLock, TestDatabase, connect};
use coffer_transport::dev_ca::Usage;

use crate::helpers::Stack;

/// PostgreSQL only: its lock waits are visible in `pg_stat_activity`, so the test knows the
/// call is inside the server before it signals shutdown.
#[tokio::test]
async fn shutdown_lets_the_in_flight_call_finish_and_refuses_new_ones() {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let mut stack = Stack::spawn(db).await;
    let created = stack
        .create("github", &[("ORG", "acme-and-more-chars")])
        .await;
    let id = created.name.rsplit('/').next().unwrap().to_owned();
    let mut lock = RowLock::take(
        &stack.database.url_in("coffer_credential"),
        &format!("SELECT 1 FROM cred_credentials WHERE id = '{id}' FOR UPDATE"),
    )
    .await;
    let mut client = stack.client().await;
    let update = stack.as_user(
        "admin",
        pb::UpdateCredentialRequest {
            name: created.name.clone(),
            row_version: 1,
            set_env: [("ORG".to_owned(), "globex-and-more-chars".to_owned())].into(),
            ..Default::default()
        },
    );
    let in_flight = tokio::spawn(async move { client.update_credential(update).await });
    lock.wait_until_blocked().await;

    let server = stack.services.credential_service.signal_shutdown();
    let material = stack.ca.issue_material("gateway", Usage::Client).unwrap();
    let addr = stack.services.credential_service.addr;
    let request = stack.as_user(
        "admin",
        pb::GetCredentialRequest {
            name: created.name.clone(),
        },
    );
    let late = tokio::time::timeout(Duration::from_secs(3), async {
        let channel = connect(addr, material.client_config("127.0.0.1")).await?;
        CredentialServiceClient::new(channel)
            .get_credential(request)
            .await
            .map_err(anyhow::Error::from)
    })
    .await;
    assert!(
        !matches!(late, Ok(Ok(_))),
        "a call after shutdown succeeded"
    );

    lock.release().await;
    let updated = in_flight
        .await
        .unwrap()
        .expect("the in-flight call must complete")
        .into_inner();
    assert_eq!(updated.row_version, 2);
    server.await.unwrap().unwrap();
    stack.services.auth_service.stop().await.unwrap();
    stack.services.key_service.stop().await.unwrap();
}
