//! The `coffer` binary itself: `coffer up` starts, serves over mTLS, stops on SIGTERM, and a
//! second run reuses the data directory; `coffer certs issue` adds an identity.

// The whole crate is test code: helpers fail loudly, like the tests that call them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use coffer_proto::pb;
use coffer_proto::pb::key_service_client::KeyServiceClient;
use coffer_test_support::{connect, field};
use coffer_transport::{TlsFiles, TlsMaterial};

/// Starts `coffer up` on free ports and returns the child and the key-service address.
fn coffer_up(data_dir: &Path) -> (Child, SocketAddr) {
    let (child, addrs) = coffer_up_all(data_dir);
    (child, addrs[0])
}

/// Starts `coffer up` on free ports and returns the child and the addresses it printed (key,
/// auth and credential services, the REST gateway).
fn coffer_up_all(data_dir: &Path) -> (Child, [SocketAddr; 4]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--auth-listen",
            "127.0.0.1:0",
            "--credential-listen",
            "127.0.0.1:0",
            "--gateway-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(data_dir.with_extension("log")).unwrap())
        .spawn()
        .expect("coffer starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut found: [Option<SocketAddr>; 4] = [None; 4];
    let addrs = loop {
        let line = lines
            .next()
            .expect("coffer up printed its addresses")
            .unwrap();
        for (slot, prefix) in [
            "key-service listening on ",
            "auth-service listening on ",
            "credential-service listening on ",
            "gateway listening on http://",
        ]
        .iter()
        .enumerate()
        {
            if let Some(addr) = line.strip_prefix(prefix) {
                found[slot] = Some(addr.parse().unwrap());
            }
        }
        if let [Some(key), Some(auth), Some(credential), Some(gateway)] = found {
            break [key, auth, credential, gateway];
        }
    };
    // Keep reading so the child never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addrs)
}

fn terminate(mut child: Child, data_dir: &Path) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(data_dir.with_extension("log")).unwrap_or_default();
    assert!(
        status.success(),
        "coffer up exited with {status} on SIGTERM:\n{log}"
    );
}

async fn client(addr: SocketAddr, files: &TlsFiles) -> KeyServiceClient<tonic::transport::Channel> {
    let material = TlsMaterial::load(files).unwrap();
    KeyServiceClient::new(
        connect(addr, material.client_config("127.0.0.1"))
            .await
            .unwrap(),
    )
}

