//! RotateRootKey, and refusing to start without the root keys the stored versions need.

use coffer_crypto::RootKeyring;
use coffer_key_service::Error;
use coffer_proto::pb;
use coffer_test_support::on_each_backend;
use sqlx::Row as _;
use tonic::Code;

use crate::helpers::{Options, spawn_with};

#[tokio::test]
async fn root_rotation_rewraps_everything_so_the_old_root_key_can_go() {
    on_each_backend(|db| async {
        let keyring = RootKeyring::generate().unwrap();
        let rotated_keyring = keyring.with_new_version().unwrap();
        let mut options = Options::new();
        options.keyring = keyring;
        let app = spawn_with(db, options).await.unwrap();

        let mut ciphertexts = Vec::new();
        for name in [
            "tenants/a/keys/one",
            "tenants/a/keys/two",
            "tenants/b/keys/one",
        ] {
            app.create_key(name).await;
            ciphertexts.push((name, app.encrypt(name, name.as_bytes(), &[]).await));
            app.rotate(name).await;
            ciphertexts.push((name, app.encrypt(name, name.as_bytes(), &[]).await));
        }
        let (db, ca, clock) = app.stop().await;

        // Restart with root key 2 added, and rotate onto it.
        let only_v2 = rotated_keyring.retain(|v| v == 2).unwrap();
        let app = spawn_with(
            db,
            Options {
                keyring: rotated_keyring,
                ca: ca.clone(),
                clock: clock.clone(),
                schema: None,
                record_cache_ttl: None,
                auth_service: None,
            },
        )
        .await
        .unwrap();
        let rotated = app
            .client()
            .rotate_root_key(pb::RotateRootKeyRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (rotated.root_key_version, rotated.rewrapped_versions),
            (2, 6)
        );
        let again = app
            .client()
            .rotate_root_key(pb::RotateRootKeyRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again.rewrapped_versions, 0, "rotation is idempotent");
        let (db, ca, clock) = app.stop().await;

        // Root key 1 is no longer needed.
        let app = spawn_with(
            db,
            Options {
                keyring: only_v2,
                ca,
                clock,
                schema: None,
                record_cache_ttl: None,
                auth_service: None,
            },
        )
        .await
        .unwrap();
        for (name, ciphertext) in &ciphertexts {
            let decrypted = app.decrypt(name, ciphertext, &[]).await.unwrap();
            assert_eq!(decrypted.plaintext, name.as_bytes());
        }
    })
    .await;
}

#[tokio::test]
async fn a_keyring_missing_a_used_root_key_is_refused_at_start() {
    on_each_backend(|db| async {
        let keyring = RootKeyring::generate().unwrap();
        let newer = keyring
            .with_new_version()
            .unwrap()
            .retain(|v| v == 2)
            .unwrap();
        let mut options = Options::new();
        options.keyring = keyring;
        let app = spawn_with(db, options).await.unwrap();
        app.create_key("tenants/a/keys/one").await;
        let (db, ca, clock) = app.stop().await;

        let refused = spawn_with(
            db,
            Options {
                keyring: newer,
                ca,
                clock,
                schema: None,
                record_cache_ttl: None,
                auth_service: None,
            },
        )
        .await;
        let error = refused.err().map(|refused| refused.error);
        assert!(matches!(error, Some(Error::RootKeyMissing(1))), "{error:?}");
    })
    .await;
}

