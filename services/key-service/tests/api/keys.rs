//! CreateKey, GetKey, ListKeys, UpdateKeyPolicy.

use coffer_proto::pb;
use coffer_test_support::on_each_backend;
use tonic::Code;

use crate::helpers::{assert_status, create_key_request, spawn_app};

#[tokio::test]
async fn created_key_starts_at_version_one_and_enabled() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        let key = app.create_key("tenants/acme/keys/db").await;
        assert_eq!(key.name, "tenants/acme/keys/db");
        assert_eq!(
            (
                key.primary_version,
                key.min_decryption_version,
                key.min_encryption_version
            ),
            (1, 1, 1)
        );
        assert_eq!(key.state, pb::KeyState::Enabled as i32);
        assert!(!key.deletion_allowed);
        assert!(key.create_time.is_some() && key.destroy_time.is_none());

        let fetched = app
            .client()
            .get_key(pb::GetKeyRequest {
                name: key.name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(fetched, key);
    })
    .await;
}

#[tokio::test]
async fn creating_an_existing_key_is_already_exists() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        app.create_key("tenants/acme/keys/db").await;
        let again = app
            .client()
            .create_key(create_key_request("tenants/acme/keys/db", true))
            .await;
        assert_status(again, Code::AlreadyExists, "tenants/acme/keys/db");
    })
    .await;
}

#[tokio::test]
async fn bad_names_are_invalid_argument_naming_the_field() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        for bad in [
            "",
            "tenants/acme",
            "tenants/ACME/keys/x",
            "tenants/a/keys/b/c",
            "tenants/a/keys/b c",
        ] {
            let fetched = app
                .client()
                .get_key(pb::GetKeyRequest { name: bad.into() })
                .await;
            assert_status(fetched, Code::InvalidArgument, "invalid name");
        }
        // CreateKey takes a parent and a key id, each checked and named on its own.
        for (parent, key_id, field) in [
            ("tenant/acme", "db", "invalid parent"),
            ("tenants/ACME", "db", "invalid parent"),
            ("tenants/acme", "", "invalid key_id"),
            ("tenants/acme", "b/c", "invalid key_id"),
            ("tenants/acme", "B", "invalid key_id"),
        ] {
            let created = app
                .client()
                .create_key(pb::CreateKeyRequest {
                    parent: parent.into(),
                    key_id: key_id.into(),
                    key: None,
                })
                .await;
            assert_status(created, Code::InvalidArgument, field);
        }
        let listed = app
            .client()
            .list_keys(pb::ListKeysRequest {
                parent: "tenant/acme".into(),
                ..Default::default()
            })
            .await;
        assert_status(listed, Code::InvalidArgument, "invalid parent");
    })
    .await;
}

#[tokio::test]
async fn unknown_keys_are_not_found_everywhere() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        let name = "tenants/acme/keys/missing";
        assert_status(
            app.client()
                .get_key(pb::GetKeyRequest { name: name.into() })
                .await,
            Code::NotFound,
            name,
        );
        assert_status(
            app.client()
                .rotate_key(pb::RotateKeyRequest { name: name.into() })
                .await,
            Code::NotFound,
            name,
        );
        assert_status(app.decrypt(name, &[1; 40], &[]).await, Code::NotFound, name);
        assert_status(
            app.update_policy(name, Some(1), None, None).await,
            Code::NotFound,
            name,
        );
    })
    .await;
}

#[tokio::test]
async fn list_keys_pages_through_one_tenant_in_name_order() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        for key in ["e", "a", "d", "b", "c"] {
            app.create_key(&format!("tenants/acme/keys/{key}")).await;
        }
        app.create_key("tenants/other/keys/a").await;

        let mut names = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let page = app
                .client()
                .list_keys(pb::ListKeysRequest {
                    parent: "tenants/acme".into(),
                    page_size: 2,
                    page_token: token.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            pages += 1;
            names.extend(page.keys.into_iter().map(|k| k.name));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
            assert!(pages < 10, "pagination does not end");
        }
        assert_eq!(pages, 3);
        let expected: Vec<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|k| format!("tenants/acme/keys/{k}"))
            .collect();
        assert_eq!(names, expected);

        let too_big = app
            .client()
            .list_keys(pb::ListKeysRequest {
                parent: "tenants/acme".into(),
                page_size: 1001,
                ..Default::default()
            })
            .await;
        assert_status(too_big, Code::InvalidArgument, "page_size");
        let bad_token = app
            .client()
            .list_keys(pb::ListKeysRequest {
                parent: "tenants/acme".into(),
                page_token: "!!not-a-token".into(),
                ..Default::default()
            })
            .await;
        assert_status(bad_token, Code::InvalidArgument, "page_token");
        let empty = app
            .client()
            .list_keys(pb::ListKeysRequest {
                parent: "tenants/nobody".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(empty.keys.is_empty() && empty.next_page_token.is_empty());
    })
    .await;
}

