//! The composition root: the three services wired together in one process. `coffer up`,
//! `coffer bench` and every test that needs more than one service start the stack here, so
//! the wiring (who calls whom, with which certificate, in which order) is written once.
//!
//! ```no_run
//! # async fn run(keyring: coffer_crypto::RootKeyring, tls: coffer_stack::Certificates) -> Result<(), coffer_stack::Error> {
//! use secrecy::SecretString;
//! let stack = coffer_stack::Stack::builder(keyring, tls)
//!     .databases(coffer_stack::Databases::sqlite_in("/tmp/coffer"))
//!     .spawn()
//!     .await?;
//! println!("credential-service on {}", stack.credential_service.addr);
//! stack.shutdown().await
//! # }
//! ```
//!
//! Start order is key-service, auth-service (which stores its signing keys through
//! key-service), credential-service (which needs both); shutdown runs in reverse, each service
//! draining its in-flight calls for at most the grace period.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use coffer_crypto::RootKeyring;
use coffer_server::Listeners;
use coffer_transport::TlsMaterial;
use secrecy::SecretString;
use tokio::net::TcpListener;

pub use coffer_server::{Ended, Service};

/// Why the stack did not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An address could not be bound.
    #[error("cannot bind {0}")]
    Bind(SocketAddr, #[source] std::io::Error),
    /// key-service failed.
    #[error("key-service failed")]
    KeyService(#[source] coffer_key_service::Error),
    /// auth-service failed.
    #[error("auth-service failed")]
    AuthService(#[source] coffer_auth_service::Error),
    /// credential-service failed.
    #[error("credential-service failed")]
    CredentialService(#[source] coffer_credential_service::Error),
    /// A service stopped on its own.
    #[error("{0} stopped unexpectedly")]
    Stopped(&'static str),
    /// A service task panicked or was cancelled.
    #[error("{0} task failed")]
    Task(&'static str),
    /// A service outlasted the shutdown grace period.
    #[error("{0} did not drain within the grace period")]
    Grace(&'static str),
}

/// Each service's server certificate (also its client identity towards the others).
pub struct Certificates {
    /// `spiffe://{td}/key-service`.
    pub key_service: TlsMaterial,
    /// `spiffe://{td}/auth-service`.
    pub auth_service: TlsMaterial,
    /// `spiffe://{td}/credential-service`.
    pub credential_service: TlsMaterial,
}

impl Certificates {
    /// The three services' certificates, issued by `ca` (tests and dev tools; production
    /// loads each service's files).
    ///
    /// # Errors
    /// If a certificate cannot be issued.
    pub fn issue(ca: &coffer_transport::DevCa) -> coffer_transport::Result<Self> {
        use coffer_transport::dev_ca::Usage;
        Ok(Self {
            key_service: ca.issue_material("key-service", Usage::Service)?,
            auth_service: ca.issue_material("auth-service", Usage::Service)?,
            credential_service: ca.issue_material("credential-service", Usage::Service)?,
        })
    }
}

/// Each service's database URL.
pub struct Databases {
    /// key-service's.
    pub key_service: SecretString,
    /// auth-service's.
    pub auth_service: SecretString,
    /// credential-service's.
    pub credential_service: SecretString,
}

impl Databases {
    /// One SQLite file per service, created if missing.
    pub fn sqlite_files(
        key_service: &Path,
        auth_service: &Path,
        credential_service: &Path,
    ) -> Self {
        let url = |file: &Path| SecretString::from(format!("sqlite://{}?mode=rwc", file.display()));
        Self {
            key_service: url(key_service),
            auth_service: url(auth_service),
            credential_service: url(credential_service),
        }
    }

    /// One SQLite file per service in `dir` (`key-service.db`, `auth-service.db`,
    /// `credential-service.db`), created if missing.
    pub fn sqlite_in(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        Self::sqlite_files(
            &dir.join("key-service.db"),
            &dir.join("auth-service.db"),
            &dir.join("credential-service.db"),
        )
    }
}

/// Where each service listens (`127.0.0.1:0` picks a free port) and serves `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    /// key-service's gRPC address.
    pub key_service: SocketAddr,
    /// auth-service's gRPC address.
    pub auth_service: SocketAddr,
    /// credential-service's gRPC address.
    pub credential_service: SocketAddr,
    /// Whether each service also serves `/metrics` on a free loopback port.
    pub metrics: bool,
}

impl Default for Addresses {
    fn default() -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            key_service: any,
            auth_service: any,
            credential_service: any,
            metrics: false,
        }
    }
}

type Tweak<C> = Box<dyn FnOnce(&mut C) + Send>;

/// Configures a stack; [`Builder::spawn`] starts it.
pub struct Builder {
    keyring: RootKeyring,
    certificates: Certificates,
    databases: Option<Databases>,
    addresses: Addresses,
    grace: Duration,
    key_service: Option<Tweak<coffer_key_service::Config>>,
    auth_service: Option<Tweak<coffer_auth_service::Config>>,
    credential_service: Option<Tweak<coffer_credential_service::Config>>,
}

/// The running stack.
pub struct Stack {
    /// key-service.
    pub key_service: Service<coffer_key_service::Error>,
    /// auth-service.
    pub auth_service: Service<coffer_auth_service::Error>,
    /// credential-service.
    pub credential_service: Service<coffer_credential_service::Error>,
    grace: Duration,
    /// How credential-service was configured, for [`Stack::restart_credential_service`].
    credential: CredentialRecipe,
}

/// What credential-service was started with (besides a test's tweak).
struct CredentialRecipe {
    database: SecretString,
    tls: TlsMaterial,
    metrics: bool,
}

impl Stack {
    /// A builder for a stack of these certificates and root keyring, on in-memory SQLite
    /// databases and free loopback ports unless configured otherwise.
    pub fn builder(keyring: RootKeyring, certificates: Certificates) -> Builder {
        Builder {
            keyring,
            certificates,
            databases: None,
            addresses: Addresses::default(),
            grace: coffer_server::config::DEFAULT_SHUTDOWN_GRACE_PERIOD,
            key_service: None,
            auth_service: None,
            credential_service: None,
        }
    }

    /// Stops the services in reverse start order (credential-service, auth-service,
    /// key-service), each draining for at most the grace period.
    ///
    /// # Errors
    /// The first failure.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        let grace = self.grace;
        let credential = self
            .credential_service
            .stop_within(grace)
            .await
            .map_err(|e| ended(e, Error::CredentialService, "credential-service"));
        let auth = self
            .auth_service
            .stop_within(grace)
            .await
            .map_err(|e| ended(e, Error::AuthService, "auth-service"));
        let key = self
            .key_service
            .stop_within(grace)
            .await
            .map_err(|e| ended(e, Error::KeyService, "key-service"));
        credential.and(auth).and(key)
    }

    /// Stops credential-service and starts it again on the same database, certificate and
    /// upstreams (a fresh process, as far as its caches are concerned), with `tweak` applied to
    /// its configuration; it gets a new address.
    ///
    /// # Errors
    /// How the old one ended, or the new one's start-up failure.
    pub async fn restart_credential_service(
        &mut self,
        tweak: impl FnOnce(&mut coffer_credential_service::Config),
    ) -> Result<(), Error> {
        self.credential_service
            .stop_within(self.grace)
            .await
            .map_err(|e| ended(e, Error::CredentialService, "credential-service"))?;
        self.credential_service = self.credential_replica(tweak).await?;
        Ok(())
    }

    /// Starts another credential-service on the same database, certificate and upstreams (a
    /// second replica), with `tweak` applied to its configuration, on a new address.
    ///
    /// # Errors
    /// Its start-up failure.
    pub async fn credential_replica(
        &self,
        tweak: impl FnOnce(&mut coffer_credential_service::Config),
    ) -> Result<Service<coffer_credential_service::Error>, Error> {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let listeners = bind(loopback, self.credential.metrics).await?;
        let mut config = credential_config(
            &self.credential,
            self.key_service.addr,
            self.auth_service.addr,
            self.grace,
        );
        tweak(&mut config);
        Service::spawn(listeners, |listeners, stopped| {
            coffer_credential_service::serve(config, listeners, stopped)
        })
        .await
        .map_err(|e| ended(e, Error::CredentialService, "credential-service"))
    }

    /// Waits until a service stops on its own (always a failure) and says which and why.
    pub async fn failed(&mut self) -> Error {
        tokio::select! {
            outcome = self.key_service.stopped() => ended(outcome, Error::KeyService, "key-service"),
            outcome = self.auth_service.stopped() => ended(outcome, Error::AuthService, "auth-service"),
            outcome = self.credential_service.stopped() => {
                ended(outcome, Error::CredentialService, "credential-service")
            }
        }
    }
}

impl Builder {
    /// Each service's database (default: each on its own in-memory SQLite database).
    pub fn databases(mut self, databases: Databases) -> Self {
        self.databases = Some(databases);
        self
    }

    /// Where the services listen.
    pub fn addresses(mut self, addresses: Addresses) -> Self {
        self.addresses = addresses;
        self
    }

    /// How long each service may drain on shutdown (default 30 s).
    pub fn shutdown_grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Changes key-service's configuration before it starts.
    pub fn key_service(
        mut self,
        tweak: impl FnOnce(&mut coffer_key_service::Config) + Send + 'static,
    ) -> Self {
        self.key_service = Some(Box::new(tweak));
        self
    }

    /// Changes auth-service's configuration before it starts (its key-service URL is set).
    pub fn auth_service(
        mut self,
        tweak: impl FnOnce(&mut coffer_auth_service::Config) + Send + 'static,
    ) -> Self {
        self.auth_service = Some(Box::new(tweak));
        self
    }

    /// Changes credential-service's configuration before it starts (its upstream URLs are
    /// set).
    pub fn credential_service(
        mut self,
        tweak: impl FnOnce(&mut coffer_credential_service::Config) + Send + 'static,
    ) -> Self {
        self.credential_service = Some(Box::new(tweak));
        self
    }

    /// Binds every address and starts the services in dependency order; resolves once each
    /// has finished its start-up (it accepts connections only after that).
    ///
    /// # Errors
    /// [`Error::Bind`], or the start-up failure of the first service that failed.
    pub async fn spawn(self) -> Result<Stack, Error> {
        let databases = self.databases.unwrap_or_else(|| Databases {
            key_service: SecretString::from("sqlite::memory:"),
            auth_service: SecretString::from("sqlite::memory:"),
            credential_service: SecretString::from("sqlite::memory:"),
        });
        let addresses = self.addresses;

        let key_listeners = bind(addresses.key_service, addresses.metrics).await?;
        let key_addr = local(&key_listeners)?;
        // Bound before key-service starts, so key-service knows where to verify the bearers
        // the gateway forwards (it connects on first use, once auth-service is up).
        let auth_listeners = bind(addresses.auth_service, addresses.metrics).await?;
        let auth_addr = local(&auth_listeners)?;
        let mut key_config = coffer_key_service::Config::new(
            databases.key_service,
            self.keyring,
            self.certificates.key_service,
        );
        key_config.server.shutdown_grace_period = self.grace;
        key_config.verify_bearers_at(format!("https://{auth_addr}"));
        if let Some(tweak) = self.key_service {
            tweak(&mut key_config);
        }
        let key_service = Service::spawn(key_listeners, |listeners, stopped| {
            coffer_key_service::serve(key_config, listeners, stopped)
        })
        .await
        .map_err(|e| ended(e, Error::KeyService, "key-service"))?;

        let mut auth_config = coffer_auth_service::Config::new(
            databases.auth_service,
            self.certificates.auth_service,
            format!("https://{key_addr}"),
        );
        auth_config.server.shutdown_grace_period = self.grace;
        if let Some(tweak) = self.auth_service {
            tweak(&mut auth_config);
        }
        let auth_service = Service::spawn(auth_listeners, |listeners, stopped| {
            coffer_auth_service::serve(auth_config, listeners, stopped)
        })
        .await
        .map_err(|e| ended(e, Error::AuthService, "auth-service"))?;

        let credential_listeners = bind(addresses.credential_service, addresses.metrics).await?;
        let recipe = CredentialRecipe {
            database: databases.credential_service,
            tls: self.certificates.credential_service,
            metrics: addresses.metrics,
        };
        let mut credential_config = credential_config(&recipe, key_addr, auth_addr, self.grace);
        if let Some(tweak) = self.credential_service {
            tweak(&mut credential_config);
        }
        let credential_service = Service::spawn(credential_listeners, |listeners, stopped| {
            coffer_credential_service::serve(credential_config, listeners, stopped)
        })
        .await
        .map_err(|e| ended(e, Error::CredentialService, "credential-service"))?;

        Ok(Stack {
            key_service,
            auth_service,
            credential_service,
            grace: self.grace,
            credential: recipe,
        })
    }
}

fn credential_config(
    recipe: &CredentialRecipe,
    key_service: SocketAddr,
    auth_service: SocketAddr,
    grace: Duration,
) -> coffer_credential_service::Config {
    let mut config = coffer_credential_service::Config::new(
        recipe.database.clone(),
        recipe.tls.clone(),
        format!("https://{key_service}"),
        format!("https://{auth_service}"),
    );
    config.server.shutdown_grace_period = grace;
    config
}

async fn bind(addr: SocketAddr, metrics: bool) -> Result<Listeners, Error> {
    let grpc = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Bind(addr, e))?;
    let metrics = if metrics {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        Some(
            TcpListener::bind(loopback)
                .await
                .map_err(|e| Error::Bind(loopback, e))?,
        )
    } else {
        None
    };
    Ok(Listeners::new(grpc, metrics))
}

fn local(listeners: &Listeners) -> Result<SocketAddr, Error> {
    let unspecified = SocketAddr::from(([127, 0, 0, 1], 0));
    listeners
        .grpc
        .local_addr()
        .map_err(|e| Error::Bind(unspecified, e))
}

/// The stack error for the service `name` that ended as `how`, `failed` wrapping its own error.
fn ended<E>(how: Ended<E>, failed: impl FnOnce(E) -> Error, name: &'static str) -> Error {
    match how {
        Ended::Failed(error) => failed(error),
        Ended::Stopped => Error::Stopped(name),
        Ended::Task => Error::Task(name),
        Ended::Grace => Error::Grace(name),
    }
}
