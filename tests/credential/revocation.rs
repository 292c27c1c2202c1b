//! Regression tests: revocation, expiry and key-state changes reach credential-service's
//! caches within a second (the verifier's revocation mirror, the data-key cache).

use base64::Engine as _;
use coffer_proto::pb;
use coffer_test_support::{Backend, TestDatabase, on_each_backend};
use tonic::Code;

use crate::helpers::{Stack, assert_status};

/// An auth-service client with the certificate `name`, for the stack's auth-service.
async fn auth_client(
    stack: &Stack,
    name: &str,
) -> pb::auth_service_client::AuthServiceClient<tonic::transport::Channel> {
    let material = stack
        .ca
        .issue_material(name, coffer_transport::dev_ca::Usage::Client)
        .unwrap();
    pb::auth_service_client::AuthServiceClient::new(
        coffer_test_support::connect(
            stack.services.auth_service.addr,
            material.client_config("127.0.0.1"),
        )
        .await
        .unwrap(),
    )
}

fn list_acme() -> pb::ListCredentialsRequest {
    pb::ListCredentialsRequest {
        parent: "tenants/acme".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_token_exchanged_for_a_revoked_api_key_is_refused_everywhere_within_a_second() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        let mut auth = auth_client(&stack, "gateway").await;
        let mut credentials = stack.client().await;
        let admin = stack.tokens["admin"].clone();
        let create = |display_name: &str| pb::CreateApiKeyRequest {
            parent: "tenants/acme".into(),
            display_name: display_name.into(),
            ..Default::default()
        };
        let key = auth
            .create_api_key(coffer_test_support::bearer(&admin, create("laptop")))
            .await
            .unwrap()
            .into_inner();
        let exchanged = auth
            .exchange_api_key(pb::ExchangeApiKeyRequest {
                key: key.key.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .access_token;
        // Keys created with the key, or with the token exchanged for it, derive from it.
        let by_token = auth
            .create_api_key(coffer_test_support::bearer(
                &exchanged,
                create("from the token"),
            ))
            .await
            .unwrap()
            .into_inner()
            .key;
        let by_key = auth
            .create_api_key(coffer_test_support::bearer(
                &key.key,
                create("from the key"),
            ))
            .await
            .unwrap()
            .into_inner()
            .key;
        for bearer in [&exchanged, &by_token, &by_key] {
            credentials
                .list_credentials(coffer_test_support::bearer(bearer, list_acme()))
                .await
                .unwrap();
        }

        auth.revoke_api_key(coffer_test_support::bearer(
            &admin,
            pb::RevokeApiKeyRequest {
                name: key.api_key.unwrap().name,
            },
        ))
        .await
        .unwrap();
        // auth-service: at once.
        assert_status(
            auth.get_tenant(coffer_test_support::bearer(
                &exchanged,
                pb::GetTenantRequest {
                    name: "tenants/acme".into(),
                },
            ))
            .await,
            Code::Unauthenticated,
            "invalid credentials",
        );
        assert_status(
            auth.create_api_key(coffer_test_support::bearer(&exchanged, create("escape")))
                .await,
            Code::Unauthenticated,
            "invalid credentials",
        );
        // credential-service, which verifies the JWT locally: within a second.
        let started = std::time::Instant::now();
        loop {
            let listed = credentials
                .list_credentials(coffer_test_support::bearer(&exchanged, list_acme()))
                .await;
            match listed {
                Err(status) if status.code() == Code::Unauthenticated => break,
                other => assert!(
                    started.elapsed() < std::time::Duration::from_secs(1),
                    "still accepted after {:?}: {other:?}",
                    started.elapsed()
                ),
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        for derived in [&by_token, &by_key] {
            assert_status(
                credentials
                    .list_credentials(coffer_test_support::bearer(derived, list_acme()))
                    .await,
                Code::Unauthenticated,
                "invalid credentials",
            );
        }
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn an_expired_api_key_is_refused_at_once_and_its_exchanged_token_expires_with_it() {
    let stack = Stack::spawn(TestDatabase::create(Backend::Sqlite).await.unwrap()).await;
    let mut auth = auth_client(&stack, "gateway").await;
    let mut credentials = stack.client().await;
    let key = auth
        .create_api_key(coffer_test_support::bearer(
            &stack.tokens["admin"],
            pb::CreateApiKeyRequest {
                parent: "tenants/acme".into(),
                display_name: "short".into(),
                ttl: Some(prost_types::Duration {
                    seconds: 2,
                    nanos: 0,
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let expiry = key.api_key.unwrap().expire_time.unwrap().seconds;
    let exchanged = auth
        .exchange_api_key(pb::ExchangeApiKeyRequest {
            key: key.key.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(exchanged.expires_in <= 2, "{}", exchanged.expires_in);
    let payload = exchanged.access_token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert!(claims["exp"].as_i64().unwrap() <= expiry, "{claims}");
    assert_eq!(claims["akid"], key.key[7..19]);
    // Used (and cached) while valid...
    credentials
        .list_credentials(coffer_test_support::bearer(&key.key, list_acme()))
        .await
        .unwrap();
    // ...and refused from the first second past its expiry, cache or not.
    let past = u64::try_from(expiry + 1).unwrap();
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        < past
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_status(
        credentials
            .list_credentials(coffer_test_support::bearer(&key.key, list_acme()))
            .await,
        Code::Unauthenticated,
        "invalid credentials",
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_retired_key_version_stops_cached_data_keys_within_a_second() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        let created = stack
            .create("github", &[("TOKEN", "ghp_a_token_value_1234")])
            .await;
        // Served from the data-key cache.
        stack.reveal(&created.name).await.unwrap();
        let version = stack.rotate_tenant_key("acme").await;
        let material = stack
            .ca
            .issue_material("operator/test", coffer_transport::dev_ca::Usage::Client)
            .unwrap();
        let channel = coffer_test_support::connect(
            stack.services.key_service.addr,
            material.client_config("127.0.0.1"),
        )
        .await
        .unwrap();
        pb::key_service_client::KeyServiceClient::new(channel)
            .update_key_policy(pb::UpdateKeyPolicyRequest {
                name: "tenants/acme/keys/credentials".into(),
                min_decryption_version: Some(version),
                ..Default::default()
            })
            .await
            .unwrap();
        let started = std::time::Instant::now();
        loop {
            match stack.reveal(&created.name).await {
                Err(status) => {
                    assert_ne!(status.code(), Code::Ok);
                    break;
                }
                Ok(_) => assert!(
                    started.elapsed() < std::time::Duration::from_secs(1),
                    "the retired version still decrypts after {:?}",
                    started.elapsed()
                ),
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_demoted_users_access_tokens_are_refused_everywhere_within_a_second() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        let old_token = stack.tokens["developer"].clone();
        let mut credentials = stack.client().await;
        credentials
            .list_credentials(coffer_test_support::bearer(&old_token, list_acme()))
            .await
            .unwrap();
        let mut operator = auth_client(&stack, "operator/test").await;
        operator
            .set_roles(pb::SetRolesRequest {
                name: "tenants/acme/principals/dev".into(),
                roles: vec!["viewer".into()],
            })
            .await
            .unwrap();
        // auth-service: at once.
        let mut auth = auth_client(&stack, "gateway").await;
        assert_status(
            auth.get_tenant(coffer_test_support::bearer(
                &old_token,
                pb::GetTenantRequest {
                    name: "tenants/acme".into(),
                },
            ))
            .await,
            Code::Unauthenticated,
            "invalid credentials",
        );
        // credential-service: within a second, though the token is validly signed and
        // unexpired (it carries the developer's scopes).
        let started = std::time::Instant::now();
        loop {
            match credentials
                .list_credentials(coffer_test_support::bearer(&old_token, list_acme()))
                .await
            {
                Err(status) if status.code() == Code::Unauthenticated => break,
                other => assert!(
                    started.elapsed() < std::time::Duration::from_secs(1),
                    "still accepted after {:?}: {other:?}",
                    started.elapsed()
                ),
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // A new login (even within the same second) gets a token of the new generation.
        let fresh = auth
            .login(pb::LoginRequest {
                tenant_id: "acme".into(),
                username: "dev".into(),
                password: "correct horse battery".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .access_token;
        credentials
            .list_credentials(coffer_test_support::bearer(&fresh, list_acme()))
            .await
            .unwrap();
        assert_status(
            credentials
                .create_credential(coffer_test_support::bearer(
                    &fresh,
                    crate::helpers::new_credential("x", &[]),
                ))
                .await,
            Code::PermissionDenied,
            "permission denied",
        );
        stack.shutdown().await;
    })
    .await;
}
