//! Tenants and principals: operators bootstrap, scopes gate, tenants stay apart.

use coffer_proto::pb;
use coffer_test_support::on_each_backend;
use tonic::Code;

use crate::helpers::{Stack, assert_status, bearer, scope_list, user_request};

#[tokio::test]
async fn operators_bootstrap_a_tenant_and_its_first_admin() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        let tenant = stack
            .operator()
            .create_tenant(pb::CreateTenantRequest {
                tenant_id: "acme".into(),
                display_name: "Acme Inc".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (tenant.name.as_str(), tenant.display_name.as_str()),
            ("tenants/acme", "Acme Inc")
        );
        let again = stack
            .operator()
            .create_tenant(pb::CreateTenantRequest {
                tenant_id: "acme".into(),
                display_name: String::new(),
            })
            .await;
        assert_status(again, Code::AlreadyExists, "tenants/acme");
        let bad = stack
            .operator()
            .create_tenant(pb::CreateTenantRequest {
                tenant_id: "Acme!".into(),
                display_name: String::new(),
            })
            .await;
        assert_status(bad, Code::InvalidArgument, "tenant_id");

        let admin = stack.create_user("acme", "alice", &["org_admin"]).await;
        assert_eq!(admin.name, "tenants/acme/principals/alice");
        assert_eq!(admin.kind, pb::PrincipalKind::User as i32);
        assert!(
            admin
                .effective_scopes
                .iter()
                .any(|s| s == "credential:reveal")
        );

        // A non-operator certificate cannot create tenants, bearer or not.
        let stranger = stack.client_as("some-service").await;
        let denied = stranger
            .clone()
            .create_tenant(pb::CreateTenantRequest {
                tenant_id: "evil".into(),
                display_name: String::new(),
            })
            .await;
        assert_status(denied, Code::PermissionDenied, "permission denied");
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn principals_are_validated_field_by_field() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        stack
            .tenant_with_user("acme", "alice", &["org_admin"])
            .await;
        let mut operator = stack.operator();
        let mut short = user_request("acme", "bob", &[]);
        short.password = "short".into();
        assert_status(
            operator.create_principal(short).await,
            Code::InvalidArgument,
            "password",
        );
        let mut long = user_request("acme", "bob", &[]);
        long.password = "x".repeat(73);
        assert_status(
            operator.create_principal(long).await,
            Code::InvalidArgument,
            "password",
        );
        assert_status(
            operator
                .create_principal(user_request("acme", "bob", &["root"]))
                .await,
            Code::InvalidArgument,
            "unknown role `root`",
        );
        assert_status(
            operator
                .create_principal(user_request("acme", "Bob", &[]))
                .await,
            Code::InvalidArgument,
            "principal_id",
        );
        let mut user_with_scopes = user_request("acme", "bob", &[]);
        user_with_scopes.scopes = scope_list("mcp:read");
        assert_status(
            operator.create_principal(user_with_scopes).await,
            Code::InvalidArgument,
            "scopes",
        );
        let mut no_kind = user_request("acme", "bob", &[]);
        no_kind.kind = 0;
        assert_status(
            operator.create_principal(no_kind).await,
            Code::InvalidArgument,
            "kind",
        );
        assert_status(
            operator
                .create_principal(user_request("acme", "alice", &[]))
                .await,
            Code::AlreadyExists,
            "alice",
        );
        assert_status(
            operator
                .create_principal(user_request("nowhere", "bob", &[]))
                .await,
            Code::NotFound,
            "tenants/nowhere",
        );

        let service_account = operator
            .create_principal(pb::CreatePrincipalRequest {
                parent: "tenants/acme".into(),
                principal_id: "mcp-runtime".into(),
                kind: pb::PrincipalKind::ServiceAccount as i32,
                password: String::new(),
                roles: vec![],
                scopes: scope_list("mcp:read credential:reveal"),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            service_account.effective_scopes.join(" "),
            "mcp:read credential:reveal"
        );
        let bad_scope = operator
            .create_principal(pb::CreatePrincipalRequest {
                parent: "tenants/acme".into(),
                principal_id: "svc2".into(),
                kind: pb::PrincipalKind::ServiceAccount as i32,
                scopes: scope_list("mcp:everything"),
                ..Default::default()
            })
            .await;
        assert_status(
            bad_scope,
            Code::InvalidArgument,
            "unknown scope `mcp:everything`",
        );
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn scopes_gate_each_rpc_and_other_tenants_are_not_found() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        stack
            .tenant_with_user("acme", "alice", &["org_admin"])
            .await;
        stack
            .tenant_with_user("globex", "gina", &["org_admin"])
            .await;
        let alice = stack.login("acme", "alice").await.access_token;
        let client = stack.client_as("gateway").await;

        // Alice (org_admin) adds a viewer; the viewer cannot add anyone.
        let bob = client
            .clone()
            .create_principal(bearer(&alice, user_request("acme", "bob", &["viewer"])))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(bob.roles, vec!["viewer"]);
        let bob_token = stack.login("acme", "bob").await.access_token;
        let denied = client
            .clone()
            .create_principal(bearer(&bob_token, user_request("acme", "eve", &[])))
            .await;
        assert_status(denied, Code::PermissionDenied, "permission denied");
        let listed = client
            .clone()
            .list_principals(bearer(
                &bob_token,
                pb::ListPrincipalsRequest {
                    parent: "tenants/acme".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let names: Vec<&str> = listed.principals.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "tenants/acme/principals/alice",
                "tenants/acme/principals/bob"
            ]
        );

        // Alice promotes bob; roles replace, unknown principals are NOT_FOUND.
        let promoted = client
            .clone()
            .set_roles(bearer(
                &alice,
                pb::SetRolesRequest {
                    name: bob.name.clone(),
                    roles: vec!["developer".into()],
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(promoted.effective_scopes.iter().any(|s| s == "mcp:write"));
        let missing = client
            .clone()
            .set_roles(bearer(
                &alice,
                pb::SetRolesRequest {
                    name: "tenants/acme/principals/zed".into(),
                    roles: vec![],
                },
            ))
            .await;
        assert_status(missing, Code::NotFound, "zed");

        // Another tenant's objects do not exist for alice, even as org_admin.
        let other = client
            .clone()
            .get_tenant(bearer(
                &alice,
                pb::GetTenantRequest {
                    name: "tenants/globex".into(),
                },
            ))
            .await;
        assert_status(other, Code::NotFound, "tenants/globex");
        let other = client
            .clone()
            .create_principal(bearer(
                &alice,
                user_request("globex", "mole", &["org_admin"]),
            ))
            .await;
        assert_status(other, Code::NotFound, "tenants/globex");
        let own = client
            .clone()
            .get_tenant(bearer(
                &alice,
                pb::GetTenantRequest {
                    name: "tenants/acme".into(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(own.name, "tenants/acme");

        // Without a bearer, a non-operator is unauthenticated; a bad bearer too.
        let anonymous = client
            .clone()
            .get_tenant(pb::GetTenantRequest {
                name: "tenants/acme".into(),
            })
            .await;
        assert_status(anonymous, Code::Unauthenticated, "invalid credentials");
        let forged = client
            .clone()
            .get_tenant(bearer(
                "eyJhbGciOiJub25lIn0.e30.",
                pb::GetTenantRequest {
                    name: "tenants/acme".into(),
                },
            ))
            .await;
        assert_status(forged, Code::Unauthenticated, "invalid credentials");
        stack.shutdown().await;
    })
    .await;
}
