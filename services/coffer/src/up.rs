//! `coffer up`: the whole stack in one process on embedded defaults. Development only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use coffer_stack::{Addresses, Certificates, Databases, Stack};
use coffer_transport::TlsMaterial;
use secrecy::SecretString;

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
    /// The REST gateway's listen address (plain HTTP: loopback only, in dev mode).
    pub gateway_listen: SocketAddr,
    /// Browser origins the gateway allows (CORS); denied by default.
    pub gateway_cors: coffer_gateway::server::Cors,
    /// REST requests per client address per minute (0: unlimited).
    pub gateway_rate_limit: u32,
    /// REST requests per API key per minute (0: unlimited).
    pub gateway_key_rate_limit: u32,
    /// MCP servers OAuth tokens may be requested for, beside Coffer's REST API.
    pub oauth_resources: Vec<coffer_auth_service::Resource>,
    /// Tests only: loopback hosts whose client metadata documents may be fetched (see
    /// [`coffer_auth_service::TestAllowance`]); no flag sets it.
    pub oauth_document_allowance: Option<coffer_auth_service::TestAllowance>,
    /// How long each service may drain its in-flight calls on Ctrl-C.
    pub shutdown_grace_period: Duration,
    /// key-service's `RECORD_CACHE_TTL` and credential-service's `ROW_CACHE_TTL`, if not the
    /// default (`coffer bench` compares).
    pub record_cache_ttl: Option<Duration>,
    /// One PostgreSQL database for the three services (each in its own schema) instead of
    /// the SQLite files in the data directory.
    pub database_url: Option<SecretString>,
}

/// A running dev stack.
pub struct Running {
    /// The key-service's address.
    pub key_service_addr: SocketAddr,
    /// The auth-service's address.
    pub auth_service_addr: SocketAddr,
    /// The credential-service's address.
    pub credential_service_addr: SocketAddr,
    /// The REST gateway's address.
    pub gateway_addr: SocketAddr,
    /// The data directory's files.
    pub layout: Layout,
    /// Whether this start generated a new dev root key.
    pub generated_root_key: bool,
    stack: Stack,
    gateway: Gateway,
}

