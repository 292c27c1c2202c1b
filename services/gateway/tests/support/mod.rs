//! What the gateway's integration tests share: a real stack on SQLite files and its CA, a
//! gateway in front of it with a tenant, an org_admin and its API key, and one-request HTTP
//! helpers. Each test binary uses a part of it.

#![allow(clippy::unwrap_used, dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;
use coffer_crypto::RootKeyring;
use coffer_gateway::routes::Routes;
use coffer_gateway::server::Gateway;
use coffer_proto::pb;
use coffer_proto::pb::auth_service_client::AuthServiceClient;
use coffer_test_support::{connect, init_tracing};
use coffer_transport::DevCa;
use coffer_transport::dev_ca::Usage;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use prost_reflect::DescriptorPool;
use serde_json::Value;
use tonic::transport::Channel;

/// The three services on SQLite files in `dir` (bcrypt at its cheapest), and the CA that
/// issued their certificates (for operator and gateway identities).
pub(crate) async fn stack(dir: &std::path::Path) -> (coffer_stack::Stack, DevCa) {
    init_tracing();
    let ca = DevCa::generate("coffer.local").unwrap();
    let certificates = coffer_stack::Certificates::issue(&ca).unwrap();
    let stack = coffer_stack::Stack::builder(RootKeyring::generate().unwrap(), certificates)
        .databases(coffer_stack::Databases::sqlite_in(dir))
        .auth_service(|config| config.bcrypt_cost = 4)
        .spawn()
        .await
        .unwrap();
    (stack, ca)
}

/// A gateway with the default routing rule in front of a real stack, tenant `acme` with the
/// org_admin service account `ada`, and `ada`'s API key.
pub(crate) struct Rest {
    pub(crate) addr: SocketAddr,
    /// `ada`'s API key (every scope).
    pub(crate) key: String,
    /// auth-service as an operator.
    pub(crate) operator: AuthServiceClient<Channel>,
    pub(crate) stack: coffer_stack::Stack,
    _dir: tempfile::TempDir,
}

/// An HTTP answer: status, headers and the body as JSON (`Null` if it is not JSON).
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    pub(crate) json: Value,
    /// The body as text (HTML pages).
    pub(crate) text: String,
}

impl Rest {
    pub(crate) async fn start() -> Self {
        Self::start_with(|gateway| gateway).await
    }

    /// As [`Rest::start`], with `tweak` applied to the gateway.
    pub(crate) async fn start_with(tweak: impl FnOnce(Gateway) -> Gateway) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (stack, ca) = stack(dir.path()).await;
        let operator = ca
            .issue_material("operator/test", Usage::Client)
            .unwrap()
            .client_config("127.0.0.1");
        let mut operator =
            AuthServiceClient::new(connect(stack.auth_service.addr, operator).await.unwrap());
        operator
            .create_tenant(pb::CreateTenantRequest {
                tenant_id: "acme".into(),
                display_name: "Acme".into(),
            })
            .await
            .unwrap();
        operator
            .create_principal(pb::CreatePrincipalRequest {
                parent: "tenants/acme".into(),
                principal_id: "ada".into(),
                kind: pb::PrincipalKind::ServiceAccount as i32,
                roles: vec!["org_admin".into()],
                ..Default::default()
            })
            .await
            .unwrap();

        let gateway_tls = ca
            .issue_material("gateway", Usage::Client)
            .unwrap()
            .client_config("127.0.0.1");
        let mut upstreams = HashMap::new();
        for (service, addr) in [
            ("coffer.v1.KeyService", stack.key_service.addr),
            ("coffer.v1.AuthService", stack.auth_service.addr),
            ("coffer.v1.CredentialService", stack.credential_service.addr),
        ] {
            upstreams.insert(
                service.to_owned(),
                connect(addr, gateway_tls.clone()).await.unwrap(),
            );
        }
        let pool = DescriptorPool::decode(coffer_proto::FILE_DESCRIPTOR_SET).unwrap();
        let routes = Routes::build(&pool, coffer_gateway::routes::public).unwrap();
        let addr = serve(tweak(Gateway::new(routes, upstreams))).await;
        let mut rest = Self {
            addr,
            key: String::new(),
            operator,
            stack,
            _dir: dir,
        };
        rest.key = rest.api_key("ada", &[]).await;
        rest
    }

    /// A new API key of `principal` in `acme`, limited to `scopes` (none: all of its own).
    pub(crate) async fn api_key(&mut self, principal: &str, scopes: &[&str]) -> String {
        self.operator
            .create_api_key(pb::CreateApiKeyRequest {
                parent: "tenants/acme".into(),
                principal: format!("tenants/acme/principals/{principal}"),
                display_name: "gateway test".into(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                ttl: None,
            })
            .await
            .unwrap()
            .into_inner()
            .key
    }

    /// A request with `ada`'s key.
    pub(crate) async fn send(&self, method: &str, path: &str, body: impl Into<Bytes>) -> Answer {
        send(self.addr, &self.key, method, path, body).await
    }
}

/// Serves `gateway` on a free loopback port.
pub(crate) async fn serve(gateway: Gateway) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(gateway.serve(listener, std::future::pending()));
    addr
}

/// One JSON request with `key` as the bearer (none if empty).
pub(crate) async fn send(
    addr: SocketAddr,
    key: &str,
    method: &str,
    path: &str,
    body: impl Into<Bytes>,
) -> Answer {
    let authorization = format!("Bearer {key}");
    let mut headers = vec![("content-type", "application/json")];
    if !key.is_empty() {
        headers.push(("authorization", authorization.as_str()));
    }
    request(addr, method, path, &headers, body.into()).await
}

/// One request with `headers` and no bearer.
pub(crate) async fn send_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    request(addr, method, path, headers, Bytes::new()).await
}

/// One HTTP/1.1 request on a connection of its own.
pub(crate) async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Answer {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender
        .send_request(request.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Every response kind carries the security headers.
pub(crate) fn assert_security_headers(answer: &Answer) {
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(
            answer.headers.get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{name} on a {} answer",
            answer.status
        );
    }
    for name in ["strict-transport-security", "content-security-policy"] {
        assert!(
            answer.headers.contains_key(name),
            "{name} on a {}",
            answer.status
        );
    }
}
