//! A REST request transcoded and sent through the dynamic codec reaches the real service and
//! comes back as JSON: no generated client is involved.

#![allow(clippy::unwrap_used)]

use coffer_crypto::RootKeyring;
use coffer_gateway::routes::Routes;
use coffer_gateway::{grpc, transcode};
use coffer_test_support::{connect, init_tracing};
use coffer_transport::DevCa;
use coffer_transport::dev_ca::Usage;
use http::Method;
use prost_reflect::DescriptorPool;

#[tokio::test]
async fn a_transcoded_request_reaches_the_service_and_its_answer_maps_back_to_json() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate("coffer.local").unwrap();
    let certificates = coffer_stack::Certificates {
        key_service: ca.issue_material("key-service", Usage::Service).unwrap(),
        auth_service: ca.issue_material("auth-service", Usage::Service).unwrap(),
        credential_service: ca
            .issue_material("credential-service", Usage::Service)
            .unwrap(),
    };
    let stack = coffer_stack::Stack::builder(RootKeyring::generate().unwrap(), certificates)
        .databases(coffer_stack::Databases::sqlite_in(dir.path()))
        .spawn()
        .await
        .unwrap();
    let channel = connect(
        stack.auth_service.addr,
        ca.issue_material("operator/test", Usage::Client)
            .unwrap()
            .client_config("127.0.0.1"),
    )
    .await
    .unwrap();
    let pool = DescriptorPool::decode(coffer_proto::FILE_DESCRIPTOR_SET).unwrap();
    let routes = Routes::build(&pool, |_| true).unwrap();

    let call = |method: Method, path: &'static str, body: &'static str| {
        let (routes, channel) = (&routes, channel.clone());
        async move {
            let matched = routes.find(&method, path).unwrap();
            let message =
                transcode::request(matched.route, &matched.bindings, "", body.as_bytes()).unwrap();
            grpc::unary(channel, &matched.route.rpc, tonic::Request::new(message))
                .await
                .map(|reply| transcode::response(matched.route, reply.get_ref()))
        }
    };
    let created = call(
        Method::POST,
        "/v1/tenants",
        r#"{"tenantId": "acme", "displayName": "Acme Corp"}"#,
    )
    .await
    .unwrap();
    assert_eq!(created["name"], "tenants/acme", "{created}");
    assert_eq!(created["displayName"], "Acme Corp", "{created}");
    let read = call(Method::GET, "/v1/tenants/acme", "").await.unwrap();
    assert_eq!(read, created);
    let missing = call(Method::GET, "/v1/tenants/nobody", "")
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");
    stack.shutdown().await.unwrap();
}
