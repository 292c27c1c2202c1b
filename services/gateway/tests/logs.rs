//! The gateway's logs, in a test binary of their own: capturing them installs a subscriber,
//! and tracing caches per call site whether anyone listens, which other tests running on
//! other threads of the same process could decide first (the test then missed the access log
//! lines it looks for).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::{Rest, send, send_with};

/// Everything logged on this thread.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The suite's secrets (the API key, a revealed value, a bogus key, a token-like request id)
/// never reach a log line, while every REST call leaves one naming its route template.
#[tokio::test]
async fn the_logs_name_routes_and_hold_no_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    // DEBUG: everything an operator would turn on to look into a problem.
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let rest = Rest::start().await;
    let secret = "sk-live-LOGCHECK-0123456789";
    let created = rest
        .send(
            "POST",
            "/v1/tenants/acme/credentials?unknown=sk-live-LOGCHECK-query",
            json!({"serverId": "s", "env": {"API_KEY": secret}}).to_string(),
        )
        .await;
    assert_eq!(
        created.status, 400,
        "the unknown query parameter: {}",
        created.json
    );
    let created = rest
        .send(
            "POST",
            "/v1/tenants/acme/credentials",
            json!({"serverId": "s", "env": {"API_KEY": secret}}).to_string(),
        )
        .await;
    let name = created.json["name"].as_str().unwrap().to_owned();
    let revealed = rest.send("POST", &format!("/v1/{name}:reveal"), "{}").await;
    assert_eq!(revealed.json["env"]["API_KEY"], secret);
    let bogus = "mcp_sk_BOGUSKEY0123456789abcdefghijklmnopqrstuvwx";
    let refused = send(rest.addr, bogus, "GET", "/v1/tenants/acme/credentials", "").await;
    assert_eq!(refused.status, 401);
    let token_id = send_with(
        rest.addr,
        "GET",
        "/v1/tenants/acme/credentials",
        &[("x-request-id", "eyJhbGciOiJSUzI1NiJ9.LOGCHECK")],
    )
    .await;
    assert_eq!(token_id.status, 401);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("route=\"/v1/{name=tenants/*/credentials/*}:reveal\"")
            || logs.contains("route=/v1/{name=tenants/*/credentials/*}:reveal"),
        "the access log names the route template:\n{logs}"
    );
    let key_id = &rest.key["mcp_sk_".len().."mcp_sk_".len() + 12];
    assert!(
        logs.contains(&format!("principal=apiKeys/{key_id}")),
        "the access log names the key by its public id:\n{logs}"
    );
    for leaked in [rest.key.as_str(), secret, "LOGCHECK", bogus] {
        assert!(!logs.contains(leaked), "{leaked} is in the logs:\n{logs}");
    }
}
