//! Regression tests for privilege escalation found in the security review: authority must
//! never grow through an API key, a roll or a grant, and a demotion must reach the keys.

use std::time::{Duration, Instant};

use coffer_proto::pb;
use coffer_test_support::on_each_backend;
use tonic::Code;

use crate::helpers::{Stack, assert_status, bearer, create_key, scope_list, user_request, verify};

const VIEWER_SCOPES: &str = "mcp:read user:read org:read key:read";

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
            grace_period: Some(prost_types::Duration {
                seconds: 7 * 24 * 3600,
                nanos: 0,
            }),
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
        assert!(
            still.scopes.iter().any(|s| s == "org:admin")
                && still.scopes.iter().any(|s| s == "credential:reveal")
        );

        // The narrow key may still manage itself, and the owner's full token the broad key.
        let narrow_name = narrow.api_key.as_ref().unwrap().name.clone();
        let rolled = client
            .roll_api_key(bearer(
                &narrow.key,
                pb::RollApiKeyRequest {
                    name: narrow_name,
                    grace_period: Some(prost_types::Duration {
                        seconds: 0,
                        nanos: 0,
                    }),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            rolled.api_key.unwrap().scopes.join(" "),
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
            assert!(verified.scopes.iter().any(|s| s == "org:admin"));
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
            verify(&mut first, &key).await.unwrap().scopes.join(" "),
            VIEWER_SCOPES
        );
        // The other replica: within a second.
        let started = Instant::now();
        loop {
            let scopes = verify(&mut second, &key).await.unwrap().scopes.join(" ");
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
        second_instance.stop().await.unwrap();
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
        revealer.scopes = scope_list("credential:reveal");
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

#[tokio::test]
async fn privilege_changes_are_audited_in_a_keyed_chain_that_detects_tampering() {
    use sqlx::Connection as _;
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        stack.tenant_with_user("acme", "alice", &["org_admin"]).await;
        stack.create_user("acme", "bob", &["viewer"]).await;
        let alice = stack.login("acme", "alice").await.access_token;
        let mut client = stack.client_as("gateway").await;
        let key = create_key(&mut client, &alice, "mcp:read").await;
        let name = key.api_key.unwrap().name;
        client
            .roll_api_key(bearer(
                &alice,
                pb::RollApiKeyRequest {
                    name: name.clone(),
                    grace_period: Some(prost_types::Duration { seconds: 60, nanos: 0 }),
                },
            ))
            .await
            .unwrap();
        client
            .revoke_api_key(bearer(&alice, pb::RevokeApiKeyRequest { name }))
            .await
            .unwrap();
        client
            .set_roles(bearer(
                &alice,
                pb::SetRolesRequest {
                    name: "tenants/acme/principals/bob".into(),
                    roles: vec!["developer".into()],
                },
            ))
            .await
            .unwrap();
        stack
            .operator()
            .rotate_signing_key(pb::RotateSigningKeyRequest {})
            .await
            .unwrap();

        let events = client
            .list_audit_events(bearer(
                &alice,
                pb::ListAuthAuditEventsRequest {
                    parent: "tenants/acme".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .events;
        let actions: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e.action.as_str(), e.actor.as_str()))
            .collect();
        assert_eq!(
            actions,
            [
                ("principal.create", "spiffe://coffer.local/operator/test"),
                ("principal.create", "spiffe://coffer.local/operator/test"),
                ("api_key.create", "alice"),
                ("api_key.roll", "alice"),
                ("api_key.revoke", "alice"),
                ("principal.set_roles", "alice"),
            ]
        );
        assert!(events[5].subject.contains("roles=[developer]"), "{:?}", events[5]);
        let verify = |tenant: &str| {
            let mut operator = stack.operator();
            let request = pb::VerifyAuditChainRequest {
                parent: format!("tenants/{tenant}"),
                ..Default::default()
            };
            async move { operator.verify_audit_chain(request).await.unwrap().into_inner() }
        };
        let intact = verify("acme").await;
        assert_eq!((intact.valid, intact.events_checked), (true, 6));
        assert_eq!(intact.head.as_ref().unwrap().sequence, 6);
        let system = verify("coffer-system").await;
        assert!(system.valid && system.events_checked == 2, "{system:?}");

        sqlx::any::install_default_drivers();
        let mut raw = sqlx::AnyConnection::connect(&stack.database.url_in("coffer_auth")).await.unwrap();
        sqlx::query("UPDATE auth_audit_chain SET subject = 'nothing' WHERE tenant = 'acme' AND sequence = 5")
            .execute(&mut raw)
            .await
            .unwrap();
        let rewritten = verify("acme").await;
        assert_eq!((rewritten.valid, rewritten.first_broken_sequence), (false, 5));
        sqlx::query("DELETE FROM auth_audit_chain WHERE tenant = 'acme' AND sequence >= 5")
            .execute(&mut raw)
            .await
            .unwrap();
        let truncated = verify("acme").await;
        assert_eq!((truncated.valid, truncated.first_broken_sequence), (false, 5));
        // Against the head exported while intact, as well.
        let mut operator = stack.operator();
        let against = operator
            .verify_audit_chain(pb::VerifyAuditChainRequest {
                parent: "tenants/coffer-system".into(),
                expected_head: intact.head,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!against.valid, "acme's head is not coffer-system's");
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_narrow_key_asking_for_no_scopes_gets_what_it_and_its_principal_share() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        stack
            .tenant_with_user("acme", "alice", &["org_admin"])
            .await;
        let alice = stack.login("acme", "alice").await.access_token;
        let mut client = stack.client_as("gateway").await;
        let narrow = create_key(&mut client, &alice, "mcp:read user:read user:token").await;
        // Empty means "all of the principal's", limited to what the calling key holds: not a
        // refusal, and not more than the caller has.
        let child = create_key(&mut client, &narrow.key, "").await;
        assert_eq!(
            child.api_key.as_ref().unwrap().scopes.join(" "),
            "mcp:read user:read user:token"
        );
        let mut introspector = stack.client_as("credential-service").await;
        let verified = verify(&mut introspector, &child.key).await.unwrap();
        assert!(
            !verified.scopes.iter().any(|s| s == "org:admin"),
            "{:?}",
            verified.scopes
        );
        stack.shutdown().await;
    })
    .await;
}
