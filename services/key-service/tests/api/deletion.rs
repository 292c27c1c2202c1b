//! ScheduleKeyDeletion / CancelKeyDeletion: the waiting period, cancellation, crypto-shredding.

use coffer_proto::pb;
use coffer_test_support::on_each_backend;
use sqlx::Row as _;
use tonic::Code;

use crate::helpers::{assert_status, create_key_request, spawn_app};

const KEY: &str = "tenants/acme/keys/db";
const WEEK: i64 = 7 * 24 * 3600;

#[tokio::test]
async fn deletion_needs_permission_and_can_be_cancelled_within_the_waiting_period() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        app.create_key(KEY).await;
        let ciphertext = app.encrypt(KEY, b"shred me", &[]).await;
        let schedule = || {
            let mut client = app.client();
            async move {
                client
                    .schedule_key_deletion(pb::ScheduleKeyDeletionRequest { name: KEY.into() })
                    .await
            }
        };
        let cancel = || {
            let mut client = app.client();
            async move {
                client
                    .cancel_key_deletion(pb::CancelKeyDeletionRequest { name: KEY.into() })
                    .await
            }
        };

        assert_status(
            schedule().await,
            Code::FailedPrecondition,
            "does not allow deletion",
        );
        assert_status(
            cancel().await,
            Code::FailedPrecondition,
            "not pending deletion",
        );
        app.update_policy(KEY, None, None, Some(true))
            .await
            .unwrap();

        let pending = schedule().await.unwrap().into_inner();
        assert_eq!(pending.state, pb::KeyState::PendingDeletion as i32);
        let destroy_at = pending.destroy_time.unwrap().seconds;
        assert_eq!(destroy_at, app.clock.now() + WEEK);
        assert_status(
            schedule().await,
            Code::FailedPrecondition,
            "already pending",
        );
        assert_status(
            app.decrypt(KEY, &ciphertext, &[]).await,
            Code::FailedPrecondition,
            "pending deletion",
        );
        assert!(
            app.client()
                .rotate_key(pb::RotateKeyRequest { name: KEY.into() })
                .await
                .is_err()
        );

        app.clock.advance(WEEK - 1);
        let restored = cancel().await.unwrap().into_inner();
        assert_eq!(restored.state, pb::KeyState::Enabled as i32);
        assert!(restored.destroy_time.is_none());
        assert_eq!(
            app.decrypt(KEY, &ciphertext, &[]).await.unwrap().plaintext,
            b"shred me"
        );
    })
    .await;
}

#[tokio::test]
async fn after_the_waiting_period_the_material_is_gone() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        app.create_key(KEY).await;
        app.rotate(KEY).await;
        let ciphertext = app.encrypt(KEY, b"shred me", &[]).await;
        app.update_policy(KEY, None, None, Some(true))
            .await
            .unwrap();
        app.client()
            .schedule_key_deletion(pb::ScheduleKeyDeletionRequest { name: KEY.into() })
            .await
            .unwrap();

        app.clock.advance(WEEK);
        assert_status(
            app.decrypt(KEY, &ciphertext, &[]).await,
            Code::FailedPrecondition,
            "destroyed",
        );
        let key = app
            .client()
            .get_key(pb::GetKeyRequest { name: KEY.into() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(key.state, pb::KeyState::Destroyed as i32);
        assert_status(
            app.client()
                .cancel_key_deletion(pb::CancelKeyDeletionRequest { name: KEY.into() })
                .await,
            Code::FailedPrecondition,
            "destroyed",
        );
        let recreate = app
            .client()
            .create_key(create_key_request(KEY, false))
            .await;
        assert_status(recreate, Code::AlreadyExists, KEY);

        // Crypto-shredded: no wrapped version of the key is left in the database.
        let mut db = app.raw_database().await;
        let left: i64 = sqlx::query(
            "SELECT COUNT(*) FROM kms_key_versions WHERE tenant = 'acme' AND key_id = 'db'",
        )
        .fetch_one(&mut db)
        .await
        .unwrap()
        .get(0);
        assert_eq!(left, 0);
    })
    .await;
}

#[tokio::test]
async fn destroyed_key_material_is_left_in_no_sqlite_file() {
    let db = coffer_test_support::TestDatabase::create(coffer_test_support::Backend::Sqlite)
        .await
        .unwrap();
    let path = db
        .url()
        .strip_prefix("sqlite://")
        .and_then(|rest| rest.split('?').next())
        .unwrap()
        .to_owned();
    let app = spawn_app(db).await;
    app.create_key(KEY).await;
    app.rotate(KEY).await;
    let mut raw = app.raw_database().await;
    let wrapped: Vec<Vec<u8>> = sqlx::query("SELECT wrapped FROM kms_key_versions")
        .fetch_all(&mut raw)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    drop(raw);
    assert_eq!(wrapped.len(), 2);
    app.update_policy(KEY, None, None, Some(true))
        .await
        .unwrap();
    app.client()
        .schedule_key_deletion(pb::ScheduleKeyDeletionRequest { name: KEY.into() })
        .await
        .unwrap();
    app.clock.advance(WEEK);
    let key = app
        .client()
        .get_key(pb::GetKeyRequest { name: KEY.into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(key.state, pb::KeyState::Destroyed as i32);

    // Neither the database nor its write-ahead log holds any byte string of the material.
    for file in [path.clone(), format!("{path}-wal")] {
        let bytes = std::fs::read(&file).unwrap_or_default();
        for material in &wrapped {
            assert!(
                !bytes
                    .windows(material.len())
                    .any(|w| w == material.as_slice()),
                "{file} still holds destroyed key material"
            );
        }
    }
}
