//! RotateKey: old ciphertexts keep decrypting until retired; versions stay gap-free under load.

use std::collections::BTreeSet;

use coffer_proto::pb;
use coffer_test_support::on_each_backend;
use sqlx::Row as _;
use tonic::Code;

use crate::helpers::{assert_status, spawn_app};

const KEY: &str = "tenants/acme/keys/db";

#[tokio::test]
async fn rotation_rewrap_and_retirement_follow_the_policy() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        app.create_key(KEY).await;
        let v1 = app.encrypt(KEY, b"old secret", &[]).await;

        let key = app.rotate(KEY).await;
        assert_eq!(key.primary_version, 2);
        let v2 = app.encrypt(KEY, b"new secret", &[]).await;
        assert_eq!(v2[1..5], 2u32.to_be_bytes());
        assert_eq!(app.decrypt(KEY, &v1, &[]).await.unwrap().key_version, 1);

        let moved = app
            .client()
            .rewrap(pb::RewrapRequest {
                name: KEY.into(),
                ciphertext: v1.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(moved.key_version, 2);

        app.update_policy(KEY, Some(2), None, None).await.unwrap();
        assert_status(
            app.decrypt(KEY, &v1, &[]).await,
            Code::FailedPrecondition,
            "retired",
        );
        assert_eq!(
            app.decrypt(KEY, &moved.ciphertext, &[])
                .await
                .unwrap()
                .plaintext,
            b"old secret"
        );
        let old_version = app
            .client()
            .encrypt(pb::EncryptRequest {
                name: KEY.into(),
                key_version: Some(1),
                ..Default::default()
            })
            .await;
        assert_status(
            old_version,
            Code::FailedPrecondition,
            "min_encryption_version",
        );

        // Lowering the floor again brings v1 back: retiring is a policy, not destruction.
        app.update_policy(KEY, Some(1), Some(1), None)
            .await
            .unwrap();
        assert_eq!(
            app.decrypt(KEY, &v1, &[]).await.unwrap().plaintext,
            b"old secret"
        );
    })
    .await;
}

#[tokio::test]
async fn concurrent_rotations_and_encryptions_leave_gap_free_versions() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        app.create_key(KEY).await;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..100u32 {
            let mut client = app.client();
            tasks.spawn(async move {
                let rotated = client
                    .rotate_key(pb::RotateKeyRequest { name: KEY.into() })
                    .await
                    .unwrap()
                    .into_inner();
                (Some(rotated.primary_version), None)
            });
            let mut client = app.client();
            tasks.spawn(async move {
                let encrypted = client
                    .encrypt(pb::EncryptRequest {
                        name: KEY.into(),
                        plaintext: i.to_be_bytes().to_vec(),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                (None, Some((i, encrypted.ciphertext)))
            });
        }
        let mut rotated_to = BTreeSet::new();
        let mut ciphertexts = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined.unwrap() {
                (Some(version), _) => assert!(rotated_to.insert(version), "version {version} twice"),
                (_, Some(pair)) => ciphertexts.push(pair),
                _ => unreachable!(),
            }
        }
        assert_eq!(rotated_to, (2..=101).collect::<BTreeSet<u32>>());
        let key = app.client().get_key(pb::GetKeyRequest { name: KEY.into() }).await.unwrap().into_inner();
        assert_eq!(key.primary_version, 101);

        let mut db = app.raw_database().await;
        let stored: Vec<i64> = sqlx::query(
            "SELECT version FROM kms_key_versions WHERE tenant = 'acme' AND key_id = 'db' ORDER BY version",
        )
        .fetch_all(&mut db)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<i64, _>(0))
        .collect();
        assert_eq!(stored, (1..=101).collect::<Vec<i64>>());

        for (i, ciphertext) in ciphertexts {
            assert_eq!(app.decrypt(KEY, &ciphertext, &[]).await.unwrap().plaintext, i.to_be_bytes());
        }
    })
    .await;
}
