//! Key records are served from memory (see `coffer_db::fresh`), and a change made on one
//! replica still takes effect on every other within a second: by the cache's one-second TTL,
//! and on PostgreSQL at once through NOTIFY (proven here with a TTL far longer than the bound).

use std::time::{Duration, Instant};

use coffer_crypto::RootKeyring;
use coffer_proto::pb;
use coffer_test_support::{Backend, TestDatabase};
use tonic::Code;

use crate::helpers::{Options, TestApp, spawn_with};

const KEY: &str = "tenants/acme/keys/shared";
/// The staleness bound the README states for replicas.
const BOUND: Duration = Duration::from_secs(1);

/// Two key-services on one PostgreSQL database; the second's record cache lives for `ttl`.
async fn replicas(ttl: Option<Duration>) -> Option<(TestApp, TestApp)> {
    let db = TestDatabase::create(Backend::Postgres).await?;
    let keyring = RootKeyring::generate().unwrap();
    let same = RootKeyring::parse(&keyring.to_text()).unwrap();
    let mut options = Options::new();
    options.keyring = keyring;
    let first = spawn_with(db, options).await.unwrap();
    let second = first.replica(same, ttl).await;
    Some((first, second))
}

/// Polls `call` until it fails with `code`, for at most [`BOUND`]; returns how long it took.
async fn refused_within<F, Fut, T>(what: &str, code: Code, mut call: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let started = Instant::now();
    loop {
        match call().await {
            Err(status) if status.code() == code => return started.elapsed(),
            _ => assert!(
                started.elapsed() < BOUND,
                "{what} was still accepted after {BOUND:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn retiring_a_version_reaches_the_other_replica(ttl: Option<Duration>) {
    let Some((first, second)) = replicas(ttl).await else {
        return;
    };
    first.create_key(KEY).await;
    let v1 = first.encrypt(KEY, b"old", &[]).await;
    first.rotate(KEY).await;
    // The second replica has the record in memory now.
    let decrypted = second.decrypt(KEY, &v1, &[]).await.unwrap();
    assert_eq!(decrypted.plaintext, b"old");

    first.update_policy(KEY, Some(2), None, None).await.unwrap();
    refused_within("a retired version", Code::FailedPrecondition, || {
        second.decrypt(KEY, &v1, &[])
    })
    .await;

    // Disabling the key stops Encrypt on the other replica too.
    second.encrypt(KEY, b"warm", &[]).await;
    first
        .client()
        .disable_key(pb::DisableKeyRequest { name: KEY.into() })
        .await
        .unwrap();
    refused_within("a disabled key", Code::FailedPrecondition, || {
        let mut client = second.client();
        async move {
            client
                .encrypt(pb::EncryptRequest {
                    name: KEY.into(),
                    plaintext: b"x".to_vec(),
                    ..Default::default()
                })
                .await
        }
    })
    .await;
}

#[tokio::test]
async fn with_the_default_ttl_a_retired_version_is_refused_by_the_other_replica_within_a_second() {
    retiring_a_version_reaches_the_other_replica(None).await;
}

/// With an hour-long TTL only the NOTIFY can evict the second replica's record in time.
#[tokio::test]
async fn notify_evicts_the_other_replicas_record_at_once() {
    retiring_a_version_reaches_the_other_replica(Some(Duration::from_secs(3600))).await;
}
