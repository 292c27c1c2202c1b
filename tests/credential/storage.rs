//! At rest: no plaintext anywhere in the rows; ciphertexts bound to their row; key-service
//! down means cached reads only, and nothing written half-way.

use coffer_proto::pb;
use coffer_test_support::on_each_backend;
use sqlx::Row as _;
use tonic::Code;

use crate::helpers::{Stack, assert_status, new_credential};

const SECRET: &str = "sk-live-4f9a2b7c1d8e3f60a5b4c3d2e1f0";

#[tokio::test]
async fn rows_hold_no_plaintext_and_swapped_ciphertexts_do_not_decrypt() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        let first = stack.create("s1", &[("API_KEY", SECRET)]).await;
        let second = stack.create("s2", &[("API_KEY", "another-secret-value-xyz")]).await;

        let mut raw = stack.raw_database().await;
        let rows = sqlx::query("SELECT id, wrapped_dek, ciphertext, server_id, server_name, configured_integrations FROM cred_credentials")
            .fetch_all(&mut raw)
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        for row in &rows {
            for column in [1usize, 2] {
                let bytes: Vec<u8> = row.get(column);
                assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "plaintext in column {column}");
                assert!(!bytes.windows(8).any(|w| w == b"API_KEY\""), "the map is not stored in the clear");
            }
            for column in [3usize, 4, 5] {
                let text: String = row.get(column);
                assert!(!text.contains(SECRET));
            }
        }

        // Move the first row's ciphertext into the second row: it must not decrypt there.
        let first_ciphertext: Vec<u8> = rows.iter().find(|r| first.name.ends_with(&r.get::<String, _>(0))).unwrap().get(2);
        let second_id = second.name.rsplit('/').next().unwrap().to_owned();
        sqlx::query("UPDATE cred_credentials SET ciphertext = $1 WHERE id = $2")
            .bind(first_ciphertext)
            .bind(second_id)
            .execute(&mut raw)
            .await
            .unwrap();
        let swapped = stack.reveal(&second.name).await;
        // An integrity failure of a stored row: DATA_LOSS, saying nothing about the row.
        assert_status(swapped, Code::DataLoss, "stored data fails its integrity check");
        let events = sqlx::query("SELECT action FROM cred_audit_events WHERE action = 'decrypt_failed'")
            .fetch_all(&mut raw)
            .await
            .unwrap();
        assert_eq!(events.len(), 1, "a failed decryption is audited");
        let metrics = stack.metrics().await;
        assert!(metrics.contains("coffer_credential_decrypt_failures_total 1"), "and counted:\n{metrics}");
        assert_eq!(stack.reveal(&first.name).await.unwrap().env["API_KEY"], SECRET);
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn with_key_service_down_only_cached_reads_work_and_nothing_is_half_written() {
    on_each_backend(|db| async {
        let mut stack = Stack::spawn(db).await;
        let cached = stack.create("s1", &[("A", "one")]).await;
        let uncached = stack.create("s2", &[("A", "two")]).await;
        // The tenant's key was created just now. Key changes have one-second resolution, so
        // the watcher re-reads the last second on every poll and evicts the tenant's data keys
        // while its key's change is that recent: a read warmed now could be evicted before the
        // outage below. Two seconds (of key-service's system clock, which stamps the change)
        // take the change out of every later poll.
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        // A fresh cache on a manual clock, then one read to warm it for `cached` only.
        let clock = coffer_server::Clock::manual();
        stack
            .restart_credential_service_with(|config| config.clock = clock.clone())
            .await;
        let mut client = stack.client().await;
        let viewer = stack.tokens["viewer"].clone();
        let get = |name: &str| {
            let mut request = tonic::Request::new(pb::GetCredentialRequest { name: name.into() });
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {viewer}").parse().unwrap());
            request
        };
        client.get_credential(get(&cached.name)).await.unwrap();

        stack.services.key_service.stop().await.unwrap();
        // The key-change watcher last heard from key-service "now" on the manual clock, which
        // stands still: the cached data key is served however slow this machine is.
        let cached_read = client.get_credential(get(&cached.name)).await;
        assert!(cached_read.is_ok(), "cached data key: {cached_read:?}");
        assert_status(
            client.get_credential(get(&uncached.name)).await,
            Code::Unavailable,
            "unavailable",
        );
        let created = client
            .create_credential(stack.as_user("admin", new_credential("s3", &[("A", "x")])))
            .await;
        assert_status(created, Code::Unavailable, "unavailable");
        // More than a second without news of key changes: the cache is not trusted (fail closed).
        clock.advance(2);
        assert_status(
            client.get_credential(get(&cached.name)).await,
            Code::Unavailable,
            "unavailable",
        );

        let mut raw = stack.raw_database().await;
        let count: i64 = sqlx::query("SELECT COUNT(*) FROM cred_credentials")
            .fetch_one(&mut raw)
            .await
            .unwrap()
            .get(0);
        assert_eq!(count, 2, "the failed create wrote nothing");
        stack.services.credential_service.stop().await.unwrap();
        stack.services.auth_service.stop().await.unwrap();
    })
    .await;
}

/// One PostgreSQL database serves all three services: each keeps its tables and its migration
/// history in its own schema (`coffer_key`, `coffer_auth`, `coffer_credential`), so their
/// migrations no longer collide in one `_sqlx_migrations` table. Restarting on the same
/// database finds everything where it was.
#[tokio::test]
async fn three_services_share_one_postgres_database_each_in_its_schema() {
    let Some(db) =
        coffer_test_support::TestDatabase::create(coffer_test_support::Backend::Postgres).await
    else {
        return;
    };
    let mut stack = Stack::spawn_sharing(db).await;
    let created = stack.create("shared", &[("API_KEY", SECRET)]).await;
    let revealed = stack.reveal(&created.name).await.unwrap();
    assert_eq!(revealed.env["API_KEY"], SECRET);

    use sqlx::Connection as _;
    let mut raw = sqlx::AnyConnection::connect(stack.database.url())
        .await
        .unwrap();
    let tables: Vec<(String, String)> = sqlx::query(
        "SELECT table_schema::text AS table_schema, table_name::text AS table_name \
         FROM information_schema.tables \
         WHERE table_name IN ('_sqlx_migrations', 'kms_keys', 'auth_tenants', 'cred_credentials') \
         ORDER BY table_schema, table_name",
    )
    .fetch_all(&mut raw)
    .await
    .unwrap()
    .iter()
    .map(|row| (row.get("table_schema"), row.get("table_name")))
    .collect();
    let expected: Vec<(String, String)> = [
        ("coffer_auth", "_sqlx_migrations"),
        ("coffer_auth", "auth_tenants"),
        ("coffer_credential", "_sqlx_migrations"),
        ("coffer_credential", "cred_credentials"),
        ("coffer_key", "_sqlx_migrations"),
        ("coffer_key", "kms_keys"),
    ]
    .map(|(schema, table)| (schema.to_owned(), table.to_owned()))
    .into();
    assert_eq!(
        tables, expected,
        "nothing in public, one history per service"
    );

    stack.restart_credential_service().await;
    let again = stack.reveal(&created.name).await.unwrap();
    assert_eq!(again.env["API_KEY"], SECRET);
}
