//! Graceful shutdown: an in-flight call completes, new calls are not served.

use std::time::Duration;

use coffer_proto::pb;
use coffer_proto::pb::auth_service_client::AuthServiceClient;
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
    stack.tenant_with_user("acme", "alice", &["viewer"]).await;
    let mut lock = RowLock::take(
        &stack.database.url_in("coffer_auth"),
        "SELECT 1 FROM auth_principals WHERE tenant = 'acme' AND id = 'alice' FOR UPDATE",
    )
    .await;
    let mut operator = stack.operator();
    let in_flight = tokio::spawn(async move {
        operator
            .set_roles(pb::SetRolesRequest {
                name: "tenants/acme/principals/alice".into(),
                roles: vec!["developer".into()],
            })
            .await
    });
    lock.wait_until_blocked().await;

    let server = stack.auth.signal_shutdown();
    let material = stack
        .ca
        .issue_material("operator/late", Usage::Client)
        .unwrap();
    let late = tokio::time::timeout(Duration::from_secs(3), async {
        let channel = connect(stack.auth.addr, material.client_config("127.0.0.1")).await?;
        AuthServiceClient::new(channel)
            .get_tenant(pb::GetTenantRequest {
                name: "tenants/acme".into(),
            })
            .await
            .map_err(anyhow::Error::from)
    })
    .await;
    assert!(
        !matches!(late, Ok(Ok(_))),
        "a call after shutdown succeeded"
    );

    lock.release().await;
    let changed = in_flight
        .await
        .unwrap()
        .expect("the in-flight call must complete")
        .into_inner();
    assert_eq!(changed.roles, vec!["developer".to_owned()]);
    server.await.unwrap().unwrap();
    stack.key_service.stop().await;
}
