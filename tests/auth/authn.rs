//! `coffer_authn::Authenticator`, as another service uses it, against a real auth-service.

use std::time::Duration;

use coffer_authn::Scope;
use coffer_authn::authenticator::{Authenticator, Error, Settings};
use coffer_proto::pb;
use coffer_test_support::{Backend, TestDatabase, connect};
use coffer_transport::dev_ca::Usage;

use crate::helpers::{Stack, bearer, scope_list};

async fn authenticator(stack: &Stack, settings: Settings) -> Authenticator {
    let material = stack
        .ca
        .issue_material("credential-service", Usage::Service)
        .unwrap();
    let channel = connect(stack.auth.addr, material.client_config("127.0.0.1"))
        .await
        .unwrap();
    Authenticator::connect(channel, settings).await.unwrap()
}

#[tokio::test]
async fn services_authenticate_jwts_and_api_keys_through_auth_service() {
    let db = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let stack = Stack::spawn(db).await;
    stack
        .tenant_with_user("acme", "alice", &["developer"])
        .await;
    let token = stack.login("acme", "alice").await.access_token;
    let authn = authenticator(&stack, Settings::default()).await;

    let principal = authn.authenticate(&bearer(&token, ())).await.unwrap();
    assert_eq!(
        (principal.tenant.as_str(), principal.subject.as_str()),
        ("acme", "alice")
    );
    assert!(principal.require(Scope::McpWrite).is_ok());
    assert!(principal.require(Scope::CredentialReveal).is_err());

    let key = stack
        .client_as("gateway")
        .await
        .create_api_key(bearer(
            &token,
            pb::CreateApiKeyRequest {
                parent: "tenants/acme".into(),
                scopes: scope_list("mcp:read"),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .key;
    let by_key = authn.authenticate(&bearer(&key, ())).await.unwrap();
    assert_eq!(by_key.subject, "alice");
    assert!(by_key.require(Scope::McpRead).is_ok() && by_key.require(Scope::McpWrite).is_err());

    assert_eq!(
        authn
            .authenticate(&tonic::Request::new(()))
            .await
            .unwrap_err(),
        Error::Missing
    );
    for bad in ["eyJhbGciOiJub25lIn0.e30.", "mcp_sk_nope", "garbage"] {
        assert_eq!(
            authn.authenticate(&bearer(bad, ())).await.unwrap_err(),
            Error::Invalid,
            "{bad}"
        );
    }
    let mut basic = tonic::Request::new(());
    basic
        .metadata_mut()
        .insert("authorization", "Basic YWxpY2U6cHc=".parse().unwrap());
    assert_eq!(
        authn.authenticate(&basic).await.unwrap_err(),
        Error::Invalid
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_rotated_signing_key_is_fetched_on_its_first_unknown_kid() {
    let db = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let stack = Stack::spawn(db).await;
    stack.tenant_with_user("acme", "alice", &["viewer"]).await;
    let settings = Settings {
        jwks_refresh_interval: Duration::ZERO,
        ..Settings::default()
    };
    let authn = authenticator(&stack, settings).await;
    stack
        .operator()
        .rotate_signing_key(pb::RotateSigningKeyRequest {})
        .await
        .unwrap();
    let token = stack.login("acme", "alice").await.access_token;
    let principal = authn.authenticate(&bearer(&token, ())).await.unwrap();
    assert_eq!(principal.subject, "alice");
    stack.shutdown().await;
}

#[tokio::test]
async fn without_auth_service_api_keys_fail_closed() {
    let db = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let mut stack = Stack::spawn(db).await;
    stack
        .tenant_with_user("acme", "alice", &["org_admin"])
        .await;
    let key = stack
        .operator()
        .create_api_key(pb::CreateApiKeyRequest {
            parent: "tenants/acme".into(),
            principal: "tenants/acme/principals/alice".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .key;
    let authn = authenticator(&stack, Settings::default()).await;
    stack.auth.stop().await.unwrap();
    assert_eq!(
        authn.authenticate(&bearer(&key, ())).await.unwrap_err(),
        Error::Unavailable
    );
    stack.key_service.stop().await;
}

#[tokio::test]
async fn the_tower_layer_admits_verified_calls_with_their_principal_and_answers_the_rest() {
    use std::sync::Arc;

    use coffer_authn::layer::{AuthnLayer, DEFAULT_PUBLIC_PREFIXES};
    use tower::{Layer as _, ServiceExt as _};

    let db = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let stack = Stack::spawn(db).await;
    stack.tenant_with_user("acme", "alice", &["viewer"]).await;
    let token = stack.login("acme", "alice").await.access_token;
    let layer = AuthnLayer::new(
        Arc::new(authenticator(&stack, Settings::default()).await),
        DEFAULT_PUBLIC_PREFIXES,
    );
    // The inner service reports the principal the layer attached, as a handler would see it.
    let inner = tower::service_fn(|request: http::Request<()>| async move {
        let subject = request
            .extensions()
            .get::<coffer_authn::Principal>()
            .map(|p| p.subject.clone());
        let mut response = http::Response::new(tonic::body::Body::empty());
        response.headers_mut().insert(
            "x-subject",
            subject.unwrap_or_else(|| "none".into()).parse().unwrap(),
        );
        Ok::<_, std::convert::Infallible>(response)
    });
    let service = layer.layer(inner);
    let call = |path: &str, authorization: Option<&str>| {
        let mut request = http::Request::builder().uri(path);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        service.clone().oneshot(request.body(()).unwrap())
    };

    let admitted = call(
        "/coffer.v1.CredentialService/GetCredential",
        Some(&format!("Bearer {token}")),
    )
    .await
    .unwrap();
    assert_eq!(admitted.headers()["x-subject"], "alice");
    let refused = call("/coffer.v1.CredentialService/GetCredential", None)
        .await
        .unwrap();
    assert_eq!(
        refused.headers()["grpc-status"],
        "16",
        "UNAUTHENTICATED without a bearer"
    );
    assert!(
        refused.headers().get("x-subject").is_none(),
        "the handler never ran"
    );
    let forged = call(
        "/coffer.v1.CredentialService/GetCredential",
        Some("Bearer eyJhbGciOiJub25lIn0.e30."),
    )
    .await
    .unwrap();
    assert_eq!(forged.headers()["grpc-status"], "16");
    let health = call("/grpc.health.v1.Health/Check", None).await.unwrap();
    assert_eq!(
        health.headers()["x-subject"],
        "none",
        "public paths pass without a bearer"
    );
    stack.shutdown().await;
}