#[tokio::test]
async fn tampered_stored_material_fails_closed_without_detail() {
    on_each_backend(|db| async {
        let keyring = RootKeyring::generate().unwrap();
        let same_keyring = RootKeyring::parse(&keyring.to_text()).unwrap();
        let mut options = Options::new();
        options.keyring = keyring;
        let app = spawn_with(db, options).await.unwrap();
        let name = "tenants/a/keys/one";
        app.create_key(name).await;
        let v1 = app.encrypt(name, b"x", &[]).await;
        app.rotate(name).await;

        // Swap the wrapped material of versions 1 and 2: each is bound to its version number.
        let mut raw = app.raw_database().await;
        let rows = sqlx::query("SELECT version, wrapped FROM kms_key_versions ORDER BY version")
            .fetch_all(&mut raw)
            .await
            .unwrap();
        for (row, other) in [(0, 1), (1, 0)] {
            sqlx::query("UPDATE kms_key_versions SET wrapped = $1 WHERE version = $2")
                .bind(rows[other].get::<Vec<u8>, _>(1))
                .bind(rows[row].get::<i64, _>(0))
                .execute(&mut raw)
                .await
                .unwrap();
        }
        drop(raw);
        let (db, ca, clock) = app.stop().await;
        let app = spawn_with(
            db,
            Options {
                keyring: same_keyring,
                ca: ca.clone(),
                clock: clock.clone(),
                schema: None,
                record_cache_ttl: None,
                auth_service: None,
            },
        )
        .await
        .unwrap();
        // An integrity failure of stored data: DATA_LOSS, not a generic INTERNAL, and still
        // nothing about which row or why.
        let status = app.decrypt(name, &v1, &[]).await.unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (Code::DataLoss, "stored data fails its integrity check")
        );
        assert_eq!(
            coffer_server::status::reason(&status).as_deref(),
            Some("DATA_LOSS")
        );
    })
    .await;
}

/// Rows per table, to prove that a refused start wrote nothing.
async fn row_counts(raw: &mut sqlx::AnyConnection) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in ["kms_keys", "kms_key_versions", "kms_root_key_checks"] {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&mut *raw)
            .await
            .unwrap();
        counts.push(row.get::<i64, _>(0));
    }
    counts
}

#[tokio::test]
async fn wrong_root_key_with_a_known_version_is_refused_at_start_and_writes_nothing() {
    on_each_backend(|db| async {
        let keyring = RootKeyring::generate().unwrap();
        let same_keyring = || RootKeyring::parse(&keyring.to_text()).unwrap();
        let mut options = Options::new();
        options.keyring = same_keyring();
        let app = spawn_with(db, options).await.unwrap();
        let name = "tenants/a/keys/one";
        app.create_key(name).await;
        let ciphertext = app.encrypt(name, b"kept", &[]).await;
        let mut raw = app.raw_database().await;
        let before = row_counts(&mut raw).await;
        assert_eq!(before, [1, 1, 1]);
        let (db, ca, clock) = app.stop().await;
        let restart = |db, keyring| {
            spawn_with(
                db,
                Options {
                    keyring,
                    ca: ca.clone(),
                    clock: clock.clone(),
                    schema: None,
                    record_cache_ttl: None,
                    auth_service: None,
                },
            )
        };

        // Another random key, numbered 1 like the real one.
        let refused = restart(db, RootKeyring::generate().unwrap())
            .await
            .err()
            .unwrap();
        assert!(
            matches!(refused.error, Error::RootKeyMismatch(1)),
            "{refused:?}"
        );
        assert!(refused.error.to_string().contains("root key version 1"));
        assert_eq!(
            row_counts(&mut raw).await,
            before,
            "the refused start wrote"
        );

        // A database from before check values: the wrong key is caught by what it cannot
        // open; the right one opens it and has its check value recorded.
        sqlx::query("DELETE FROM kms_root_key_checks")
            .execute(&mut raw)
            .await
            .unwrap();
        let refused = restart(refused.database, RootKeyring::generate().unwrap())
            .await
            .err()
            .unwrap();
        assert!(
            matches!(refused.error, Error::RootKeyMismatch(1)),
            "{refused:?}"
        );
        assert_eq!(
            row_counts(&mut raw).await,
            [1, 1, 0],
            "the refused start wrote"
        );
        let app = restart(refused.database, same_keyring()).await.unwrap();
        assert_eq!(row_counts(&mut raw).await, before);
        let decrypted = app.decrypt(name, &ciphertext, &[]).await.unwrap();
        assert_eq!(decrypted.plaintext, b"kept");
        drop(raw);
        app.stop().await;
    })
    .await;
}
