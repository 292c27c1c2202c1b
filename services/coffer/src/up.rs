//! `coffer up`: the whole stack in one process on embedded defaults. Development only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use coffer_key_service::Config as KeyServiceConfig;
use coffer_transport::TlsMaterial;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::layout::{self, Layout};

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The data directory (created if missing, reused otherwise).
    pub data_dir: PathBuf,
    /// The key-service's listen address (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
}

/// A running dev stack.
pub struct Running {
    /// The key-service's address.
    pub key_service_addr: SocketAddr,
    /// The data directory's files.
    pub layout: Layout,
    /// Whether this start generated a new dev root key.
    pub generated_root_key: bool,
    stop: oneshot::Sender<()>,
    key_service: JoinHandle<coffer_key_service::Result<()>>,
}

/// Prepares the data directory, binds, and starts every service in this process.
///
/// # Errors
/// If the data directory cannot be prepared or the address cannot be bound.
pub async fn start(options: &Options) -> anyhow::Result<Running> {
    let prepared = layout::prepare(&options.data_dir)?;
    let layout = prepared.layout;
    let listener = TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("binding {}", options.listen))?;
    let key_service_addr = listener.local_addr()?;

    let database_url = format!("sqlite://{}?mode=rwc", layout.key_service_db.display());
    let tls = TlsMaterial::load(&layout.key_service)?;
    let config = KeyServiceConfig::new(SecretString::from(database_url), prepared.keyring, tls);
    let (stop, stopped) = oneshot::channel::<()>();
    let key_service = tokio::spawn(coffer_key_service::serve(config, listener, async {
        let _ = stopped.await;
    }));
    Ok(Running {
        key_service_addr,
        layout,
        generated_root_key: prepared.generated_root_key,
        stop,
        key_service,
    })
}

impl Running {
    /// Signals shutdown and waits for in-flight calls to drain.
    ///
    /// # Errors
    /// If a service failed.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.key_service.await.context("key-service task")??;
        Ok(())
    }

    /// Waits until a service stops on its own (which is a failure) .
    ///
    /// # Errors
    /// The service's error.
    pub async fn failed(&mut self) -> anyhow::Error {
        match (&mut self.key_service).await {
            Ok(Ok(())) => anyhow::anyhow!("key-service stopped unexpectedly"),
            Ok(Err(error)) => anyhow::Error::new(error).context("key-service failed"),
            Err(join_error) => anyhow::Error::new(join_error).context("key-service task"),
        }
    }

    /// A `grpcurl` command line that lists the key-service's RPCs as the operator.
    pub fn grpcurl_command(&self) -> String {
        format!(
            "grpcurl -cacert {} -cert {} -key {} {} list",
            quote(&self.layout.operator.ca),
            quote(&self.layout.operator.cert),
            quote(&self.layout.operator.key),
            self.key_service_addr,
        )
    }
}

/// The dev-mode warning, printed on every start.
pub fn dev_mode_warning(running: &Running) -> String {
    let root_key = if running.generated_root_key {
        "coffer up generated a NEW dev root key and stores it"
    } else {
        "coffer up reuses the dev root key stored"
    };
    let lines = [
        "DEV MODE: not for production.",
        root_key,
        "UNPROTECTED in the data directory, beside a dev CA whose",
        "private key is on disk too. Anyone who can read that",
        "directory can decrypt everything and impersonate services.",
        "Production: coffer-key-service with COFFER_ROOT_KEYS.",
    ];
    let width = lines.iter().map(|line| line.len()).max().unwrap_or(0);
    let border = "*".repeat(width + 6);
    let mut banner = format!("\n{border}\n");
    for line in lines {
        banner.push_str(&format!("*  {line:<width$}  *\n"));
    }
    banner.push_str(&format!(
        "{border}\ndata dir: {}\n",
        running.layout.data_dir.display()
    ));
    banner
}

fn quote(path: &Path) -> String {
    let text = path.display().to_string();
    if text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
