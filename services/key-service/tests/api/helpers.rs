//! `spawn_app` and typed helpers around a running key-service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use coffer_crypto::RootKeyring;
use coffer_key_service::{Config, serve};
use coffer_proto::pb;
use coffer_proto::pb::key_service_client::KeyServiceClient;
use coffer_server::{Clock, Ended, Service};
pub use coffer_test_support::assert_status;
use coffer_test_support::{TestDatabase, connect, init_tracing};
use coffer_transport::DevCa;
use coffer_transport::dev_ca::Usage;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// The trust domain of the test CA (the default policy's).
pub const TRUST_DOMAIN: &str = "coffer.local";
/// The operator identity the default client uses.
pub const OPERATOR: &str = "operator/test";

pub type Client = KeyServiceClient<Channel>;

/// A running key-service and what a test needs to talk to it.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The Prometheus `/metrics` endpoint.
    pub metrics_addr: SocketAddr,
    pub ca: Arc<DevCa>,
    pub clock: Clock,
    /// Shared with the replicas started by [`TestApp::replica`].
    pub database: Arc<TestDatabase>,
    client: Client,
    service: Service<coffer_key_service::Error>,
}

/// What a test may change about the server it spawns.
pub struct Options {
    pub keyring: RootKeyring,
    pub ca: Arc<DevCa>,
    pub clock: Clock,
    /// `DATABASE_SCHEMA`; `None` is the service's own.
    pub schema: Option<String>,
    /// `RECORD_CACHE_TTL`; `None` is the default (one second).
    pub record_cache_ttl: Option<Duration>,
    /// `AUTH_SERVICE_URL`, which also makes the gateway a forwarder; `None`: no forwarders.
    pub auth_service: Option<String>,
}

impl Options {
    pub fn new() -> Self {
        Self {
            keyring: RootKeyring::generate().unwrap(),
            ca: Arc::new(DevCa::generate(TRUST_DOMAIN).unwrap()),
            clock: Clock::manual(),
            schema: None,
            record_cache_ttl: None,
            auth_service: None,
        }
    }
}

/// Spawns a key-service on a fresh port with a fresh keyring, CA and manual clock.
pub async fn spawn_app(database: TestDatabase) -> TestApp {
    spawn_with(database, Options::new()).await.unwrap()
}

/// A server that refused to start: why, and its database back for a retry.
pub struct Refused {
    pub error: coffer_key_service::Error,
    pub database: TestDatabase,
}

impl std::fmt::Debug for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused to start: {:?}", self.error)
    }
}

/// Spawns a key-service with the given options; fails if the server refuses to start.
pub async fn spawn_with(database: TestDatabase, options: Options) -> Result<TestApp, Refused> {
    match start(database.url().to_owned(), options).await {
        Ok(parts) => Ok(parts(Arc::new(database))),
        Err(error) => Err(Refused { error, database }),
    }
}

async fn start(
    url: String,
    options: Options,
) -> Result<impl FnOnce(Arc<TestDatabase>) -> TestApp, coffer_key_service::Error> {
    init_tracing();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = options
        .ca
        .issue_material("key-service", Usage::Service)
        .unwrap();
    let mut config = Config::new(SecretString::from(url), options.keyring, tls);
    config.clock = options.clock.clone();
    config.database.schema = options.schema.clone();
    if let Some(ttl) = options.record_cache_ttl {
        config.record_cache_ttl = ttl;
    }
    if let Some(url) = options.auth_service.clone() {
        config.verify_bearers_at(url);
    }
    let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics.local_addr().unwrap();
    let listeners = coffer_server::Listeners::new(listener, Some(metrics));
    // Resolves after start-up (migrations, root key checks), or with the start-up error.
    let service = match Service::spawn(listeners, |listeners, stopped| {
        serve(config, listeners, stopped)
    })
    .await
    {
        Ok(service) => service,
        Err(Ended::Failed(error)) => return Err(error),
        Err(_) => panic!("the key-service ended during start-up"),
    };
    let material = options.ca.issue_material(OPERATOR, Usage::Client).unwrap();
    let client = KeyServiceClient::new(
        connect(addr, material.client_config("127.0.0.1"))
            .await
            .unwrap(),
    );
    Ok(move |database| TestApp {
        addr,
        metrics_addr,
        ca: options.ca,
        clock: options.clock,
        database,
        client,
        service,
    })
}

