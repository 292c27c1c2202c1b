//! The peer a user would pick instead: OpenBao's transit engine, on a `bao server -dev`
//! started for the run (over HTTP and over TLS with `-dev-tls`), driven by the same harness.
//!
//! OpenBao's dev mode keeps everything in memory; Coffer persists every key to its database.
//! Its API is HTTP/1.1 with keep-alive, so each worker has its own connection (as `wrk` does).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use bytes::Bytes;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use super::measure::{Caller, Row, Step};
use super::{crypto, http};

/// How long `bao server -dev` may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What the output says about the peer, wherever it appears.
pub const NOTE: &str = "OpenBao runs `bao server -dev`, which keeps every key in memory; \
                        Coffer persists every key and version to its database.";

/// A running `bao server -dev`, killed on drop (its certificates removed with it).
pub struct Bao {
    process: tokio::process::Child,
    /// `OpenBao (HTTP)` or `OpenBao (TLS)`.
    pub group: &'static str,
    addr: SocketAddr,
    tls: Option<Arc<tokio_rustls::TlsConnector>>,
    token: Arc<str>,
    cert_dir: Option<PathBuf>,
}

/// The `bao` binary: `explicit`, else `.venv/bin/bao` (where `scripts/test` installs it),
/// else `bao` on `PATH`.
pub fn find(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_owned());
    }
    let venv = PathBuf::from(".venv/bin/bao");
    if venv.is_file() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("bao"))
            .find(|path| path.is_file())
    })
}

impl Bao {
    /// Starts `bao server -dev` (with `-dev-tls` if `tls`) on a free loopback port, mounts
    /// transit and creates an `aes256-gcm96` key.
    ///
    /// # Errors
    /// If it does not start or answer in time.
    pub async fn start(bao: &Path, tls: bool) -> anyhow::Result<Self> {
        let addr = free_port()?;
        let token: Arc<str> = random_token()?.into();
        let mut command = tokio::process::Command::new(bao);
        command
            .args(["server", "-dev", "-dev-no-store-token"])
            .arg(format!("-dev-listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // The root token through the environment, not argv.
            .env("BAO_DEV_ROOT_TOKEN_ID", &*token)
            .kill_on_drop(true);
        let cert_dir = if tls {
            let dir = std::env::temp_dir().join(format!("coffer-bench-bao-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            command
                .arg("-dev-tls")
                .arg(format!("-dev-tls-cert-dir={}", dir.display()));
            Some(dir)
        } else {
            None
        };
        let process = command
            .spawn()
            .with_context(|| format!("starting {}", bao.display()))?;
        let mut bao = Self {
            process,
            group: if tls {
                "OpenBao (TLS)"
            } else {
                "OpenBao (HTTP)"
            },
            addr,
            tls: None,
            token,
            cert_dir,
        };
        let started = tokio::time::Instant::now();
        loop {
            if let Some(dir) = &bao.cert_dir
                && bao.tls.is_none()
            {
                bao.tls = connector(&dir.join("vault-ca.pem")).ok().map(Arc::new);
            }
            if (bao.cert_dir.is_none() || bao.tls.is_some())
                && let Ok(mut connection) = bao.connect().await
                && bao
                    .call(&mut connection, "GET", "/v1/sys/health", None)
                    .await
                    .is_ok()
            {
                bao.call(
                    &mut connection,
                    "POST",
                    "/v1/sys/mounts/transit",
                    Some(r#"{"type":"transit"}"#.into()),
                )
                .await?;
                bao.call(
                    &mut connection,
                    "POST",
                    "/v1/transit/keys/bench",
                    Some(r#"{"type":"aes256-gcm96"}"#.into()),
                )
                .await?;
                return Ok(bao);
            }
            if let Some(status) = bao.process.try_wait()? {
                anyhow::bail!("{} exited at start: {status}", bao.group);
            }
            anyhow::ensure!(
                started.elapsed() < START_TIMEOUT,
                "{} did not answer within {START_TIMEOUT:?}",
                bao.group
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Encrypt, Decrypt and data-key rows (`payload` bytes), each worker on its own connection.
    ///
    /// # Errors
    /// If the first encryption fails.
    pub async fn rows(self: &Arc<Self>, payload: usize) -> anyhow::Result<Vec<Row>> {
        let plaintext = base64::engine::general_purpose::STANDARD.encode(vec![0x5a; payload]);
        let encrypt = format!(r#"{{"plaintext":"{plaintext}"}}"#);
        let mut connection = self.connect().await?;
        let sealed: serde_json::Value = serde_json::from_slice(
            &self
                .call(
                    &mut connection,
                    "POST",
                    "/v1/transit/encrypt/bench",
                    Some(encrypt.clone()),
                )
                .await?,
        )?;
        let ciphertext = sealed["data"]["ciphertext"]
            .as_str()
            .context("OpenBao's encrypt answer has no ciphertext")?;
        let decrypt = format!(r#"{{"ciphertext":"{ciphertext}"}}"#);
        let size = crypto::size(payload);
        Ok(vec![
            self.row(
                format!("Encrypt {size}"),
                "/v1/transit/encrypt/bench",
                Some(encrypt),
            )
            .crypto(crypto::seal(payload)),
            self.row(
                format!("Decrypt {size}"),
                "/v1/transit/decrypt/bench",
                Some(decrypt),
            )
            .crypto(crypto::open(payload)),
            self.row(
                "GenerateDataKey".into(),
                "/v1/transit/datakey/plaintext/bench",
                None,
            )
            .crypto(crypto::seal(32)),
        ])
    }

    fn row(self: &Arc<Self>, name: String, path: &'static str, body: Option<String>) -> Row {
        let bao = Arc::clone(self);
        Row::new(self.group, name, move |_| {
            let (bao, body) = (Arc::clone(&bao), body.clone());
            async move {
                let connection = Arc::new(tokio::sync::Mutex::new(bao.connect().await?));
                let caller: Caller = Box::new(move || {
                    let (bao, body, connection) =
                        (Arc::clone(&bao), body.clone(), Arc::clone(&connection));
                    Box::pin(async move {
                        let mut connection = connection.lock().await;
                        bao.call(&mut connection, "POST", path, body).await?;
                        Ok(Step::Done)
                    })
                });
                Ok(caller)
            }
        })
    }

    async fn connect(&self) -> anyhow::Result<http::Connection> {
        http::connect(self.addr, self.tls.as_deref()).await
    }

    /// One request; an answer other than 2xx is an error naming the status.
    async fn call(
        &self,
        connection: &mut http::Connection,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<Bytes> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let host = self.addr.to_string();
        let headers = [("host", host.as_str()), ("x-vault-token", &*self.token)];
        let uri = format!("{scheme}://{}{path}", self.addr);
        http::call(connection, self.group, method, &uri, &headers, body).await
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        // The process is killed by `kill_on_drop`.
        if let Some(dir) = self.cert_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A TLS connector trusting only the CA `bao server -dev-tls` wrote.
fn connector(ca: &Path) -> anyhow::Result<tokio_rustls::TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca)? {
        roots.add(certificate?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// A free port on 127.0.0.1 (bound, then released for `bao` to take).
fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// A random root token for the run, so no other local process can use this server.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    coffer_crypto::fill_random(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
