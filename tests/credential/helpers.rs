//! The three services wired together, users with roles, and a credential client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use coffer_crypto::RootKeyring;
use coffer_proto::pb;
use coffer_proto::pb::auth_service_client::AuthServiceClient;
use coffer_proto::pb::credential_service_client::CredentialServiceClient;
use coffer_test_support::{Backend, TestDatabase, connect, init_tracing};
use coffer_transport::DevCa;
use coffer_transport::dev_ca::Usage;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub type Client = CredentialServiceClient<Channel>;

const PASSWORD: &str = "correct horse battery";

/// A spawned server: its address and how to stop it.
pub struct Running<E> {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), E>>>,
}

impl<E: std::fmt::Debug> Running<E> {
    /// Sends the shutdown signal without waiting for the drain.
    pub fn signal_shutdown(&mut self) -> JoinHandle<Result<(), E>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().unwrap()
    }

    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

async fn spawn<E, F, Fut>(serve: F) -> Running<E>
where
    F: FnOnce(TcpListener, oneshot::Receiver<()>) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(serve(listener, stopped));
    Running {
        addr,
        stop: Some(stop),
        task: Some(task),
    }
}

/// key-service + auth-service + credential-service, tenants `acme` and `globex`, and tokens
/// for an org_admin, a developer and a viewer of acme and an org_admin of globex.
pub struct Stack {
    pub ca: Arc<DevCa>,
    pub key_service: Running<coffer_key_service::Error>,
    pub auth_service: Running<coffer_auth_service::Error>,
    pub credential_service: Running<coffer_credential_service::Error>,
    /// The credential-service's Prometheus endpoint.
    pub metrics_addr: SocketAddr,
    pub database: TestDatabase,
    _support: (TestDatabase, TestDatabase),
    pub tokens: HashMap<&'static str, String>,
}

impl Stack {
    pub async fn spawn(database: TestDatabase) -> Self {
        init_tracing();
        let ca = Arc::new(DevCa::generate("coffer.local").unwrap());
        let key_db = TestDatabase::create(Backend::Sqlite).await.unwrap();
        let auth_db = TestDatabase::create(Backend::Sqlite).await.unwrap();
        let key_config = coffer_key_service::Config::new(
            SecretString::from(key_db.url().to_owned()),
            RootKeyring::generate().unwrap(),
            ca.issue_material("key-service", Usage::Service).unwrap(),
        );
        let key_service = spawn(|listener, stopped| {
            coffer_key_service::serve(key_config, listener, async {
                let _ = stopped.await;
            })
        })
        .await;
        let mut auth_config = coffer_auth_service::Config::new(
            SecretString::from(auth_db.url().to_owned()),
            ca.issue_material("auth-service", Usage::Service).unwrap(),
            format!("https://{}", key_service.addr),
        );
        auth_config.bcrypt_cost = 4;
        let auth_service = spawn(|listener, stopped| {
            coffer_auth_service::serve(auth_config, listener, async {
                let _ = stopped.await;
            })
        })
        .await;
        let auth = AuthServiceClient::new(
            connect(
                auth_service.addr,
                ca.issue_material("operator/test", Usage::Client)
                    .unwrap()
                    .client_config("127.0.0.1"),
            )
            .await
            .unwrap(),
        );
        let mut tokens = HashMap::new();
        for (tenant, user, role, label) in [
            ("acme", "ada", "org_admin", "admin"),
            ("acme", "dev", "developer", "developer"),
            ("acme", "vic", "viewer", "viewer"),
            ("globex", "gus", "org_admin", "other"),
        ] {
            let _ = auth
                .clone()
                .create_tenant(pb::CreateTenantRequest {
                    tenant_id: tenant.into(),
                    display_name: tenant.into(),
                })
                .await;
            auth.clone()
                .create_principal(pb::CreatePrincipalRequest {
                    parent: format!("tenants/{tenant}"),
                    principal_id: user.into(),
                    kind: pb::PrincipalKind::User as i32,
                    password: PASSWORD.into(),
                    roles: vec![role.into()],
                    scopes: Vec::new(),
                })
                .await
                .unwrap();
            let login = pb::LoginRequest {
                tenant_id: tenant.into(),
                username: user.into(),
                password: PASSWORD.into(),
            };
            tokens.insert(
                label,
                auth.clone()
                    .login(login)
                    .await
                    .unwrap()
                    .into_inner()
                    .access_token,
            );
        }
        let (credential_service, metrics_addr) =
            spawn_credential_service(&ca, &database, key_service.addr, auth_service.addr, |_| {})
                .await;
        Self {
            ca,
            key_service,
            auth_service,
            credential_service,
            metrics_addr,
            database,
            _support: (key_db, auth_db),
            tokens,
        }
    }