impl TestApp {
    /// A client authenticated as the test operator (allowed everything).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// A client whose certificate carries `spiffe://coffer.local/{name}`.
    pub async fn client_as(&self, name: &str) -> Client {
        let material = self.ca.issue_material(name, Usage::Client).unwrap();
        KeyServiceClient::new(
            connect(self.addr, material.client_config("127.0.0.1"))
                .await
                .unwrap(),
        )
    }

    /// Stops the server gracefully and hands back the database and CA for a restart.
    pub async fn stop(mut self) -> (TestDatabase, Arc<DevCa>, Clock) {
        self.shutdown().await;
        let database = Arc::try_unwrap(self.database)
            .ok()
            .expect("stop the replicas first");
        (database, self.ca, self.clock)
    }

    /// Another key-service on this one's database, with `keyring` (the same root keys) and
    /// the same CA: a replica.
    pub async fn replica(
        &self,
        keyring: RootKeyring,
        record_cache_ttl: Option<Duration>,
    ) -> TestApp {
        let options = Options {
            keyring,
            ca: Arc::clone(&self.ca),
            clock: self.clock.clone(),
            schema: None,
            record_cache_ttl,
            auth_service: None,
        };
        let parts = start(self.database.url().to_owned(), options)
            .await
            .unwrap();
        parts(Arc::clone(&self.database))
    }

    /// Signals shutdown and waits for the server to finish.
    pub async fn shutdown(&mut self) {
        self.service.stop().await.unwrap();
    }

    /// Sends the shutdown signal without waiting.
    pub fn signal_shutdown(&mut self) -> JoinHandle<coffer_key_service::Result<()>> {
        self.service.signal_shutdown()
    }

    pub async fn create_key(&self, name: &str) -> pb::Key {
        self.client()
            .create_key(create_key_request(name, false))
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn encrypt(&self, name: &str, plaintext: &[u8], context: &[(&str, &str)]) -> Vec<u8> {
        self.client()
            .encrypt(pb::EncryptRequest {
                name: name.into(),
                plaintext: plaintext.to_vec(),
                encryption_context: context_map(context),
                key_version: None,
            })
            .await
            .unwrap()
            .into_inner()
            .ciphertext
    }

    pub async fn decrypt(
        &self,
        name: &str,
        ciphertext: &[u8],
        context: &[(&str, &str)],
    ) -> Result<pb::DecryptResponse, tonic::Status> {
        self.client()
            .decrypt(pb::DecryptRequest {
                name: name.into(),
                input: Some(pb::decrypt_request::Input::Ciphertext(ciphertext.to_vec())),
                encryption_context: context_map(context),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn rotate(&self, name: &str) -> pb::Key {
        self.client()
            .rotate_key(pb::RotateKeyRequest { name: name.into() })
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn update_policy(
        &self,
        name: &str,
        min_decryption_version: Option<u32>,
        min_encryption_version: Option<u32>,
        deletion_allowed: Option<bool>,
    ) -> Result<pb::Key, tonic::Status> {
        self.client()
            .update_key_policy(pb::UpdateKeyPolicyRequest {
                name: name.into(),
                min_decryption_version,
                min_encryption_version,
                deletion_allowed,
                update_mask: None,
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// A raw connection to the service's database, for checks behind the API.
    pub async fn raw_database(&self) -> sqlx::AnyConnection {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        sqlx::AnyConnection::connect(&self.database.url_in("coffer_key"))
            .await
            .unwrap()
    }
}

pub fn context_map(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// CreateKey for the full name `tenants/{t}/keys/{k}`.
pub fn create_key_request(name: &str, deletion_allowed: bool) -> pb::CreateKeyRequest {
    let (parent, key_id) = name
        .split_once("/keys/")
        .expect("a tenants/{t}/keys/{k} name");
    pb::CreateKeyRequest {
        parent: parent.into(),
        key_id: key_id.into(),
        key: Some(pb::Key {
            deletion_allowed,
            ..Default::default()
        }),
    }
}
