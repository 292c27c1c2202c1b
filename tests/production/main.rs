//! The README's production walkthrough, step by step, with the production binaries: `coffer
//! certs init`, a generated keyring, the three services on one PostgreSQL database, `coffer
//! admin bootstrap`, a credential stored and revealed through the CLI, a second replica of each
//! service (a key rotation, an API-key revocation and a signing-key rotation on one replica
//! reach the other within a second), the REST gateway over TLS in front of them (credentials
//! read masked, a key used to encrypt and decrypt with the admin's API key, 401 without one),
//! and SIGTERM (every process exits 0 after draining). No secret reaches any log.
//!
//! The binaries come from the same target directory as this test: `./scripts/test` builds
//! them (`cargo build --bins`) before running the tests.

// The whole crate is test code: helpers fail loudly, like the tests that call them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coffer_proto::pb;
use coffer_proto::pb::auth_service_client::AuthServiceClient;
use coffer_proto::pb::key_service_client::KeyServiceClient;
use coffer_test_support::{Backend, TestDatabase, connect, field};
use coffer_transport::TlsMaterial;
use secrecy::ExposeSecret as _;

/// How long anything in this test may take to happen: start-up, a replica catching up.
const PATIENCE: Duration = Duration::from_secs(30);
/// The bound the README states for changes to reach another replica.
const REPLICA_BOUND: Duration = Duration::from_secs(1);

