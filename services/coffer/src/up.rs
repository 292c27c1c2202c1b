//! `coffer up`: the whole stack in one process on embedded defaults. Development only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use coffer_auth_service::Config as AuthServiceConfig;
use coffer_credential_service::Config as CredentialServiceConfig;
use coffer_key_service::Config as KeyServiceConfig;
use coffer_transport::TlsMaterial;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::layout::{self, Layout};

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The data directory (created if missing, reused otherwise).
    pub data_dir: PathBuf,
    /// The key-service's listen address (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// The auth-service's listen address.
    pub auth_listen: SocketAddr,
    /// The credential-service's listen address.
    pub credential_listen: SocketAddr,
}

/// A running dev stack.
pub struct Running {
    /// The key-service's address.
    pub key_service_addr: SocketAddr,
    /// The auth-service's address.
    pub auth_service_addr: SocketAddr,
    /// The credential-service's address.
    pub credential_service_addr: SocketAddr,
    /// The data directory's files.
    pub layout: Layout,
    /// Whether this start generated a new dev root key.
    pub generated_root_key: bool,
    /// Stop signals in start order; shutdown runs in reverse, dependents first.
    stops: Vec<(&'static str, watch::Sender<bool>)>,
    services: JoinSet<(&'static str, anyhow::Result<()>)>,
}

/// Prepares the data directory, binds, and starts every service in this process.
///
/// # Errors
/// If the data directory cannot be prepared or an address cannot be bound.
pub async fn start(options: &Options) -> anyhow::Result<Running> {
    let prepared = layout::prepare(&options.data_dir)?;
    let layout = prepared.layout;
    let key_listener = bind(options.listen).await?;
    let auth_listener = bind(options.auth_listen).await?;
    let credential_listener = bind(options.credential_listen).await?;
    let key_service_addr = key_listener.local_addr()?;
    let auth_service_addr = auth_listener.local_addr()?;
    let credential_service_addr = credential_listener.local_addr()?;
    let mut stops = Vec::new();
    let mut services = JoinSet::new();

    let key_config = KeyServiceConfig::new(
        sqlite_url(&layout.key_service_db),
        prepared.keyring,
        TlsMaterial::load(&layout.key_service)?,
    );
    let (stop, stopped) = watch::channel(false);
    stops.push(("key-service", stop));
    services.spawn(async move {
        let served = coffer_key_service::serve(key_config, key_listener, signal(stopped)).await;
        ("key-service", served.map_err(anyhow::Error::from))
    });

    // auth-service stores its signing keys encrypted by the key-service started above.
    let auth_config = AuthServiceConfig::new(
        sqlite_url(&layout.auth_service_db),
        TlsMaterial::load(&layout.auth_service)?,
        format!("https://{key_service_addr}"),
    );
    let (stop, stopped) = watch::channel(false);
    stops.push(("auth-service", stop));
    services.spawn(async move {
        let served = coffer_auth_service::serve(auth_config, auth_listener, signal(stopped)).await;
        ("auth-service", served.map_err(anyhow::Error::from))
    });

    // credential-service gets data keys from key-service and checks bearers with auth-service.
    let credential_config = CredentialServiceConfig::new(
        sqlite_url(&layout.credential_service_db),
        TlsMaterial::load(&layout.credential_service)?,
        format!("https://{key_service_addr}"),
        format!("https://{auth_service_addr}"),
    );
    let (stop, stopped) = watch::channel(false);
    stops.push(("credential-service", stop));
    services.spawn(async move {
        let served = coffer_credential_service::serve(
            credential_config,
            credential_listener,
            signal(stopped),
        )
        .await;
        ("credential-service", served.map_err(anyhow::Error::from))
    });

    Ok(Running {
        key_service_addr,
        auth_service_addr,
        credential_service_addr,
        layout,
        generated_root_key: prepared.generated_root_key,
        stops,
        services,
    })
}

impl Running {
    /// Stops the services in reverse start order, each after the ones that depend on it
    /// (credential-service, then auth-service, then key-service), letting each drain its
    /// in-flight calls.
    ///
    /// # Errors
    /// The first service failure.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let mut outcome = Ok(());
        while let Some((stopping, stop)) = self.stops.pop() {
            let _ = stop.send(true);
            // Wait for that service; another one ending meanwhile is recorded too.
            while let Some(joined) = self.services.join_next().await {
                let (name, served) = joined.context("service task")?;
                if let (Err(error), true) = (served, outcome.is_ok()) {
                    outcome = Err(error.context(format!("{name} failed")));
                }
                if name == stopping {
                    break;
                }
            }
        }
        outcome
    }

    /// Waits until a service stops on its own (which is a failure) and returns why.
    pub async fn failed(&mut self) -> anyhow::Error {
        match self.services.join_next().await {
            Some(Ok((name, Ok(())))) => anyhow::anyhow!("{name} stopped unexpectedly"),
            Some(Ok((name, Err(error)))) => error.context(format!("{name} failed")),
            Some(Err(join_error)) => anyhow::Error::new(join_error).context("service task"),
            None => anyhow::anyhow!("no service is running"),
        }
    }

    /// A `grpcurl` command line that lists a service's RPCs as the operator.
    pub fn grpcurl_command(&self, addr: SocketAddr) -> String {
        format!(
            "grpcurl -cacert {} -cert {} -key {} {addr} list",
            quote(&self.layout.operator.ca),
            quote(&self.layout.operator.cert),
            quote(&self.layout.operator.key),
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

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))
}

fn sqlite_url(path: &Path) -> SecretString {
    SecretString::from(format!("sqlite://{}?mode=rwc", path.display()))
}

/// Resolves when `stopped` turns true (or its sender is gone).
async fn signal(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
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
