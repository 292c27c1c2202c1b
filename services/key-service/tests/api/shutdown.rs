//! Graceful shutdown: an in-flight call completes, new calls fail.

use std::time::Duration;

use coffer_proto::pb;
use coffer_proto::pb::key_service_client::KeyServiceClient;
use coffer_test_support::{Backend, TestDatabase, connect};
use coffer_transport::dev_ca::Usage;
use sqlx::{Connection as _, Row as _};

use crate::helpers::spawn_app;

const KEY: &str = "tenants/acme/keys/db";

/// PostgreSQL only: its lock waits are visible in `pg_stat_activity`, which lets the test know
/// for certain that the call is in flight inside the server before it signals shutdown.
#[tokio::test]
async fn shutdown_lets_the_in_flight_call_finish_and_refuses_new_ones() {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let mut app = spawn_app(db).await;
    app.create_key(KEY).await;

    // Hold the key's row lock so a RotateKey blocks inside the server.
    let mut blocker = sqlx::PgConnection::connect(&app.database.url_in("coffer_key"))
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
    sqlx::query("SELECT 1 FROM kms_keys WHERE key_id = 'db' FOR UPDATE")
        .execute(&mut blocker)
        .await
        .unwrap();

    let mut client = app.client();
    let in_flight = tokio::spawn(async move {
        client
            .rotate_key(pb::RotateKeyRequest { name: KEY.into() })
            .await
    });
    let mut observer = sqlx::PgConnection::connect(&app.database.url_in("coffer_key"))
        .await
        .unwrap();
    let mut waiting = false;
    for _ in 0..500 {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut observer)
        .await
        .unwrap();
        if row.get::<i64, _>(0) > 0 {
            waiting = true;
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(waiting, "the RotateKey call never reached the database");

    let server = app.signal_shutdown();
    // A new connection is not served once shutdown began.
    let material = app
        .ca
        .issue_material("operator/late", Usage::Client)
        .unwrap();
    let late = tokio::time::timeout(Duration::from_secs(3), async {
        let channel = connect(app.addr, material.client_config("127.0.0.1")).await?;
        KeyServiceClient::new(channel)
            .get_key(pb::GetKeyRequest { name: KEY.into() })
            .await
            .map_err(anyhow::Error::from)
    })
    .await;
    assert!(
        !matches!(late, Ok(Ok(_))),
        "a call after shutdown succeeded"
    );

    sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();
    let rotated = in_flight
        .await
        .unwrap()
        .expect("the in-flight call must complete");
    assert_eq!(rotated.into_inner().primary_version, 2);
    server.await.unwrap().unwrap();
}
