//! CreateKey, GetKey, ListKeys, UpdateKeyPolicy.

use coffer_proto::pb;
use coffer_test_support::on_each_backend;
use tonic::Code;

use crate::helpers::{assert_status, spawn_app};

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
            .create_key(pb::CreateKeyRequest {
                name: "tenants/acme/keys/db".into(),
                deletion_allowed: true,
            })
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
            let created = app
                .client()
                .create_key(pb::CreateKeyRequest {
                    name: bad.into(),
                    deletion_allowed: false,
                })
                .await;
            assert_status(created, Code::InvalidArgument, "invalid name");
            let fetched = app
                .client()
                .get_key(pb::GetKeyRequest { name: bad.into() })
                .await;
            assert_status(fetched, Code::InvalidArgument, "invalid name");
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