/// The REST gateway's task and the signal that stops it.
struct Gateway {
    stop: tokio::sync::oneshot::Sender<()>,
    /// `None` once [`Running::failed`] has seen it end.
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Prepares the data directory and starts every service in this process (through
/// [`coffer_stack`], as the tests do).
///
/// # Errors
/// If the data directory cannot be prepared, an address cannot be bound, or a service fails
/// to start.
pub async fn start(options: &Options) -> anyhow::Result<Running> {
    anyhow::ensure!(
        options
            .record_cache_ttl
            .is_none_or(|ttl| ttl <= Duration::from_secs(1)),
        "--record-cache-ttl is at most 1s: it is the bound on how long another replica's key \
         change may go unseen"
    );
    // Before anything starts: the dev gateway speaks plain HTTP.
    anyhow::ensure!(
        options.gateway_listen.ip().is_loopback(),
        "--gateway-listen must be a loopback address: the dev gateway speaks plain HTTP"
    );
    let prepared = layout::prepare(&options.data_dir)?;
    let layout = prepared.layout;
    let certificates = Certificates {
        key_service: TlsMaterial::load(&layout.key_service)?,
        auth_service: TlsMaterial::load(&layout.auth_service)?,
        credential_service: TlsMaterial::load(&layout.credential_service)?,
    };
    let databases = match &options.database_url {
        Some(url) => Databases {
            key_service: url.clone(),
            auth_service: url.clone(),
            credential_service: url.clone(),
        },
        None => Databases::sqlite_files(
            &layout.key_service_db,
            &layout.auth_service_db,
            &layout.credential_service_db,
        ),
    };
    let record_cache_ttl = options.record_cache_ttl;
    // The gateway's address first: it is the OAuth issuer, and Coffer's REST API is the
    // resource tokens are for, so every service verifies that issuer and audience.
    let listen = options.gateway_listen;
    let gateway_listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|error| anyhow::anyhow!("cannot listen on {listen} (gateway): {error}"))?;
    let issuer = format!("http://{}", gateway_listener.local_addr()?);
    let (for_auth, for_key, for_credential) = (issuer.clone(), issuer.clone(), issuer.clone());
    let oauth_resources = options.oauth_resources.clone();
    let document_allowance = options.oauth_document_allowance.clone();
    let stack = Stack::builder(prepared.keyring, certificates)
        .databases(databases)
        .key_service(move |config| {
            if let Some(ttl) = record_cache_ttl {
                config.record_cache_ttl = ttl;
            }
            config.authn.issuer.clone_from(&for_key);
            config.authn.audience = for_key;
        })
        .auth_service(move |config| {
            config.tokens.issuer.clone_from(&for_auth);
            config.tokens.audience = for_auth;
            config.oauth.resources = oauth_resources;
            config.oauth.document_test_allowance = document_allowance;
        })
        .credential_service(move |config| {
            if let Some(ttl) = record_cache_ttl {
                config.row_cache_ttl = ttl;
            }
            config.authn.issuer.clone_from(&for_credential);
            config.authn.audience = for_credential;
        })
        .addresses(Addresses {
            key_service: options.listen,
            auth_service: options.auth_listen,
            credential_service: options.credential_listen,
            metrics: false,
        })
        .shutdown_grace_period(options.shutdown_grace_period)
        .spawn()
        .await?;
    let issuer = coffer_gateway::oauth::Issuer::parse(&issuer).map_err(anyhow::Error::msg)?;
    let (gateway, gateway_addr) =
        start_gateway(options, gateway_listener, issuer, &layout, &stack)?;
    Ok(Running {
        key_service_addr: stack.key_service.addr,
        auth_service_addr: stack.auth_service.addr,
        credential_service_addr: stack.credential_service.addr,
        gateway_addr,
        layout,
        generated_root_key: prepared.generated_root_key,
        stack,
        gateway,
    })
}

/// Starts the REST gateway on `listen` in front of `stack`, calling each service with the
/// gateway's certificate. The connections are lazy: a service that is down makes its routes
/// answer 503, and the gateway stays up.
fn start_gateway(
    options: &Options,
    listener: tokio::net::TcpListener,
    issuer: coffer_gateway::oauth::Issuer,
    layout: &Layout,
    stack: &Stack,
) -> anyhow::Result<(Gateway, SocketAddr)> {
    let tls = TlsMaterial::load(&layout.gateway)?;
    let trust_domain = coffer_server::upstream::trust_domain(Some(&tls));
    let mut upstreams = std::collections::HashMap::new();
    for (service, name, addr) in [
        (
            "coffer.v1.KeyService",
            "key-service",
            stack.key_service.addr,
        ),
        (
            "coffer.v1.AuthService",
            "auth-service",
            stack.auth_service.addr,
        ),
        (
            "coffer.v1.CredentialService",
            "credential-service",
            stack.credential_service.addr,
        ),
    ] {
        // Each service must present its own SPIFFE ID, not merely a certificate of the CA.
        let upstream = coffer_server::upstream::at(format!("https://{addr}"), name, &trust_domain)
            .map_err(|why| anyhow::anyhow!("{name} at {addr}: {why}"))?;
        upstreams.insert(service.to_owned(), upstream.connect_lazy(&tls)?);
    }
    let routes = coffer_gateway::routes::Routes::coffer(coffer_gateway::routes::public)?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let gateway = coffer_gateway::server::Gateway::new(routes, upstreams)
        .cors(options.gateway_cors.clone())
        .rate_limit(options.gateway_rate_limit)
        .key_rate_limit(options.gateway_key_rate_limit)
        .issuer(issuer);
    let task = tokio::spawn(gateway.serve(listener, async {
        let _ = stopped.await;
    }));
    Ok((
        Gateway {
            stop,
            task: Some(task),
        },
        addr,
    ))
}

impl Running {
    /// Stops the services in reverse start order (credential-service, then auth-service, then
    /// key-service), each draining its in-flight calls for at most the grace period.
    ///
    /// # Errors
    /// The first service failure.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        // The gateway first: no new REST call reaches a service that is draining.
        let _ = self.gateway.stop.send(());
        let gateway = match self.gateway.task {
            Some(task) => Some(task.await),
            None => None,
        };
        let stack = self.stack.shutdown().await;
        match gateway {
            Some(Ok(Err(error))) => return Err(anyhow::anyhow!("the gateway failed: {error}")),
            Some(Err(error)) => return Err(anyhow::anyhow!("the gateway task failed: {error}")),
            Some(Ok(Ok(()))) | None => {}
        }
        Ok(stack?)
    }

    /// Waits until a service or the gateway stops on its own (which is a failure) and returns
    /// why.
    pub async fn failed(&mut self) -> anyhow::Error {
        let Some(task) = self.gateway.task.as_mut() else {
            return self.stack.failed().await.into();
        };
        let ended = tokio::select! {
            error = self.stack.failed() => return error.into(),
            ended = task => ended,
        };
        self.gateway.task = None;
        match ended {
            Ok(Ok(())) => anyhow::anyhow!("the gateway stopped unexpectedly"),
            Ok(Err(error)) => anyhow::anyhow!("the gateway failed: {error}"),
            Err(error) => anyhow::anyhow!("the gateway task failed: {error}"),
        }
    }

    /// A `curl` command line that lists the bootstrap tenant's credentials over REST, with the
    /// admin API key read from its file.
    pub fn curl_command(&self) -> String {
        format!(
            "curl -H \"Authorization: Bearer $(cat {})\" http://{}/v1/tenants/{}/credentials",
            quote(&crate::admin::admin_key_file(&self.layout.data_dir)),
            self.gateway_addr,
            layout::BOOTSTRAP_TENANT,
        )
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