/// A binary of this workspace, built into the same target directory as this test.
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --bins` first (./scripts/test does)",
        path.display()
    );
    path
}

/// One running service process.
struct Process {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Process {
    /// Starts `binary` with exactly `env` (JSON logs to a file) and waits until its log names
    /// the address it bound.
    fn start(binary_name: &'static str, env: &[(String, String)], log: PathBuf) -> Self {
        let child = Command::new(binary(binary_name))
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // Owned at once, so a failed start is killed on drop.
        let mut process = Self {
            name: binary_name,
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            log,
        };
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&process.log).unwrap_or_default();
            let listen = text.lines().find_map(|line| {
                let line: serde_json::Value = serde_json::from_str(line).ok()?;
                line["message"]
                    .as_str()?
                    .ends_with("starting")
                    .then_some(())?;
                line["listen"].as_str()?.parse::<SocketAddr>().ok()
            });
            if let Some(addr) = listen {
                process.addr = addr;
                return process;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{binary_name} did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `localhost:{port}`: what callers dial (the certificates carry `localhost`).
    fn dial(&self) -> String {
        format!("localhost:{}", self.addr.port())
    }

    fn url(&self) -> String {
        format!("https://{}", self.dial())
    }

    /// SIGTERM, then the exit status must be 0 and the log must say it drained.
    fn terminate(mut self) -> String {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().unwrap();
        let log = std::fs::read_to_string(&self.log).unwrap();
        assert!(
            status.success(),
            "{} exited with {status}:\n{log}",
            self.name
        );
        assert!(
            log.contains("stopped after draining in-flight calls"),
            "{log}"
        );
        log
    }
}

impl Drop for Process {
    /// A test that fails half-way leaves no process behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `coffer ARGS` (with `stdin`), returns stdout; panics on failure.
fn coffer(args: &[&str], api_key: Option<&str>, stdin: &str) -> String {
    coffer_test_support::run_cli(&binary("coffer"), args, api_key, stdin)
}

/// Polls `check` until it holds, for at most `bound`; returns how long it took.
async fn within<F, Fut>(bound: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < bound,
            "{what} took longer than {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The settings of one service as the README's step 5 gives them.
struct Settings {
    certs: PathBuf,
    root_keys: PathBuf,
    database: String,
}

impl Settings {
    fn common(&self, prefix: &str, service: &str) -> Vec<(String, String)> {
        let file = |suffix: &str| {
            self.certs
                .join(format!("{service}{suffix}"))
                .display()
                .to_string()
        };
        vec![
            (format!("{prefix}DATABASE_URL"), self.database.clone()),
            (format!("{prefix}TLS_CERT"), file(".pem")),
            (format!("{prefix}TLS_KEY"), file("-key.pem")),
            (
                format!("{prefix}TLS_CA"),
                self.certs.join("ca.pem").display().to_string(),
            ),
            (format!("{prefix}LOG_FORMAT"), "json".to_owned()),
            (format!("{prefix}LISTEN"), "127.0.0.1:0".to_owned()),
        ]
    }

    fn key_service(&self) -> Vec<(String, String)> {
        let mut env = self.common("COFFER_KEY_SERVICE__", "key-service");
        env.push((
            "COFFER_KEY_SERVICE__ROOT_KEYS_FILE".to_owned(),
            self.root_keys.display().to_string(),
        ));
        env
    }

    fn auth_service(&self, key_service: &Process) -> Vec<(String, String)> {
        let mut env = self.common("COFFER_AUTH_SERVICE__", "auth-service");
        env.push((
            "COFFER_AUTH_SERVICE__KEY_SERVICE_URL".to_owned(),
            key_service.url(),
        ));
        env
    }

    /// The gateway on the services, its public listener on TLS with `public` (cert, key).
    fn gateway(
        &self,
        key: &Process,
        auth: &Process,
        credential: &Process,
        public: (&Path, &Path),
    ) -> Vec<(String, String)> {
        let mut env = self.common("COFFER_GATEWAY__", "gateway");
        env.retain(|(name, _)| name != "COFFER_GATEWAY__DATABASE_URL");
        for (name, value) in [
            ("KEY_SERVICE_URL", key.url()),
            ("AUTH_SERVICE_URL", auth.url()),
            ("CREDENTIAL_SERVICE_URL", credential.url()),
            ("PUBLIC_TLS_CERT", public.0.display().to_string()),
            ("PUBLIC_TLS_KEY", public.1.display().to_string()),
        ] {
            env.push((format!("COFFER_GATEWAY__{name}"), value));
        }
        env
    }

    fn credential_service(&self, key: &Process, auth: &Process) -> Vec<(String, String)> {
        let mut env = self.common("COFFER_CREDENTIAL_SERVICE__", "credential-service");
        env.push((
            "COFFER_CREDENTIAL_SERVICE__KEY_SERVICE_URL".to_owned(),
            key.url(),
        ));
        env.push((
            "COFFER_CREDENTIAL_SERVICE__AUTH_SERVICE_URL".to_owned(),
            auth.url(),
        ));
        env
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_production_walkthrough_on_one_postgres_database() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    let logs = |name: &str| dir.path().join(format!("{name}.log"));

    // 2. Certificates, 3. the root key.
    coffer(
        &[
            "certs",
            "init",
            "--data-dir",
            etc.to_str().unwrap(),
            "--dns",
            "localhost",
        ],
        None,
        "",
    );
    let certs = etc.join("certs");
    let root_keys = etc.join("root-keys");
    let keyring = coffer_crypto::RootKeyring::generate().unwrap().to_text();
    std::fs::write(&root_keys, keyring.expose_secret()).unwrap();
    let settings = Settings {
        certs: certs.clone(),
        root_keys,
        database: database.url().to_owned(),
    };

    // 5. One database, three services, key-service first.
    let key = Process::start("coffer-key-service", &settings.key_service(), logs("key"));
    let auth = Process::start(
        "coffer-auth-service",
        &settings.auth_service(&key),
        logs("auth"),
    );
    let credential = Process::start(
        "coffer-credential-service",
        &settings.credential_service(&key, &auth),
        logs("credential"),
    );

    // 6. The first admin, with the operator certificate alone.
    let operator_tls = coffer::layout::operator_files(&etc);
    let operator_files = [
        "--cert".to_owned(),
        operator_tls.cert.display().to_string(),
        "--key".to_owned(),
        operator_tls.key.display().to_string(),
        "--ca".to_owned(),
        operator_tls.ca.display().to_string(),
    ];
    let with = |args: &[&str], auth: &Process, extra: &[String]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.extend(["--auth-addr".to_owned(), auth.dial()]);
        all.extend(operator_files.iter().cloned());
        all.extend(extra.iter().cloned());
        all
    };
    let run = |args: Vec<String>, api_key: Option<&str>, stdin: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        coffer(&args, api_key, stdin)
    };
    let bootstrap = run(
        with(&["admin", "bootstrap", "--tenant", "acme"], &auth, &[]),
        None,
        "",
    );
    let admin_key = field(
        &bootstrap,
        "API key (shown once; Coffer keeps only its hash):",
    )
    .to_owned();

    // 7. A credential, sealed by the CLI, stored and revealed.
    let token = "ghp_production0walkthrough0token0xyz";
    let cred_at = |credential: &Process| vec!["--credential-addr".to_owned(), credential.dial()];
    let created = run(
        with(
            &[
                "cred",
                "create",
                "--tenant",
                "acme",
                "--server-id",
                "github",
                "--sealed",
                "GITHUB_TOKEN",
            ],
            &auth,
            &cred_at(&credential),
        ),
        Some(&admin_key),
        &format!("{token}\n"),
    );
    let credential_id = field(&created, "name:")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let reveal = |auth: &Process, credential: &Process| {
        run(
            with(
                &["cred", "reveal", "--tenant", "acme", &credential_id],
                auth,
                &cred_at(credential),
            ),
            Some(&admin_key),
            "",
        )
    };
    assert_eq!(
        reveal(&auth, &credential).trim(),
        format!("GITHUB_TOKEN={token}")
    );

    // 8. A second replica of each service, on the same database; this key-service also
    // verifies the bearers the gateway forwards (auth-service is up by now).
    let mut key_2_env = settings.key_service();
    key_2_env.push((
        "COFFER_KEY_SERVICE__AUTH_SERVICE_URL".to_owned(),
        auth.url(),
    ));
    let key_2 = Process::start("coffer-key-service", &key_2_env, logs("key-2"));
    let auth_2 = Process::start(
        "coffer-auth-service",
        &settings.auth_service(&key_2),
        logs("auth-2"),
    );
    let credential_2 = Process::start(
        "coffer-credential-service",
        &settings.credential_service(&key_2, &auth_2),
        logs("credential-2"),
    );
    assert_eq!(
        reveal(&auth_2, &credential_2).trim(),
        format!("GITHUB_TOKEN={token}")
    );

    let operator = TlsMaterial::load(&operator_tls).unwrap();
    let channel = |process: &Process| {
        let addr = process.addr;
        let tls = operator.client_config("localhost");
        async move { connect(addr, tls).await.unwrap() }
    };

    // A key rotation on one key-service is used by the other's next Encrypt.
    let (mut kms_1, kms_2) = (
        KeyServiceClient::new(channel(&key).await),
        KeyServiceClient::new(channel(&key_2).await),
    );
    kms_1
        .create_key(pb::CreateKeyRequest {
            parent: "tenants/acme".into(),
            key_id: "app".into(),
            key: None,
        })
        .await
        .unwrap();
    let rotated = kms_1
        .rotate_key(pb::RotateKeyRequest {
            name: "tenants/acme/keys/app".into(),
        })
        .await
        .unwrap()
        .into_inner();
    within(
        REPLICA_BOUND,
        "a key rotation reaching the other replica",
        || {
            let mut kms_2 = kms_2.clone();
            let primary = rotated.primary_version;
            async move {
                kms_2
                    .encrypt(pb::EncryptRequest {
                        name: "tenants/acme/keys/app".into(),
                        plaintext: b"x".to_vec(),
                        ..Default::default()
                    })
                    .await
                    .is_ok_and(|r| r.into_inner().key_version == primary)
            }
        },
    )
    .await;

    // An API key revoked on one auth-service is refused by the other.
    let made = run(
        with(
            &[
                "apikey",
                "create",
                "--tenant",
                "acme",
                "--display-name",
                "temp",
            ],
            &auth,
            &[],
        ),
        Some(&admin_key),
        "",
    );
    let (temp_name, temp_key) = (
        field(&made, "name:").to_owned(),
        field(&made, "key (shown once, store it now):").to_owned(),
    );
    let directory_2 = AuthServiceClient::new(channel(&auth_2).await);
    let list_with = |key: String| {
        let mut client = directory_2.clone();
        async move {
            client
                .list_api_keys(coffer_test_support::bearer(
                    &key,
                    pb::ListApiKeysRequest {
                        parent: "tenants/acme".into(),
                        ..Default::default()
                    },
                ))
                .await
        }
    };
    assert!(list_with(temp_key.clone()).await.is_ok());
    run(
        with(&["apikey", "revoke", &temp_name], &auth, &[]),
        Some(&admin_key),
        "",
    );
    within(
        REPLICA_BOUND,
        "an API-key revocation reaching the other replica",
        || {
            let listed = list_with(temp_key.clone());
            async move {
                listed
                    .await
                    .is_err_and(|s| s.code() == tonic::Code::Unauthenticated)
            }
        },
    )
    .await;

    // A signing-key rotation on one auth-service is published by the other.
    let mut directory_1 = AuthServiceClient::new(channel(&auth).await);
    let kid = directory_1
        .rotate_signing_key(pb::RotateSigningKeyRequest {})
        .await
        .unwrap()
        .into_inner()
        .kid;
    within(
        REPLICA_BOUND,
        "a signing-key rotation reaching the other replica",
        || {
            let mut client = directory_2.clone();
            let kid = kid.clone();
            async move {
                client
                    .get_jwks(pb::GetJwksRequest {})
                    .await
                    .is_ok_and(|jwks| jwks.into_inner().keys.iter().any(|k| k.kid == kid))
            }
        },
    )
    .await;

    // 10. The REST gateway in front of the second replicas, TLS on its public listener (here
    // with its own service certificate, which names localhost).
    let gateway = Process::start(
        "coffer-gateway",
        &settings.gateway(
            &key_2,
            &auth_2,
            &credential_2,
            (&certs.join("gateway.pem"), &certs.join("gateway-key.pem")),
        ),
        logs("gateway"),
    );
    let ca = certs.join("ca.pem");
    let rest = |method: &'static str, path: String, bearer: Option<String>, body: String| {
        let (addr, ca) = (gateway.addr, ca.clone());
        async move {
            let authorization = bearer.map(|key| format!("Bearer {key}"));
            let headers: Vec<(&str, &str)> = authorization
                .iter()
                .map(|value| ("authorization", value.as_str()))
                .collect();
            coffer_test_support::https(addr, &ca, "localhost", method, &path, &headers, &body).await
        }
    };
    let (status, ready) = rest("GET", "/readyz".into(), None, String::new()).await;
    assert_eq!(status, 200, "{ready}");
    let bearer = Some(admin_key.clone());
    let (status, masked) = rest(
        "GET",
        format!("/v1/tenants/acme/credentials/{credential_id}"),
        bearer.clone(),
        String::new(),
    )
    .await;
    assert_eq!(status, 200, "{masked}");
    assert!(!masked.to_string().contains(token), "{masked}");
    let (status, sealed) = rest(
        "POST",
        "/v1/tenants/acme/keys/app:encrypt".into(),
        bearer.clone(),
        r#"{"plaintext": "aGVsbG8="}"#.into(),
    )
    .await;
    assert_eq!(status, 200, "{sealed}");
    let (status, opened) = rest(
        "POST",
        "/v1/tenants/acme/keys/app:decrypt".into(),
        bearer.clone(),
        serde_json::json!({"ciphertext": sealed["ciphertext"]}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{opened}");
    assert_eq!(opened["plaintext"], "aGVsbG8=");
    let (status, refused) = rest(
        "GET",
        "/v1/tenants/acme/credentials".into(),
        None,
        String::new(),
    )
    .await;
    assert_eq!(status, 401, "{refused}");
    assert_eq!(refused["error"]["status"], "UNAUTHENTICATED");
    // Plain HTTP on the TLS listener gets no HTTP answer.
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut plain = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
        plain
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, plain.read_to_end(&mut answer)).await;
        assert!(
            !answer.starts_with(b"HTTP/1.1 200"),
            "plain HTTP was served"
        );
    }

    // 9. SIGTERM: every process drains and exits 0; no secret in any log.
    let mut all_logs = String::new();
    for process in [gateway, credential_2, credential, auth_2, auth, key_2, key] {
        all_logs.push_str(&process.terminate());
    }
    for secret in [token, &admin_key, &temp_key, keyring.expose_secret().trim()] {
        assert!(!all_logs.contains(secret), "a secret reached the logs");
    }
    for sql in ["SELECT", "INSERT"] {
        assert!(!all_logs.contains(sql), "SQL reached the logs");
    }
}

/// A service whose upstream cannot be reached exits EX_UNAVAILABLE (69) naming the URL and the
/// cause once, so a supervisor restarts it and an operator sees why.
#[test]
fn an_unreachable_upstream_exits_69_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    coffer(
        &["certs", "init", "--data-dir", etc.to_str().unwrap()],
        None,
        "",
    );
    let certs = etc.join("certs");
    let file = |name: &str| certs.join(name).display().to_string();
    let output = Command::new(binary("coffer-auth-service"))
        .env_clear()
        .env(
            "COFFER_AUTH_SERVICE__DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.path().join("auth.db").display()),
        )
        .env("COFFER_AUTH_SERVICE__TLS_CERT", file("auth-service.pem"))
        .env("COFFER_AUTH_SERVICE__TLS_KEY", file("auth-service-key.pem"))
        .env("COFFER_AUTH_SERVICE__TLS_CA", file("ca.pem"))
        // Port 1 on loopback: nothing listens there.
        .env(
            "COFFER_AUTH_SERVICE__KEY_SERVICE_URL",
            "https://localhost:1",
        )
        .env("COFFER_AUTH_SERVICE__LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(69), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("coffer-auth-service: a dependency is unavailable: ")
            && last.contains("cannot connect to https://localhost:1")
            && last.matches("Connection refused").count() == 1,
        "{stderr}"
    );
}