#[tokio::test]
async fn key_policy_keeps_its_invariant() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        let name = "tenants/acme/keys/db";
        app.create_key(name).await;
        app.rotate(name).await;
        app.rotate(name).await;

        assert_status(
            app.update_policy(name, Some(0), None, None).await,
            Code::InvalidArgument,
            "min_decryption_version",
        );
        assert_status(
            app.update_policy(name, Some(4), None, None).await,
            Code::InvalidArgument,
            "min_decryption_version",
        );
        assert_status(
            app.update_policy(name, Some(2), Some(1), None).await,
            Code::InvalidArgument,
            "min_encryption_version",
        );

        // Raising the decryption floor alone raises the encryption floor with it.
        let key = app.update_policy(name, Some(2), None, None).await.unwrap();
        assert_eq!(
            (key.min_decryption_version, key.min_encryption_version),
            (2, 2)
        );
        let key = app
            .update_policy(name, None, Some(3), Some(true))
            .await
            .unwrap();
        assert_eq!(
            (key.min_decryption_version, key.min_encryption_version),
            (2, 3)
        );
        assert!(key.deletion_allowed);
        // Unset fields stay as they are.
        let key = app.update_policy(name, None, None, None).await.unwrap();
        assert_eq!(
            (
                key.min_decryption_version,
                key.min_encryption_version,
                key.deletion_allowed
            ),
            (2, 3, true)
        );
    })
    .await;
}

#[tokio::test]
async fn a_disabled_key_refuses_cryptography_until_enabled_and_can_still_be_scheduled_for_deletion()
{
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        app.create_key("tenants/acme/keys/db").await;
        let name = "tenants/acme/keys/db";
        let ciphertext = app.encrypt(name, b"kept", &[]).await;
        let disabled = app
            .client()
            .disable_key(pb::DisableKeyRequest { name: name.into() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(disabled.state, pb::KeyState::Disabled as i32);
        // Idempotent.
        app.client()
            .disable_key(pb::DisableKeyRequest { name: name.into() })
            .await
            .unwrap();
        let refused = app.decrypt(name, &ciphertext, &[]).await.unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition);
        assert_eq!(
            coffer_server::status::reason(&refused).as_deref(),
            Some("KEY_DISABLED")
        );
        assert!(
            refused.message().contains("EnableKey"),
            "{}",
            refused.message()
        );
        let encrypt = app
            .client()
            .encrypt(pb::EncryptRequest {
                name: name.into(),
                plaintext: b"x".to_vec(),
                ..Default::default()
            })
            .await;
        assert_status(encrypt, Code::FailedPrecondition, "disabled");
        // Metadata stays readable.
        assert_eq!(
            app.client()
                .get_key(pb::GetKeyRequest { name: name.into() })
                .await
                .unwrap()
                .into_inner()
                .state,
            pb::KeyState::Disabled as i32
        );
        let enabled = app
            .client()
            .enable_key(pb::EnableKeyRequest { name: name.into() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(enabled.state, pb::KeyState::Enabled as i32);
        assert_eq!(
            app.decrypt(name, &ciphertext, &[]).await.unwrap().plaintext,
            b"kept"
        );

        // Disabled, then scheduled for deletion and cancelled: disabled again, not enabled.
        app.update_policy(name, None, None, Some(true))
            .await
            .unwrap();
        app.client()
            .disable_key(pb::DisableKeyRequest { name: name.into() })
            .await
            .unwrap();
        app.client()
            .schedule_key_deletion(pb::ScheduleKeyDeletionRequest { name: name.into() })
            .await
            .unwrap();
        assert_status(
            app.client()
                .enable_key(pb::EnableKeyRequest { name: name.into() })
                .await,
            Code::FailedPrecondition,
            "pending deletion",
        );
        let cancelled = app
            .client()
            .cancel_key_deletion(pb::CancelKeyDeletionRequest { name: name.into() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(cancelled.state, pb::KeyState::Disabled as i32);
    })
    .await;
}

#[tokio::test]
async fn an_update_mask_changes_only_the_fields_it_names() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        let name = "tenants/acme/keys/db";
        app.create_key(name).await;
        app.rotate(name).await;
        app.rotate(name).await;
        let update = |min_dec: Option<u32>, min_enc: Option<u32>, paths: &[&str]| {
            let mut client = app.client();
            let request = pb::UpdateKeyPolicyRequest {
                name: name.into(),
                min_decryption_version: min_dec,
                min_encryption_version: min_enc,
                deletion_allowed: Some(true),
                update_mask: Some(prost_types::FieldMask {
                    paths: paths.iter().map(|p| (*p).to_owned()).collect(),
                }),
            };
            async move { client.update_key_policy(request).await }
        };
        // Only min_decryption_version is masked: deletion_allowed (set, unmasked) stays false,
        // and min_encryption_version is not moved along, so raising min_decryption_version
        // above it is refused instead.
        assert_status(
            update(Some(2), None, &["min_decryption_version"]).await,
            Code::InvalidArgument,
            "min_encryption_version",
        );
        let key = update(
            Some(2),
            Some(3),
            &["min_decryption_version", "min_encryption_version"],
        )
        .await
        .unwrap()
        .into_inner();
        assert_eq!(
            (
                key.min_decryption_version,
                key.min_encryption_version,
                key.deletion_allowed
            ),
            (2, 3, false)
        );
        assert_status(
            update(None, None, &["min_decryption_version"]).await,
            Code::InvalidArgument,
            "named in update_mask but not set",
        );
        assert_status(
            update(Some(2), None, &["primary_version"]).await,
            Code::InvalidArgument,
            "update_mask",
        );
        // Without a mask, the fields that are set change (and min_encryption_version follows
        // a raised min_decryption_version).
        let key = app.update_policy(name, Some(3), None, None).await.unwrap();
        assert_eq!(
            (key.min_decryption_version, key.min_encryption_version),
            (3, 3)
        );
    })
    .await;
}
