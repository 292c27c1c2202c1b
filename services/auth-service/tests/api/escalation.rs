//! Regression tests for privilege escalation found in the security review: authority must
//! never grow through an API key, a roll or a grant, and a demotion must reach the keys.

use std::time::{Duration, Instant};

use coffer_proto::pb;
use coffer_test_support::on_each_backend;
use tonic::Code;

use crate::helpers::{Stack, assert_status, bearer, create_key, user_request, verify};

const VIEWER_SCOPES: &str = "mcp:read user:read org:read";

#[tokio::test]
async fn narrow_api_key_cannot_roll_or_revoke_its_owners_broader_key() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        stack
            .tenant_with_user("acme", "alice", &["org_admin"])
            .await;
        let alice = stack.login("acme", "alice").await.access_token;
        let mut client = stack.client_as("gateway").await;
        let broad = create_key(&mut client, &alice, "").await;
        let broad_name = broad.api_key.as_ref().unwrap().name.clone();
        let narrow = create_key(&mut client, &alice, "mcp:read user:read user:token").await;

        let roll = pb::RollApiKeyRequest {
            name: broad_name.clone(),
            grace_period_seconds: 7 * 24 * 3600,
        };
        assert_status(
            client.roll_api_key(bearer(&narrow.key, roll.clone())).await,
            Code::PermissionDenied,
            "permission denied",
        );
        let revoke = pb::RevokeApiKeyRequest {
            name: broad_name.clone(),
        };
        assert_status(
            client
                .revoke_api_key(bearer(&narrow.key, revoke.clone()))
                .await,
            Code::PermissionDenied,
            "permission denied",
        );
        // The broad key is untouched: still valid, with every scope.
        let mut introspector = stack.client_as("credential-service").await;
        let still = verify(&mut introspector, &broad.key).await.unwrap();
        assert!(still.scopes.contains("org:admin") && still.scopes.contains("credential:reveal"));

        // The narrow key may still manage itself, and the owner's full token the broad key.
        let narrow_name = narrow.api_key.as_ref().unwrap().name.clone();
        let rolled = client
            .roll_api_key(bearer(
                &narrow.key,
                pb::RollApiKeyRequest {
                    name: narrow_name,
                    grace_period_seconds: 0,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            rolled.api_key.unwrap().scopes,
            "mcp:read user:read user:token"
        );
        client.roll_api_key(bearer(&alice, roll)).await.unwrap();
        client.revoke_api_key(bearer(&alice, revoke)).await.unwrap();
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn demoted_owners_api_key_carries_only_the_new_scopes_on_every_replica() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        stack
            .tenant_with_user("acme", "alice", &["org_admin"])
            .await;
        stack.create_user("acme", "bob", &["viewer"]).await;
        let alice = stack.login("acme", "alice").await.access_token;
        let mut first = stack.client_as("credential-service").await;
        let key = create_key(&mut first, &alice, "").await.key;
        let (mut second_instance, _) = stack.second_instance(|_| {}).await;
        let mut second =
            crate::helpers::client_for(&stack.ca, second_instance.addr, "gateway").await;
        // Both replicas have verified (and cached) the key at org_admin's scopes.
        for client in [&mut first, &mut second] {
            let verified = verify(client, &key).await.unwrap();
            assert!(verified.scopes.contains("org:admin"));
        }

        stack
            .operator()
            .set_roles(pb::SetRolesRequest {
                name: "tenants/acme/principals/alice".into(),
                roles: vec!["viewer".into()],
            })
            .await
            .unwrap();
        // The replica that made the change: at once.
        assert_eq!(
            verify(&mut first, &key).await.unwrap().scopes,
            VIEWER_SCOPES
        );
        // The other replica: within a second.
        let started = Instant::now();
        loop {
            let scopes = verify(&mut second, &key).await.unwrap().scopes;
            if scopes == VIEWER_SCOPES {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "the second replica still grants {scopes}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // And the key can no longer do what only an admin may.
        for client in [&mut first, &mut second] {
            assert_status(
                client
                    .set_roles(bearer(
                        &key,
                        pb::SetRolesRequest {
                            name: "tenants/acme/principals/bob".into(),
                            roles: vec!["org_admin".into()],
                        },
                    ))
                    .await,
                Code::PermissionDenied,
                "permission denied",
            );
        }
        second_instance.stop().await;
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn org_admin_scoped_key_cannot_grant_roles_or_scopes_beyond_its_own() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        stack
            .tenant_with_user("acme", "alice", &["org_admin"])
            .await;
        stack.create_user("acme", "bob", &["viewer"]).await;
        let alice = stack.login("acme", "alice").await.access_token;
        let mut client = stack.client_as("gateway").await;
        let admin_only = create_key(&mut client, &alice, "org:admin").await.key;

        assert_status(
            client
                .create_principal(bearer(
                    &admin_only,
                    user_request("acme", "mallory", &["org_admin"]),
                ))
                .await,
            Code::PermissionDenied,
            "permission denied",
        );
        let mut revealer = user_request("acme", "robot", &[]);
        revealer.kind = pb::PrincipalKind::ServiceAccount as i32;
        revealer.password = String::new();
        revealer.scopes = "credential:reveal".into();
        assert_status(
            client
                .create_principal(bearer(&admin_only, revealer.clone()))
                .await,
            Code::PermissionDenied,
            "permission denied",
        );
        let promote = pb::SetRolesRequest {
            name: "tenants/acme/principals/bob".into(),
            roles: vec!["org_admin".into()],
        };
        assert_status(
            client.set_roles(bearer(&admin_only, promote.clone())).await,
            Code::PermissionDenied,
            "permission denied",
        );
        // What it holds it may grant: a user with no roles.
        client
            .create_principal(bearer(&admin_only, user_request("acme", "newbie", &[])))
            .await
            .unwrap();
        // A caller holding every scope may grant them all.
        client
            .create_principal(bearer(&alice, revealer))
            .await
            .unwrap();
        let bob = client
            .set_roles(bearer(&alice, promote))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(bob.roles, ["org_admin"]);
        stack.shutdown().await;
    })
    .await;
}
