//! Masked reads serve credential rows from memory (`coffer_db::fresh`), and a change made
//! through one replica still reaches another's masked reads within a second: by the row
//! cache's TTL, and on PostgreSQL at once through NOTIFY (proven here with a second replica
//! whose TTL is an hour, far beyond the bound). Reveals start from the cached row too, but
//! their audit event is appended only if the row is still current when it commits, so a
//! reveal never hands out a row that has changed or is gone: proven here by changing the
//! database behind a cache whose TTL is an hour.

use std::time::{Duration, Instant};

use coffer_proto::pb;
use coffer_proto::pb::credential_service_client::CredentialServiceClient;
use coffer_test_support::{Backend, TestDatabase, connect, on_each_backend};
use coffer_transport::dev_ca::Usage;
use tonic::Code;

use crate::helpers::{Client, Stack, assert_status};

/// The staleness bound the README states for replicas.
const BOUND: Duration = Duration::from_secs(1);

/// Polls `get` until `done` holds for its answer, for at most [`BOUND`].
async fn within_bound<F, Fut>(
    what: &str,
    mut get: F,
    done: impl Fn(&Result<pb::Credential, tonic::Status>) -> bool,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<pb::Credential, tonic::Status>>,
{
    let started = Instant::now();
    loop {
        if done(&get().await) {
            return;
        }
        assert!(started.elapsed() < BOUND, "{what} not seen after {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn update(name: &str, row_version: u64, org: &str) -> pb::UpdateCredentialRequest {
    pb::UpdateCredentialRequest {
        name: name.to_owned(),
        row_version,
        set_env: [("ORG".to_owned(), org.to_owned())].into(),
        unset_env: vec![],
        set_sealed_env: Default::default(),
        set_opaque: None,
    }
}

#[tokio::test]
async fn a_change_through_one_replica_reaches_the_others_masked_reads_within_a_second() {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let stack = Stack::spawn(db).await;
    let mut replica = stack
        .services
        .credential_replica(|config| config.row_cache_ttl = Duration::from_secs(3600))
        .await
        .unwrap();
    let material = stack.ca.issue_material("gateway", Usage::Client).unwrap();
    let other: Client = CredentialServiceClient::new(
        connect(replica.addr, material.client_config("127.0.0.1"))
            .await
            .unwrap(),
    );
    let mut first = stack.client().await;
    let created = stack
        .create("github", &[("ORG", "acme-original-value")])
        .await;
    let get = |client: &Client| {
        let mut client = client.clone();
        let request = stack.as_user(
            "admin",
            pb::GetCredentialRequest {
                name: created.name.clone(),
            },
        );
        async move {
            client
                .get_credential(request)
                .await
                .map(tonic::Response::into_inner)
        }
    };
    // The other replica has the row in memory now.
    assert_eq!(get(&other).await.unwrap().row_version, 1);

    // A change through the first replica: seen there at once, and by the other within the
    // bound although its own TTL is an hour.
    first
        .update_credential(stack.as_user("admin", update(&created.name, 1, "acme-second-value")))
        .await
        .unwrap();
    assert_eq!(get(&first).await.unwrap().row_version, 2);
    within_bound(
        "an update",
        || get(&other),
        |answer| answer.as_ref().is_ok_and(|c| c.row_version == 2),
    )
    .await;

    // The other replica's own change is seen by its next read at once, and by the first.
    let mut through_other = other.clone();
    through_other
        .update_credential(stack.as_user("admin", update(&created.name, 2, "acme-third-value")))
        .await
        .unwrap();
    assert_eq!(get(&other).await.unwrap().row_version, 3);
    within_bound(
        "the other's update",
        || get(&first),
        |answer| answer.as_ref().is_ok_and(|c| c.row_version == 3),
    )
    .await;

    // A deletion: the other replica's masked read is NOT_FOUND within the bound.
    first
        .delete_credential(stack.as_user(
            "admin",
            pb::DeleteCredentialRequest {
                name: created.name.clone(),
            },
        ))
        .await
        .unwrap();
    within_bound(
        "a deletion",
        || get(&other),
        |answer| {
            answer
                .as_ref()
                .is_err_and(|status| status.code() == Code::NotFound)
        },
    )
    .await;
    replica.stop().await.unwrap();
    stack.shutdown().await;
}

/// Sets the credential's stored content (ciphertext and versions) to the copy saved in
/// `cred_saved` under `copy`, behind the service's back: no eviction, no NOTIFY.
async fn restore(raw: &mut sqlx::AnyConnection, id: &str, copy: &str) {
    let from = |column: &str| {
        format!("{column} = (SELECT {column} FROM cred_saved WHERE copy = '{copy}')")
    };
    let sql = format!(
        "UPDATE cred_credentials SET {}, {}, {}, {} WHERE id = $1",
        from("ciphertext"),
        from("row_version"),
        from("updated_by"),
        from("update_time"),
    );
    let updated = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .execute(&mut *raw)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 1);
}

async fn save(raw: &mut sqlx::AnyConnection, id: &str, copy: &str) {
    let sql = format!(
        "INSERT INTO cred_saved SELECT '{copy}', ciphertext, row_version, updated_by, \
         update_time FROM cred_credentials WHERE id = $1"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .execute(&mut *raw)
        .await
        .unwrap();
}

async fn reveal_events(raw: &mut sqlx::AnyConnection) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM cred_audit_events WHERE action = 'reveal'")
        .fetch_one(&mut *raw)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_reveal_never_hands_out_a_row_changed_or_deleted_behind_its_cache() {
    on_each_backend(|db| async {
        let mut stack = Stack::spawn(db).await;
        stack
            .restart_credential_service_with(|config| {
                config.row_cache_ttl = Duration::from_secs(3600);
            })
            .await;
        let created = stack.create("github", &[("ORG", "acme-first-value")]).await;
        let id = created.name.rsplit('/').next().unwrap().to_owned();
        let mut raw = stack.raw_database().await;
        let bytes = match stack.database.backend() {
            Backend::Postgres => "BYTEA",
            Backend::Sqlite => "BLOB",
        };
        let table = format!(
            "CREATE TABLE cred_saved (copy TEXT, ciphertext {bytes}, row_version BIGINT, \
             updated_by TEXT, update_time BIGINT)"
        );
        sqlx::query(sqlx::AssertSqlSafe(table))
            .execute(&mut raw)
            .await
            .unwrap();
        save(&mut raw, &id, "first").await;
        stack
            .client()
            .await
            .update_credential(
                stack.as_user("admin", update(&created.name, 1, "acme-second-value")),
            )
            .await
            .unwrap();
        save(&mut raw, &id, "second").await;

        // The service caches the first version, then the database moves to the second
        // without telling it.
        restore(&mut raw, &id, "first").await;
        let get = || {
            let request = stack.as_user(
                "admin",
                pb::GetCredentialRequest {
                    name: created.name.clone(),
                },
            );
            async {
                stack
                    .client()
                    .await
                    .get_credential(request)
                    .await
                    .map(tonic::Response::into_inner)
            }
        };
        assert_eq!(get().await.unwrap().row_version, 1);
        restore(&mut raw, &id, "second").await;
        assert_eq!(
            get().await.unwrap().row_version,
            1,
            "the masked read is cached"
        );
        let before = reveal_events(&mut raw).await;

        let revealed = stack.reveal(&created.name).await.unwrap();
        assert_eq!(revealed.row_version, 2);
        assert_eq!(revealed.env["ORG"], "acme-second-value");
        assert_eq!(
            reveal_events(&mut raw).await,
            before + 1,
            "one event per reveal"
        );
        assert_eq!(
            get().await.unwrap().row_version,
            2,
            "the reveal refreshed the cache"
        );

        // Deleted behind the cache: refused, and nothing is recorded as revealed.
        sqlx::query("DELETE FROM cred_credentials WHERE id = $1")
            .bind(&id)
            .execute(&mut raw)
            .await
            .unwrap();
        assert_eq!(
            get().await.unwrap().row_version,
            2,
            "the masked read is cached"
        );
        assert_status(
            stack.reveal(&created.name).await,
            Code::NotFound,
            &created.name,
        );
        assert_eq!(reveal_events(&mut raw).await, before + 1);
        assert_status(get().await, Code::NotFound, &created.name);
        stack.shutdown().await;
    })
    .await;
}
