//! The gateway over real HTTP in front of a real stack: credentials created, read masked,
//! revealed and listed over REST with an API key, and the JSON errors and headers a client
//! meets on the way.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;

use coffer_gateway::routes::Routes;
use coffer_gateway::server::{Cors, Gateway, MAX_BODY_BYTES};
use prost_reflect::DescriptorPool;
use serde_json::json;
use support::{Rest, assert_security_headers, send, send_with, serve};

#[tokio::test]
async fn credentials_over_rest_with_an_api_key() {
    let rest = Rest::start().await;
    let created = rest
        .send(
            "POST",
            "/v1/tenants/acme/credentials",
            json!({
                "serverId": "github",
                "templateId": "github",
                "serverName": "GitHub",
                "env": {"GITHUB_TOKEN": "ghp_0123456789abcdefSECRET"},
            })
            .to_string(),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.json);
    assert_security_headers(&created);
    let name = created.json["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("tenants/acme/credentials/"), "{name}");
    assert!(
        !created.json.to_string().contains("SECRET"),
        "a create answers masked: {}",
        created.json
    );

    let read = rest.send("GET", &format!("/v1/{name}"), "").await;
    assert_eq!(read.status, 200, "{}", read.json);
    assert!(!read.json.to_string().contains("SECRET"), "{}", read.json);
    assert_eq!(read.json["serverId"], "github");

    let revealed = rest.send("POST", &format!("/v1/{name}:reveal"), "{}").await;
    assert_eq!(revealed.status, 200, "{}", revealed.json);
    assert_eq!(
        revealed.json["env"]["GITHUB_TOKEN"],
        "ghp_0123456789abcdefSECRET"
    );

    let listed = rest
        .send("GET", "/v1/tenants/acme/credentials?pageSize=10", "")
        .await;
    assert_eq!(listed.status, 200, "{}", listed.json);
    assert_eq!(listed.json["credentials"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn errors_are_json_with_the_standard_status_and_the_headers() {
    let rest = Rest::start().await;
    let missing = rest
        .send(
            "GET",
            "/v1/tenants/acme/credentials/0123456789abcdef0123456789abcdef",
            "",
        )
        .await;
    assert_eq!(missing.status, 404, "{}", missing.json);
    assert_eq!(missing.json["error"]["status"], "NOT_FOUND");
    assert_eq!(missing.json["error"]["code"], 404);
    assert_eq!(
        missing.json["error"]["details"][0]["@type"],
        "type.googleapis.com/google.rpc.ErrorInfo"
    );
    assert_security_headers(&missing);

    let other_tenant = rest.send("GET", "/v1/tenants/globex/credentials", "").await;
    assert_eq!(other_tenant.status, 404, "{}", other_tenant.json);

    let no_route = rest.send("GET", "/v1/nothing/here", "").await;
    assert_eq!(no_route.status, 404);
    assert_eq!(no_route.json["error"]["status"], "NOT_FOUND");
    assert_security_headers(&no_route);

    let wrong_method = rest.send("PUT", "/v1/tenants/acme/credentials", "{}").await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(
        wrong_method
            .headers
            .get("allow")
            .and_then(|v| v.to_str().ok()),
        Some("POST, GET")
    );
    assert_security_headers(&wrong_method);

    let unknown_field = rest
        .send(
            "POST",
            "/v1/tenants/acme/credentials",
            json!({"serverId": "x", "bogus": 1}).to_string(),
        )
        .await;
    assert_eq!(unknown_field.status, 400, "{}", unknown_field.json);
    let violation = &unknown_field.json["error"]["details"][0]["fieldViolations"][0];
    assert!(
        violation["description"].as_str().unwrap().contains("bogus"),
        "{}",
        unknown_field.json
    );

    let malformed = rest
        .send("POST", "/v1/tenants/acme/credentials", "{\"serverId\":")
        .await;
    assert_eq!(malformed.status, 400);
    assert_eq!(
        malformed.json["error"]["details"][0]["fieldViolations"][0]["field"],
        "body"
    );

    let huge = rest
        .send(
            "POST",
            "/v1/tenants/acme/credentials",
            vec![b' '; MAX_BODY_BYTES + 1],
        )
        .await;
    assert_eq!(huge.status, 413);
    assert_eq!(huge.json["error"]["code"], 413);
    assert_security_headers(&huge);
}

#[tokio::test]
async fn probes_say_whether_the_process_is_up_and_the_services_ready() {
    let rest = Rest::start().await;
    let live = rest.send("GET", "/healthz", "").await;
    assert_eq!(live.status, 200);
    assert_security_headers(&live);
    let ready = rest.send("GET", "/readyz", "").await;
    assert_eq!(ready.status, 200, "{}", ready.json);
    assert_eq!(
        ready.json["services"]["coffer.v1.CredentialService"],
        "serving"
    );
    // One dependency alone.
    let one = rest
        .send("GET", "/readyz?service=coffer.v1.KeyService", "")
        .await;
    assert_eq!(one.status, 200, "{}", one.json);
    assert_eq!(
        one.json["services"],
        json!({"coffer.v1.KeyService": "serving"})
    );
    let unknown = rest.send("GET", "/readyz?service=coffer.v1.Nope", "").await;
    assert_eq!(unknown.status, 404, "{}", unknown.json);
    assert_security_headers(&unknown);
}

#[tokio::test]
async fn a_service_down_is_503_in_json_and_the_gateway_stays_up() {
    let pool = DescriptorPool::decode(coffer_proto::FILE_DESCRIPTOR_SET).unwrap();
    let routes = Routes::build(&pool, coffer_gateway::routes::public).unwrap();
    // A port nothing listens on: bound, then released.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{dead}"))
        .unwrap()
        .connect_lazy();
    let upstreams = HashMap::from([("coffer.v1.CredentialService".to_owned(), channel)]);
    let addr = serve(Gateway::new(routes, upstreams)).await;
    for _ in 0..2 {
        let down = send(addr, "mcp_sk_x", "GET", "/v1/tenants/acme/credentials", "").await;
        assert_eq!(down.status, 503, "{}", down.json);
        assert_eq!(down.json["error"]["status"], "UNAVAILABLE");
        assert!(
            !down.json.to_string().contains(&dead.to_string()),
            "{}",
            down.json
        );
        assert_security_headers(&down);
    }
    let not_ready = send(addr, "", "GET", "/readyz", "").await;
    assert_eq!(not_ready.status, 503, "{}", not_ready.json);
    assert_eq!(
        not_ready.json["services"]["coffer.v1.CredentialService"],
        "unavailable"
    );
    let live = send(addr, "", "GET", "/healthz", "").await;
    assert_eq!(live.status, 200, "the gateway stays up");
    let unrouted = send(addr, "mcp_sk_x", "GET", "/v1/tenants/acme/keys", "").await;
    assert_eq!(
        unrouted.status, 503,
        "a service with no channel: {}",
        unrouted.json
    );
}

/// The document the gateway serves validates as OpenAPI 3.1 (openapi-spec-validator, an
/// independent implementation, installed by scripts/test).
#[tokio::test]
async fn the_served_openapi_document_validates_as_openapi_3_1() {
    let Some(python) = coffer_test_support::python_with(&["openapi_spec_validator"]) else {
        return;
    };
    let routes = Routes::coffer(coffer_gateway::routes::public).unwrap();
    let addr = serve(Gateway::new(routes, HashMap::new())).await;
    let served = send(addr, "", "GET", "/openapi.json", "").await;
    assert_eq!(served.status, 200);
    assert_security_headers(&served);
    assert_eq!(served.json["openapi"], "3.1.0");
    let docs = send_with(addr, "GET", "/docs", &[]).await;
    assert_eq!(docs.status, 200);
    assert_eq!(
        docs.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/html; charset=utf-8")
    );
    assert_security_headers(&docs);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, served.json.to_string()).unwrap();
    let checked = std::process::Command::new(python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

#[tokio::test]
async fn cors_is_denied_by_default_and_allowed_only_for_a_configured_origin() {
    let preflight = [
        ("origin", "https://app.example"),
        ("access-control-request-method", "GET"),
        ("access-control-request-headers", "authorization"),
    ];
    let routes = || Routes::coffer(coffer_gateway::routes::public).unwrap();
    let denied = serve(Gateway::new(routes(), HashMap::new())).await;
    for (method, headers) in [("OPTIONS", &preflight[..]), ("GET", &preflight[..1])] {
        let answer = send_with(denied, method, "/healthz", headers).await;
        assert!(
            !answer.headers.contains_key("access-control-allow-origin"),
            "{method}: {:?}",
            answer.headers
        );
        assert_security_headers(&answer);
    }

    let configured = serve(
        Gateway::new(routes(), HashMap::new())
            .cors(Cors::Origins(vec!["https://app.example".parse().unwrap()])),
    )
    .await;
    let allowed = send_with(
        configured,
        "OPTIONS",
        "/v1/tenants/acme/credentials",
        &preflight,
    )
    .await;
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed
            .headers
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://app.example")
    );
    assert!(
        !allowed
            .headers
            .contains_key("access-control-allow-credentials")
    );
    assert_security_headers(&allowed);
    let other = send_with(
        configured,
        "OPTIONS",
        "/v1/tenants/acme/credentials",
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "GET"),
        ],
    )
    .await;
    assert!(
        !other.headers.contains_key("access-control-allow-origin"),
        "{:?}",
        other.headers
    );

    let any = serve(Gateway::new(routes(), HashMap::new()).cors(Cors::Any)).await;
    let answer = send_with(any, "GET", "/healthz", &preflight[..1]).await;
    assert_eq!(
        answer
            .headers
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("*")
    );
    assert!(
        !answer
            .headers
            .contains_key("access-control-allow-credentials")
    );
}

#[tokio::test]
async fn the_101st_request_in_a_minute_from_one_address_is_429_in_json() {
    let routes = Routes::coffer(coffer_gateway::routes::public).unwrap();
    let addr = serve(Gateway::new(routes, HashMap::new())).await;
    for n in 1..=100 {
        let answer = send_with(addr, "GET", "/healthz", &[]).await;
        assert_eq!(answer.status, 200, "request {n}");
    }
    let refused = send_with(addr, "GET", "/healthz", &[]).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json["error"]["status"], "RESOURCE_EXHAUSTED");
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_security_headers(&refused);
}

#[tokio::test]
async fn one_api_key_is_limited_across_addresses_and_other_keys_are_not() {
    let routes = Routes::coffer(coffer_gateway::routes::public).unwrap();
    let addr = serve(
        Gateway::new(routes, HashMap::new())
            .rate_limit(0)
            .key_rate_limit(3),
    )
    .await;
    let key = |id: &str| format!("mcp_sk_{id}_{}", "s".repeat(49));
    let busy = key("BusyBusyBusy");
    for n in 1..=3 {
        let answer = send(addr, &busy, "GET", "/healthz", "").await;
        assert_eq!(answer.status, 200, "request {n}");
    }
    let refused = send(addr, &busy, "GET", "/healthz", "").await;
    assert_eq!(refused.status, 429, "{}", refused.json);
    assert!(
        refused.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("API key")
    );
    assert!(refused.headers.contains_key("retry-after"));
    assert_security_headers(&refused);
    let other = send(addr, &key("QuietQuietQu"), "GET", "/healthz", "").await;
    assert_eq!(other.status, 200);
}

#[tokio::test]
async fn oversized_headers_are_431_in_json() {
    let routes = Routes::coffer(coffer_gateway::routes::public).unwrap();
    let addr = serve(Gateway::new(routes, HashMap::new())).await;
    let big = "x".repeat(coffer_gateway::server::MAX_HEADER_BYTES);
    let answer = send_with(addr, "GET", "/healthz", &[("x-padding", &big)]).await;
    assert_eq!(answer.status, 431, "{}", answer.json);
    assert_eq!(answer.json["error"]["code"], 431);
    assert_security_headers(&answer);
    let small = send_with(addr, "GET", "/healthz", &[("x-padding", "x")]).await;
    assert_eq!(small.status, 200);
}

/// A service that accepts connections and never answers: past the cap on requests in flight
/// the next one is shed at once (503), and the one in flight ends at the timeout (504).
#[tokio::test]
async fn past_the_cap_requests_are_shed_and_a_hung_call_times_out() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{silent_addr}"))
        .unwrap()
        .connect_lazy();
    let upstreams = HashMap::from([("coffer.v1.CredentialService".to_owned(), channel)]);
    let routes = Routes::coffer(coffer_gateway::routes::public).unwrap();
    let addr = serve(
        Gateway::new(routes, upstreams)
            .max_in_flight(1)
            .timeout(std::time::Duration::from_secs(1)),
    )
    .await;
    let hung = tokio::spawn(async move {
        send(addr, "mcp_sk_x", "GET", "/v1/tenants/acme/credentials", "").await
    });
    // Wait until the hung call holds the one permit: the probe is shed from then on.
    let mut shed = None;
    for _ in 0..200 {
        let probe = send_with(addr, "GET", "/healthz", &[]).await;
        if probe.status == 503 {
            shed = Some(probe);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let shed = shed.expect("a request past the cap is shed");
    assert_eq!(shed.json["error"]["status"], "UNAVAILABLE");
    assert_eq!(shed.headers["retry-after"], "1");
    assert_security_headers(&shed);
    let hung = hung.await.unwrap();
    assert_eq!(hung.status, 504, "{}", hung.json);
    assert_eq!(hung.json["error"]["status"], "DEADLINE_EXCEEDED");
    assert_security_headers(&hung);
    // With the permit back, requests are admitted again.
    assert_eq!(send_with(addr, "GET", "/healthz", &[]).await.status, 200);
    drop(silent);
}

#[tokio::test]
async fn requests_are_counted_by_route_template_and_status_with_bounded_labels() {
    let mut registry = prometheus_client::registry::Registry::default();
    let routes = Routes::coffer(coffer_gateway::routes::public).unwrap();
    let addr = serve(Gateway::new(routes, HashMap::new()).metrics(&mut registry)).await;
    assert_eq!(send_with(addr, "GET", "/healthz", &[]).await.status, 200);
    for made_up in ["/v1/nothing/1", "/v1/nothing/2", "/etc/passwd"] {
        assert_eq!(send_with(addr, "GET", made_up, &[]).await.status, 404);
    }
    // A routed template: no channel for the service, so 503, under the template's label.
    let answer = send(
        addr,
        "mcp_sk_x",
        "GET",
        "/v1/tenants/acme/credentials/abc",
        "",
    )
    .await;
    assert_eq!(answer.status, 503);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for expected in [
        r#"coffer_http_requests_total{route="/healthz",status="200"} 1"#,
        r#"coffer_http_requests_total{route="-",status="404"} 3"#,
        r#"coffer_http_requests_total{route="/v1/{name=tenants/*/credentials/*}",status="503"} 1"#,
    ] {
        assert!(text.contains(expected), "missing {expected} in:\n{text}");
    }
    assert!(
        !text.contains("passwd") && !text.contains("nothing"),
        "{text}"
    );
}

/// TLS on the public listener: a client that connects and never starts its handshake does
/// not hold up the next one, and plain HTTP gets no answer.
#[tokio::test]
async fn tls_is_served_and_a_silent_client_does_not_block_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let ca = coffer_transport::DevCa::load_or_create(dir.path(), "coffer.local").unwrap();
    let files = ca
        .issue_files(
            dir.path(),
            "public",
            "gateway",
            coffer_transport::dev_ca::Usage::Service,
        )
        .unwrap();
    let config =
        coffer_transport::public_server_config(&files.cert, &files.key, &[b"http/1.1"]).unwrap();
    let routes = Routes::coffer(coffer_gateway::routes::public).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(Gateway::new(routes, HashMap::new()).serve_tls(
        listener,
        std::sync::Arc::new(config),
        std::future::pending(),
    ));
    let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (status, body) =
        coffer_test_support::https(addr, &files.ca, "localhost", "GET", "/healthz", &[], "").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    // Plain HTTP: whatever comes back (a TLS alert, or nothing) is no HTTP answer.
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(15),
        plain.read_to_end(&mut answer),
    )
    .await;
    assert!(!answer.starts_with(b"HTTP/"), "plain HTTP was answered");
}
