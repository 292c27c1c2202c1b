//! Login, refresh rotation and reuse, revocation, introspection, lockout.

use coffer_proto::pb;
use coffer_test_support::on_each_backend;
use sqlx::{Connection as _, Row as _};
use tonic::Code;

use crate::helpers::{PASSWORD, Stack, assert_status, bearer};

fn login(tenant: &str, user: &str, password: &str) -> pb::LoginRequest {
    pb::LoginRequest {
        tenant_id: tenant.into(),
        username: user.into(),
        password: password.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_wrong_credential_gets_the_same_answer() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        stack
            .tenant_with_user("acme", "alice", &["developer"])
            .await;
        let mut client = stack.client_as("gateway").await;
        let tokens = client
            .login(login("acme", "alice", PASSWORD))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(tokens.token_type, "Bearer");
        assert_eq!(tokens.expires_in, 15 * 60);
        assert!(tokens.refresh_token.starts_with("mcp_rt_"));
        assert!(tokens.scope.contains("mcp:write") && !tokens.scope.contains("credential:reveal"));

        for (tenant, user, password) in [
            ("acme", "alice", "wrong password!!"),
            ("acme", "nobody", PASSWORD),
            ("nowhere", "alice", PASSWORD),
            ("ACME", "alice", PASSWORD),
            ("acme", "", PASSWORD),
        ] {
            let refused = client.login(login(tenant, user, password)).await;
            assert_status(refused, Code::Unauthenticated, "invalid credentials");
        }
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn repeated_failures_lock_the_login_for_every_replica() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        stack.tenant_with_user("acme", "alice", &["viewer"]).await;
        let mut client = stack.operator();
        for _ in 0..3 {
            let refused = client
                .login(login("acme", "alice", "wrong password!!"))
                .await;
            assert_status(refused, Code::Unauthenticated, "invalid credentials");
        }
        // Locked: even the right password is refused, here and on another instance.
        assert_status(
            client.login(login("acme", "alice", PASSWORD)).await,
            Code::ResourceExhausted,
            "try again later",
        );
        let (mut second, mut second_client) = stack.second_instance(|_| {}).await;
        assert_status(
            second_client.login(login("acme", "alice", PASSWORD)).await,
            Code::ResourceExhausted,
            "try again later",
        );
        // Unknown users lock the same way, so a lockout reveals nothing about existence.
        for _ in 0..3 {
            let _ = client
                .login(login("acme", "ghost", "wrong password!!"))
                .await;
        }
        assert_status(
            client.login(login("acme", "ghost", PASSWORD)).await,
            Code::ResourceExhausted,
            "try again later",
        );
        second.stop().await.unwrap();
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_family() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        stack.tenant_with_user("acme", "alice", &["viewer"]).await;
        let mut client = stack.operator();
        let first = stack.login("acme", "alice").await;
        let second = client
            .refresh(pb::RefreshRequest {
                refresh_token: first.refresh_token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_ne!(second.refresh_token, first.refresh_token);
        assert_ne!(second.access_token, first.access_token);

        // The spent token again: refused, and the family (including `second`) is revoked.
        let reused = client
            .refresh(pb::RefreshRequest {
                refresh_token: first.refresh_token.clone(),
            })
            .await;
        assert_status(reused, Code::Unauthenticated, "invalid credentials");
        let descendant = client
            .refresh(pb::RefreshRequest {
                refresh_token: second.refresh_token.clone(),
            })
            .await;
        assert_status(descendant, Code::Unauthenticated, "invalid credentials");

        // An audit event records it.
        coffer_test_support_any_drivers();
        let mut raw = sqlx::AnyConnection::connect(&stack.database.url_in("coffer_auth"))
            .await
            .unwrap();
        let events = sqlx::query(
            "SELECT actor, outcome FROM auth_audit_chain WHERE action = 'refresh_token.reuse'",
        )
        .fetch_all(&mut raw)
        .await
        .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].get::<String, _>(0), "alice");
        assert_eq!(events[0].get::<String, _>(1), "family_revoked");
        // Only hashes are stored.
        let stored = sqlx::query("SELECT token_hash FROM auth_refresh_tokens")
            .fetch_all(&mut raw)
            .await
            .unwrap();
        for row in stored {
            let hash: String = row.get(0);
            assert_eq!(hash.len(), 64);
            assert!(!hash.contains("mcp_rt_"));
        }

        for garbage in ["", "mcp_rt_short", "not-a-token"] {
            let refused = client
                .refresh(pb::RefreshRequest {
                    refresh_token: garbage.into(),
                })
                .await;
            assert_status(refused, Code::Unauthenticated, "invalid credentials");
        }
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn revoked_tokens_are_inactive_and_refused() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        stack
            .tenant_with_user("acme", "alice", &["org_admin"])
            .await;
        let tokens = stack.login("acme", "alice").await;
        let mut operator = stack.operator();
        let introspect = |token: String| {
            let mut client = stack.operator();
            async move {
                client
                    .introspect(pb::IntrospectRequest { token })
                    .await
                    .unwrap()
                    .into_inner()
            }
        };

        let access = introspect(tokens.access_token.clone()).await;
        assert!(access.active);
        assert_eq!(
            (
                access.token_type.as_str(),
                access.sub.as_str(),
                access.tenant.as_str()
            ),
            ("access_token", "alice", "acme")
        );
        let refresh = introspect(tokens.refresh_token.clone()).await;
        assert!(refresh.active);
        assert_eq!(refresh.token_type, "refresh_token");
        assert!(!introspect("garbage".into()).await.active);

        // Introspection is for services and operators only.
        let mut stranger = stack.client_as("random-app").await;
        let denied = stranger
            .introspect(pb::IntrospectRequest {
                token: tokens.access_token.clone(),
            })
            .await;
        assert_status(denied, Code::PermissionDenied, "permission denied");
        let mut credential_service = stack.client_as("credential-service").await;
        assert!(
            credential_service
                .introspect(pb::IntrospectRequest { token: "x".into() })
                .await
                .is_ok()
        );

        operator
            .revoke(pb::RevokeRequest {
                token: tokens.access_token.clone(),
                token_type_hint: String::new(),
            })
            .await
            .unwrap();
        operator
            .revoke(pb::RevokeRequest {
                token: tokens.refresh_token.clone(),
                token_type_hint: "refresh_token".into(),
            })
            .await
            .unwrap();
        // RFC 7009: revoking nonsense is not an error.
        operator
            .revoke(pb::RevokeRequest {
                token: "nonsense".into(),
                ..Default::default()
            })
            .await
            .unwrap();

        assert!(!introspect(tokens.access_token.clone()).await.active);
        assert!(!introspect(tokens.refresh_token.clone()).await.active);
        let as_bearer = stack
            .client_as("gateway")
            .await
            .get_tenant(bearer(
                &tokens.access_token,
                pb::GetTenantRequest {
                    name: "tenants/acme".into(),
                },
            ))
            .await;
        assert_status(as_bearer, Code::Unauthenticated, "invalid credentials");
        let refreshed = operator
            .refresh(pb::RefreshRequest {
                refresh_token: tokens.refresh_token,
            })
            .await;
        assert_status(refreshed, Code::Unauthenticated, "invalid credentials");
        stack.shutdown().await;
    })
    .await;
}

