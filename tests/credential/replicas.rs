//! Masked reads serve credential rows from memory (`coffer_db::fresh`), and a change made
//! through one replica still reaches another's masked reads within a second: by the row
//! cache's TTL, and on PostgreSQL at once through NOTIFY (proven here with a second replica
//! whose TTL is an hour, far beyond the bound). Reveals always read the database.

use std::time::{Duration, Instant};

use coffer_proto::pb;
use coffer_proto::pb::credential_service_client::CredentialServiceClient;
use coffer_test_support::{Backend, TestDatabase, connect};
use coffer_transport::dev_ca::Usage;
use tonic::Code;

use crate::helpers::{Client, Stack};

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