    /// A client (certificate `gateway`) of the credential-service.
    pub async fn client(&self) -> Client {
        let material = self.ca.issue_material("gateway", Usage::Client).unwrap();
        CredentialServiceClient::new(
            connect(
                self.credential_service.addr,
                material.client_config("127.0.0.1"),
            )
            .await
            .unwrap(),
        )
    }

    /// Restarts the credential-service (an empty data-key cache).
    pub async fn restart_credential_service(&mut self) {
        self.restart_credential_service_with(|_| {}).await;
    }

    /// Restarts the credential-service with its configuration changed by `tweak`.
    pub async fn restart_credential_service_with(
        &mut self,
        tweak: impl FnOnce(&mut coffer_credential_service::Config),
    ) {
        self.credential_service.stop().await;
        let (service, metrics_addr) = spawn_credential_service(
            &self.ca,
            &self.database,
            self.key_service.addr,
            self.auth_service.addr,
            tweak,
        )
        .await;
        self.credential_service = service;
        self.metrics_addr = metrics_addr;
    }

    pub async fn shutdown(mut self) {
        self.credential_service.stop().await;
        self.auth_service.stop().await;
        self.key_service.stop().await;
    }

    /// A request with the bearer of `who` (`admin`, `developer`, `viewer`, `other`).
    pub fn as_user<T>(&self, who: &str, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let value = format!("Bearer {}", self.tokens[who]);
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
        request
    }

    /// Creates a credential as the admin and returns it (masked).
    pub async fn create(&self, server_id: &str, env: &[(&str, &str)]) -> pb::Credential {
        self.client()
            .await
            .create_credential(self.as_user("admin", new_credential(server_id, env)))
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn reveal(&self, name: &str) -> Result<pb::RevealCredentialResponse, tonic::Status> {
        self.client()
            .await
            .reveal_credential(
                self.as_user("admin", pb::RevealCredentialRequest { name: name.into() }),
            )
            .await
            .map(tonic::Response::into_inner)
    }

    /// A key-service client with an operator's certificate.
    pub async fn key_service_operator(
        &self,
    ) -> coffer_proto::pb::key_service_client::KeyServiceClient<Channel> {
        let material = self
            .ca
            .issue_material("operator/test", Usage::Client)
            .unwrap();
        let channel = connect(self.key_service.addr, material.client_config("127.0.0.1"))
            .await
            .unwrap();
        coffer_proto::pb::key_service_client::KeyServiceClient::new(channel)
    }

    /// Rotates the tenant's data-key encryption key in key-service (as an operator).
    pub async fn rotate_tenant_key(&self, tenant: &str) -> u32 {
        self.key_service_operator()
            .await
            .rotate_key(pb::RotateKeyRequest {
                name: format!("tenants/{tenant}/keys/credentials"),
            })
            .await
            .unwrap()
            .into_inner()
            .primary_version
    }

    /// The credential-service's `/metrics` page.
    pub async fn metrics(&self) -> String {
        coffer_server::metrics::scrape(self.metrics_addr)
            .await
            .unwrap()
    }

    /// A raw connection to the credential database.
    pub async fn raw_database(&self) -> sqlx::AnyConnection {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        sqlx::AnyConnection::connect(self.database.url())
            .await
            .unwrap()
    }
}

async fn spawn_credential_service(
    ca: &DevCa,
    database: &TestDatabase,
    key_service: SocketAddr,
    auth_service: SocketAddr,
    tweak: impl FnOnce(&mut coffer_credential_service::Config),
) -> (Running<coffer_credential_service::Error>, SocketAddr) {
    let mut config = coffer_credential_service::Config::new(
        SecretString::from(database.url().to_owned()),
        ca.issue_material("credential-service", Usage::Service)
            .unwrap(),
        format!("https://{key_service}"),
        format!("https://{auth_service}"),
    );
    // Small pages, so sweeps in tests span several.
    config.rewrap_page_size = 2;
    tweak(&mut config);
    let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics.local_addr().unwrap();
    let running = spawn(|listener, stopped| {
        let listeners = coffer_server::Listeners {
            grpc: listener,
            metrics: Some(metrics),
        };
        coffer_credential_service::serve(config, listeners, async {
            let _ = stopped.await;
        })
    })
    .await;
    (running, metrics_addr)
}

pub fn new_credential(server_id: &str, env: &[(&str, &str)]) -> pb::CreateCredentialRequest {
    pb::CreateCredentialRequest {
        parent: "tenants/acme".into(),
        server_id: server_id.into(),
        template_id: "github".into(),
        server_name: "GitHub MCP".into(),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        configured_integrations: vec!["issues".into()],
        expire_time: None,
        sealed_env: Default::default(),
        opaque: None,
    }
}

/// Asserts a failed call's code and that its message contains `needle`.
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
