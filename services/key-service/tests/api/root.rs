//! RotateRootKey, and refusing to start without the root keys the stored versions need.

use coffer_key_service::Error;
use coffer_key_service::keyring::RootKeyring;
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
            },
        )
        .await;
        assert!(
            matches!(refused, Err(Error::RootKeyMissing(1))),
            "{:?}",
            refused.err()
        );
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
            },
        )
        .await
        .unwrap();
        let status = app.decrypt(name, &v1, &[]).await.unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (Code::Internal, "internal error")
        );
        let (db, ca, clock) = app.stop().await;

        // A keyring whose version 1 holds different bytes fails the same way.
        let app = spawn_with(
            db,
            Options {
                keyring: RootKeyring::generate().unwrap(),
                ca,
                clock,
            },
        )
        .await
        .unwrap();
        let status = app.decrypt(name, &v1, &[]).await.unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (Code::Internal, "internal error")
        );
    })
    .await;
}