fn coffer_test_support_any_drivers() {
    sqlx::any::install_default_drivers();
}

#[tokio::test]
async fn a_refresh_racing_a_reuse_of_the_same_token_never_leaves_a_usable_token() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        stack.tenant_with_user("acme", "alice", &["viewer"]).await;
        let client = stack.client_as("gateway").await;
        let refresh = |token: String| {
            let mut client = client.clone();
            async move {
                client
                    .refresh(pb::RefreshRequest {
                        refresh_token: token,
                    })
                    .await
                    .map(tonic::Response::into_inner)
            }
        };
        for _ in 0..20 {
            let stolen = stack.login("acme", "alice").await.refresh_token;
            // The owner and a thief present the same token at the same time.
            let (owner, thief) = tokio::join!(refresh(stolen.clone()), refresh(stolen));
            let issued: Vec<String> = [owner, thief]
                .into_iter()
                .filter_map(Result::ok)
                .map(|tokens| tokens.refresh_token)
                .collect();
            assert!(issued.len() <= 1, "a token was spent twice");
            // Reuse was detected (one of them presented a spent token), so whatever the
            // winner got is dead, however the two interleaved.
            for token in issued {
                assert_status(
                    refresh(token).await,
                    Code::Unauthenticated,
                    "invalid credentials",
                );
            }
        }
        stack.shutdown().await;
    })
    .await;
}

/// Who may call Introspect, VerifyApiKey and ListRevocations is auth-service's table
/// (`AUTHZ`), not a list in code: a configured identity gets exactly the RPCs its rule names,
/// and the defaults (credential-service, gateway) no longer apply once a table is given.
/// Operators keep every RPC.
#[tokio::test]
async fn the_service_rpc_table_is_configurable() {
    let Some(db) =
        coffer_test_support::TestDatabase::create(coffer_test_support::Backend::Sqlite).await
    else {
        return;
    };
    let stack = Stack::spawn_with(db, |config| {
        config.authz = Some(
            coffer_auth_service::Policy::parse(
                "spiffe://coffer.local/edge/=Introspect; spiffe://coffer.local/mirror=ListRevocations",
            )
            .unwrap(),
        );
    })
    .await;
    let introspect = pb::IntrospectRequest { token: "x".into() };
    let verify = pb::VerifyApiKeyRequest {
        key: "mcp_sk_x".into(),
        ..Default::default()
    };
    let revocations = pb::ListRevocationsRequest::default();

    let mut edge = stack.client_as("edge/eu-1").await;
    assert!(edge.introspect(introspect.clone()).await.is_ok());
    assert_status(
        edge.verify_api_key(verify.clone()).await,
        Code::PermissionDenied,
        "permission denied",
    );
    let mut mirror = stack.client_as("mirror").await;
    assert!(mirror.list_revocations(revocations).await.is_ok());
    assert_status(
        mirror.introspect(introspect.clone()).await,
        Code::PermissionDenied,
        "permission denied",
    );
    let mut credential_service = stack.client_as("credential-service").await;
    assert_status(
        credential_service.introspect(introspect.clone()).await,
        Code::PermissionDenied,
        "permission denied",
    );
    let mut operator = stack.operator();
    assert!(operator.introspect(introspect).await.is_ok());
    assert!(operator.list_revocations(revocations).await.is_ok());

    for bad in [
        "spiffe://coffer.local/edge=CreateTenant",
        "spiffe://coffer.local/edge=Introspect@tenants/*",
        "edge=Introspect",
    ] {
        assert!(coffer_auth_service::Policy::parse(bad).is_err(), "{bad}");
    }
}
