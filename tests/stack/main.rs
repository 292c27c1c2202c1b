//! The dev stack as operators meet it: `coffer up` (in process) and `grpcurl` with the
//! operator certificate, through server reflection.

// The whole crate is test code: helpers fail loudly, like the tests that call them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;
mod sdk;

use std::path::Path;
use std::process::Command;

use coffer::up;
use coffer_test_support::find_tool;

/// `coffer up` on free loopback ports with its data in `data_dir`, no gateway limits, and
/// these OAuth resources and document allowance.
fn dev_options(
    data_dir: std::path::PathBuf,
    oauth_resources: Vec<coffer_auth_service::Resource>,
    oauth_document_allowance: Option<coffer_auth_service::TestAllowance>,
) -> up::Options {
    up::Options {
        data_dir,
        listen: "127.0.0.1:0".parse().unwrap(),
        auth_listen: "127.0.0.1:0".parse().unwrap(),
        credential_listen: "127.0.0.1:0".parse().unwrap(),
        gateway_listen: "127.0.0.1:0".parse().unwrap(),
        gateway_cors: Default::default(),
        gateway_rate_limit: 0,
        gateway_key_rate_limit: 0,
        oauth_resources,
        oauth_document_allowance,
        shutdown_grace_period: std::time::Duration::from_secs(5),
        record_cache_ttl: None,
        database_url: None,
    }
}

/// Runs grpcurl as the operator against the stack; returns stdout, panicking with stderr on
/// failure.
fn grpcurl(grpcurl: &Path, running: &up::Running, args: &[&str]) -> String {
    let operator = &running.layout.operator;
    let output = Command::new(grpcurl)
        .arg("-cacert")
        .arg(&operator.ca)
        .arg("-cert")
        .arg(&operator.cert)
        .arg("-key")
        .arg(&operator.key)
        .args(args)
        .output()
        .expect("grpcurl runs");
    assert!(
        output.status.success(),
        "grpcurl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

#[tokio::test(flavor = "multi_thread")]
async fn grpcurl_lists_describes_and_round_trips_through_coffer_up() {
    let Some(tool) = find_tool("grpcurl") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let options = dev_options(dir.path().join("data"), Vec::new(), None);
    let running = up::start(&options).await.unwrap();
    let addr = running.key_service_addr.to_string();
    let auth = running.auth_service_addr.to_string();
    let credentials = running.credential_service_addr.to_string();

    let result = tokio::task::spawn_blocking(move || {
        let services = grpcurl(&tool, &running, &[&addr, "list"]);
        for expected in ["coffer.v1.KeyService", "grpc.health.v1.Health"] {
            assert!(services.lines().any(|l| l == expected), "{expected} not listed:\n{services}");
        }
        assert!(!services.contains("AuthService"), "advertises what it does not serve:\n{services}");
        let described = grpcurl(&tool, &running, &[&addr, "describe", "coffer.v1.KeyService"]);
        for rpc in ["rpc Encrypt", "rpc Decrypt", "rpc RotateRootKey", "rpc BatchRewrap"] {
            assert!(described.contains(rpc), "{rpc} missing:\n{described}");
        }
        let message = grpcurl(&tool, &running, &[&addr, "describe", "coffer.v1.EncryptRequest"]);
        assert!(message.contains("encryption_context"), "{message}");

        let name = "tenants/acme/keys/demo";
        let created = grpcurl(
            &tool,
            &running,
            &["-d", r#"{"parent":"tenants/acme","keyId":"demo"}"#, &addr, "coffer.v1.KeyService/CreateKey"],
        );
        let created: serde_json::Value = serde_json::from_str(&created).unwrap();
        assert_eq!(created["primaryVersion"], 1);
        assert_eq!(created["name"], name);

        let request = format!(
            r#"{{"name":"{name}","plaintext":"aGVsbG8gY29mZmVy","encryptionContext":{{"app":"demo"}}}}"#
        );
        let encrypted = grpcurl(&tool, &running, &["-d", &request, &addr, "coffer.v1.KeyService/Encrypt"]);
        let encrypted: serde_json::Value = serde_json::from_str(&encrypted).unwrap();
        let text = encrypted["ciphertextText"].as_str().unwrap().to_owned();
        assert!(text.starts_with("coffer:v1:"), "{encrypted}");

        let request = format!(
            r#"{{"name":"{name}","ciphertextText":"{text}","encryptionContext":{{"app":"demo"}}}}"#
        );
        let decrypted = grpcurl(&tool, &running, &["-d", &request, &addr, "coffer.v1.KeyService/Decrypt"]);
        let decrypted: serde_json::Value = serde_json::from_str(&decrypted).unwrap();
        assert_eq!(decrypted["plaintext"], "aGVsbG8gY29mZmVy");

        // auth-service: an operator bootstraps a tenant and an admin, who logs in and uses
        // the access token as a bearer.
        let services = grpcurl(&tool, &running, &[&auth, "list"]);
        assert!(services.lines().any(|l| l == "coffer.v1.AuthService"), "{services}");
        assert!(!services.contains("KeyService"), "{services}");
        grpcurl(
            &tool,
            &running,
            &["-d", r#"{"tenantId":"acme","displayName":"Acme"}"#, &auth, "coffer.v1.AuthService/CreateTenant"],
        );
        let principal = r#"{"parent":"tenants/acme","principalId":"alice","kind":"PRINCIPAL_KIND_USER","password":"correct horse battery","roles":["org_admin"]}"#;
        grpcurl(&tool, &running, &["-d", principal, &auth, "coffer.v1.AuthService/CreatePrincipal"]);
        let login = r#"{"tenantId":"acme","username":"alice","password":"correct horse battery"}"#;
        let tokens = grpcurl(&tool, &running, &["-d", login, &auth, "coffer.v1.AuthService/Login"]);
        let tokens: serde_json::Value = serde_json::from_str(&tokens).unwrap();
        let access = tokens["accessToken"].as_str().unwrap();
        let header = format!("authorization: Bearer {access}");
        let tenant = grpcurl(
            &tool,
            &running,
            &["-rpc-header", &header, "-d", r#"{"name":"tenants/acme"}"#, &auth, "coffer.v1.AuthService/GetTenant"],
        );
        assert!(tenant.contains("\"displayName\": \"Acme\""), "{tenant}");

        // credential-service: alice stores a credential with her token; reads are masked,
        // the reveal is audited.
        let services = grpcurl(&tool, &running, &[&credentials, "list"]);
        assert!(services.lines().any(|l| l == "coffer.v1.CredentialService"), "{services}");
        let create = r#"{"parent":"tenants/acme","serverId":"github","env":{"GITHUB_TOKEN":"ghp_0123456789abcdefghij"}}"#;
        let created = grpcurl(
            &tool,
            &running,
            &["-rpc-header", &header, "-d", create, &credentials, "coffer.v1.CredentialService/CreateCredential"],
        );
        let created: serde_json::Value = serde_json::from_str(&created).unwrap();
        assert_eq!(created["env"]["GITHUB_TOKEN"], "ghp_****************ghij");
        let reveal = format!(r#"{{"name":"{}"}}"#, created["name"].as_str().unwrap());
        let revealed = grpcurl(
            &tool,
            &running,
            &["-rpc-header", &header, "-d", &reveal, &credentials, "coffer.v1.CredentialService/RevealCredential"],
        );
        assert!(revealed.contains("ghp_0123456789abcdefghij"), "{revealed}");
        running
    })
    .await;
    let running = match result {
        Ok(running) => running,
        Err(panic) => std::panic::resume_unwind(panic.into_panic()),
    };
    running.shutdown().await.unwrap();
}