// Multi-threaded: `terminate` blocks this thread while the client's connection task must keep
// running to answer the server's GOAWAY, or the server would wait out its grace period.
#[tokio::test(flavor = "multi_thread")]
async fn coffer_up_serves_stops_on_sigterm_and_reuses_its_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let operator = coffer::layout::operator_files(&data_dir);

    let (child, addr) = coffer_up(&data_dir);
    // A key name of the credential-service's own pattern, so its certificate may use it.
    let name = "tenants/acme/keys/credentials";
    let mut operator_client = client(addr, &operator).await;
    operator_client
        .create_key(pb::CreateKeyRequest {
            parent: "tenants/acme".into(),
            key_id: "credentials".into(),
            key: None,
        })
        .await
        .unwrap();
    let ciphertext = operator_client
        .encrypt(pb::EncryptRequest {
            name: name.into(),
            plaintext: b"kept".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .ciphertext;
    let ca_before = std::fs::read(&operator.ca).unwrap();
    let root_keys_before = std::fs::read(data_dir.join("root-keys")).unwrap();
    terminate(child, &data_dir);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for (path, mode) in [
            (data_dir.clone(), 0o700),
            (data_dir.join("root-keys"), 0o600),
            (data_dir.join("certs/ca-key.pem"), 0o600),
            (data_dir.join("certs/operator-key.pem"), 0o600),
        ] {
            let actual = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(actual, mode, "{}", path.display());
        }
    }

    // `coffer certs issue` adds a service identity from the same CA.
    let issued = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args([
            "certs",
            "issue",
            "--name",
            "credential-service",
            "--data-dir",
        ])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(
        issued.status.success(),
        "{}",
        String::from_utf8_lossy(&issued.stderr)
    );
    let service = TlsFiles {
        cert: data_dir.join("certs/credential-service.pem"),
        key: data_dir.join("certs/credential-service-key.pem"),
        ca: operator.ca.clone(),
    };

    let (child, addr) = coffer_up(&data_dir);
    assert_eq!(
        std::fs::read(&operator.ca).unwrap(),
        ca_before,
        "the CA is reused"
    );
    assert_eq!(
        std::fs::read(data_dir.join("root-keys")).unwrap(),
        root_keys_before
    );
    let decrypted = client(addr, &service)
        .await
        .decrypt(pb::DecryptRequest {
            name: name.into(),
            input: Some(pb::decrypt_request::Input::Ciphertext(ciphertext)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decrypted.plaintext, b"kept");
    terminate(child, &data_dir);
}

#[test]
fn certs_issue_without_a_data_dir_explains_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["certs", "issue", "--name", "operator/bob", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("run `coffer up"), "{stderr}");
}

/// Runs `coffer ARGS` against the stack, with `stdin`, and returns stdout (panics on failure).
fn coffer(args: &[&str], data_dir: &Path, auth: SocketAddr, stdin: &str) -> String {
    let auth = auth.to_string();
    let data_dir = data_dir.display().to_string();
    let mut all = args.to_vec();
    all.extend(["--data-dir", &data_dir, "--auth-addr", &auth]);
    coffer_test_support::run_cli(Path::new(env!("CARGO_BIN_EXE_coffer")), &all, None, stdin)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bootstrap_admin_key_manages_api_keys_and_tokens_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (child, [_, auth, _, _]) = coffer_up_all(&data_dir);
    let admin_key = std::fs::read_to_string(data_dir.join("admin-api-key")).unwrap();
    assert!(admin_key.trim().starts_with("mcp_sk_"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data_dir.join("admin-api-key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let created = coffer(
        &[
            "apikey",
            "create",
            "--scopes",
            "mcp:read",
            "--display-name",
            "ci",
        ],
        &data_dir,
        auth,
        "",
    );
    let name = field(&created, "name:").to_owned();
    let key = field(&created, "key (shown once, store it now):").to_owned();
    assert!(name.starts_with("tenants/default/apiKeys/") && key.starts_with("mcp_sk_"));
    let listed = coffer(&["apikey", "list"], &data_dir, auth, "");
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(!listed.contains(&key), "list never shows a secret");

    let introspected = coffer(&["token", "introspect"], &data_dir, auth, &key);
    assert_eq!(
        field(&introspected, "active:"),
        "false",
        "API keys are not tokens"
    );
    let rolled = coffer(
        &["apikey", "roll", &name, "--grace", "60"],
        &data_dir,
        auth,
        "",
    );
    assert!(field(&rolled, "new key (shown once, store it now):").starts_with("mcp_sk_"));
    let revoked = coffer(&["apikey", "revoke", &name], &data_dir, auth, "");
    assert_eq!(field(&revoked, "revoked:"), name);
    let listed = coffer(&["apikey", "list"], &data_dir, auth, "");
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&name) && l.ends_with("revoked")),
        "{listed}"
    );

    // A user created over gRPC logs in with its password on stdin.
    let material = TlsMaterial::load(&coffer::layout::operator_files(&data_dir)).unwrap();
    let channel = connect(auth, material.client_config("127.0.0.1"))
        .await
        .unwrap();
    coffer_proto::pb::auth_service_client::AuthServiceClient::new(channel)
        .create_principal(pb::CreatePrincipalRequest {
            parent: "tenants/default".into(),
            principal_id: "dana".into(),
            kind: pb::PrincipalKind::User as i32,
            password: "correct horse battery".into(),
            // `user:token` (a developer's) lets her manage her own sign-in with a bearer.
            roles: vec!["developer".into()],
            scopes: Vec::new(),
        })
        .await
        .unwrap();
    let login = coffer(
        &["login", "--username", "dana"],
        &data_dir,
        auth,
        "correct horse battery\n",
    );
    let access = field(&login, "access_token:");
    let introspected = coffer(&["token", "introspect"], &data_dir, auth, access);
    assert_eq!(field(&introspected, "active:"), "true");
    assert_eq!(field(&introspected, "sub:"), "dana");

    // With two-step sign-in the code goes on stdin's second line (a recovery code here); an
    // operator turns it off for a user who lost it.
    let mut as_dana = coffer_proto::pb::auth_service_client::AuthServiceClient::new(
        connect(auth, material.client_config("127.0.0.1"))
            .await
            .unwrap(),
    );
    let enrollment = as_dana
        .enroll_totp(coffer_test_support::bearer(
            access,
            pb::EnrollTotpRequest::default(),
        ))
        .await
        .unwrap()
        .into_inner();
    let secret = coffer_crypto::totp::TotpSecret::from_base32(&enrollment.secret).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let recovery = as_dana
        .confirm_totp(coffer_test_support::bearer(
            access,
            pb::ConfirmTotpRequest {
                code: secret.code(i64::try_from(now).unwrap()),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .recovery_codes;
    let login = coffer(
        &["login", "--username", "dana"],
        &data_dir,
        auth,
        &format!("correct horse battery\n{}\n", recovery[0]),
    );
    assert!(field(&login, "access_token:").starts_with("ey"), "{login}");
    let removed = coffer(
        &["admin", "remove-totp", "--username", "dana"],
        &data_dir,
        auth,
        "",
    );
    assert_eq!(
        removed.trim(),
        "two-step sign-in off: tenants/default/principals/dana"
    );
    coffer(
        &["login", "--username", "dana"],
        &data_dir,
        auth,
        "correct horse battery\n",
    );
    terminate(child, &data_dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_credential_lives_through_the_cli_with_secrets_sealed_locally() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (child, [_, auth, credential, _]) = coffer_up_all(&data_dir);
    let addr = credential.to_string();
    let cred = |args: &[&str], stdin: &str| {
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--credential-addr", &addr]);
        coffer(&full, &data_dir, auth, stdin)
    };

    let created = cred(
        &[
            "cred",
            "create",
            "--server-id",
            "github",
            "--env",
            "ORG=acme",
            "--sealed",
            "GITHUB_TOKEN",
        ],
        "ghp_sealed_on_the_client_1234\n",
    );
    let name = field(&created, "name:").to_owned();
    assert_eq!(
        field(&created, "env GITHUB_TOKEN:"),
        "ghp_*********************1234"
    );
    assert!(!created.contains("sealed_on_the_client"), "{created}");

    let listed = cred(&["cred", "list"], "");
    assert!(
        listed.contains(&name) && listed.contains("GITHUB_TOKEN,ORG"),
        "{listed}"
    );
    let validated = cred(
        &[
            "cred",
            "validate",
            &name,
            "--require",
            "GITHUB_TOKEN",
            "--require",
            "SLACK",
        ],
        "",
    );
    assert_eq!(
        (field(&validated, "valid:"), field(&validated, "missing:")),
        ("false", "SLACK")
    );
    let updated = cred(
        &[
            "cred",
            "update",
            &name,
            "--version",
            "1",
            "--unset",
            "ORG",
            "--sealed",
            "SLACK",
        ],
        "xoxb-sealed-too-0000000\n",
    );
    assert_eq!(field(&updated, "row_version:"), "2");
    let revealed = cred(&["cred", "reveal", &name], "");
    assert!(
        revealed.contains("GITHUB_TOKEN=ghp_sealed_on_the_client_1234"),
        "{revealed}"
    );
    assert!(
        revealed.contains("SLACK=xoxb-sealed-too-0000000") && !revealed.contains("ORG="),
        "{revealed}"
    );
    let sealed: serde_json::Value = serde_json::from_str(&cred(&["seal"], "a value")).unwrap();
    assert!(sealed["ciphertext"].as_str().unwrap().len() > 40 && sealed["kid"].is_string());
    assert_eq!(
        field(&cred(&["cred", "delete", &name], ""), "deleted:"),
        name
    );
    terminate(child, &data_dir);
}

/// `coffer certs init` makes the certificates of a stack run as separate processes: a service
/// certificate answers to the names it was issued for (and localhost), not to others.
#[tokio::test]
async fn certs_init_issues_server_certificates_valid_for_the_names_given() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("pki");
    let output = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args([
            "certs",
            "init",
            "--dns",
            "kms.test",
            "--ip",
            "10.1.2.3",
            "--data-dir",
        ])
        .arg(&data_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("key-service: ") && stdout.contains("ca-key.pem"),
        "{stdout}"
    );
    assert!(
        !data_dir.join("root-keys").exists(),
        "certificates only: no dev root key"
    );
    let certs = data_dir.join("certs");
    let files = |stem: &str| TlsFiles {
        cert: certs.join(format!("{stem}.pem")),
        key: certs.join(format!("{stem}-key.pem")),
        ca: certs.join("ca.pem"),
    };

    // A key-service on that certificate, dialled by the operator under each name.
    let database = coffer_test_support::TestDatabase::create(coffer_test_support::Backend::Sqlite)
        .await
        .unwrap();
    let config = coffer_key_service::Config::new(
        secrecy::SecretString::from(database.url().to_owned()),
        coffer_crypto::RootKeyring::generate().unwrap(),
        TlsMaterial::load(&files("key-service")).unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _service = coffer_server::Service::spawn(listener.into(), |listeners, stopped| {
        coffer_key_service::serve(config, listeners, stopped)
    })
    .await
    .unwrap();
    let operator = TlsMaterial::load(&files("operator")).unwrap();
    for (name, valid) in [
        ("kms.test", true),
        ("localhost", true),
        ("other.test", false),
    ] {
        let reached = match connect(addr, operator.client_config(name)).await {
            Ok(channel) => KeyServiceClient::new(channel)
                .list_keys(pb::ListKeysRequest {
                    parent: "tenants/acme".into(),
                    ..Default::default()
                })
                .await
                .is_ok(),
            Err(_) => false,
        };
        assert_eq!(reached, valid, "dialled as {name}");
    }

    // `certs issue --server` adds a service identity with its own names; asking for a name the
    // existing certificate lacks is refused rather than answered with the old file.
    let issue = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_coffer"))
            .args(["certs", "issue"])
            .args(args)
            .arg("--data-dir")
            .arg(&data_dir)
            .output()
            .unwrap()
    };
    let issued = issue(&["--name", "edge-proxy", "--server", "--dns", "api.test"]);
    assert!(
        issued.status.success(),
        "{}",
        String::from_utf8_lossy(&issued.stderr)
    );
    let again = issue(&["--name", "edge-proxy", "--server", "--dns", "api2.test"]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("without DNS name api2.test"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let client_with_names = issue(&["--name", "app", "--dns", "x.test"]);
    assert!(!client_with_names.status.success(), "--dns needs --server");
}

/// `coffer admin bootstrap` makes a tenant's first admin with the operator certificate alone,
/// from certificate files named on the command line (no data directory), against an address
/// given by host name.
#[tokio::test(flavor = "multi_thread")]
async fn admin_bootstrap_makes_the_first_admin_with_explicit_certificate_files() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (child, [_, auth, _, _]) = coffer_up_all(&data_dir);
    let certs = data_dir.join("certs");
    let elsewhere = dir.path().join("no-such-dir");
    let run = |args: &[&str], api_key: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_coffer"));
        command
            .args(args)
            .args(["--auth-addr", &format!("localhost:{}", auth.port())])
            .arg("--cert")
            .arg(certs.join("operator.pem"))
            .arg("--key")
            .arg(certs.join("operator-key.pem"))
            .arg("--ca")
            .arg(certs.join("ca.pem"))
            .arg("--data-dir")
            .arg(&elsewhere)
            .env_remove("COFFER_API_KEY");
        if let Some(key) = api_key {
            command.env("COFFER_API_KEY", key);
        }
        command.output().unwrap()
    };
    let first = run(&["admin", "bootstrap", "--tenant", "acme"], None);
    let stdout = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(field(&stdout, "tenant:"), "tenants/acme (created)");
    let key = field(&stdout, "API key (shown once; Coffer keeps only its hash):").to_owned();
    assert!(key.starts_with("mcp_sk_"), "{stdout}");
    assert!(!elsewhere.exists(), "nothing is written locally");

    // The key administers its tenant.
    let listed = run(&["apikey", "list", "--tenant", "acme"], Some(&key));
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.starts_with("tenants/acme/apiKeys/"), "{listed}");

    // Run again: the tenant and account exist; a new key is issued for the same account.
    let again = run(&["admin", "bootstrap", "--tenant", "acme"], None);
    let stdout = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(field(&stdout, "tenant:"), "tenants/acme (existed)");
    assert_ne!(
        field(&stdout, "API key (shown once; Coffer keeps only its hash):"),
        key
    );
    terminate(child, &data_dir);
}

/// One HTTP/1.1 request to the gateway; the status, headers and JSON body.
async fn rest(
    gateway: SocketAddr,
    path: &str,
    bearer: Option<&str>,
) -> (u16, http::HeaderMap, serde_json::Value) {
    use http_body_util::BodyExt as _;
    let stream = tokio::net::TcpStream::connect(gateway).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut request = http::Request::builder()
        .uri(path)
        .header("host", gateway.to_string());
    if let Some(bearer) = bearer {
        request = request.header("authorization", format!("Bearer {bearer}"));
    }
    let response = sender
        .send_request(
            request
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn the_gateway_answers_the_printed_curl_request_with_the_admin_key() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (child, [_, _, _, gateway]) = coffer_up_all(&data_dir);
    let key = std::fs::read_to_string(data_dir.join("admin-api-key")).unwrap();
    let path = "/v1/tenants/default/credentials";
    let (status, headers, json) = rest(gateway, path, Some(key.trim())).await;
    assert_eq!(status, 200, "{json}");
    assert!(json["credentials"].is_array(), "{json}");
    assert_eq!(
        headers
            .get("x-content-type-options")
            .and_then(|v| v.to_str().ok()),
        Some("nosniff")
    );
    let (status, headers, json) = rest(gateway, path, None).await;
    assert_eq!(status, 401, "{json}");
    assert_eq!(json["error"]["status"], "UNAUTHENTICATED", "{json}");
    assert_eq!(
        headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let (status, _, json) = rest(gateway, "/v1/rootKey:rotate", Some(key.trim())).await;
    assert_eq!(status, 404, "an operator-only RPC is not routed: {json}");
    terminate(child, &data_dir);
}

#[test]
fn a_cors_origin_that_is_not_an_origin_stops_coffer_up_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args([
            "up",
            "--gateway-cors-origin",
            "https://app.example/path",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--gateway-cors-origin"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "nothing was created");
}
