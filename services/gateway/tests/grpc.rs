//! A REST request transcoded and sent through the dynamic codec reaches the real service and
//! comes back as JSON: no generated client is involved.

#![allow(clippy::unwrap_used)]

mod support;

use coffer_gateway::routes::Routes;
use coffer_gateway::{grpc, transcode};
use coffer_test_support::connect;
use coffer_transport::dev_ca::Usage;
use http::Method;
use prost_reflect::DescriptorPool;

#[tokio::test]
async fn a_transcoded_request_reaches_the_service_and_its_answer_maps_back_to_json() {
    let dir = tempfile::tempdir().unwrap();
    let (stack, ca) = support::stack(dir.path()).await;
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
