//! A key-service and an auth-service wired together, and typed helpers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use coffer_auth_service::Config;
use coffer_crypto::RootKeyring;
use coffer_proto::pb;
use coffer_proto::pb::auth_service_client::AuthServiceClient;
use coffer_stack::{Ended, Service};
use coffer_test_support::{Backend, TestDatabase, connect, init_tracing};
pub use coffer_test_support::{assert_status, bearer};
use coffer_transport::DevCa;
use coffer_transport::dev_ca::Usage;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tonic::transport::Channel;

pub type Client = AuthServiceClient<Channel>;

/// A password that passes the length rule.
pub const PASSWORD: &str = "correct horse battery";

/// A running key-service on its own SQLite database.
pub struct KeyService {
    pub addr: SocketAddr,
    service: Service<coffer_key_service::Error>,
    _database: TestDatabase,
}

impl KeyService {
    pub async fn spawn(ca: &DevCa) -> Self {
        let database = TestDatabase::create(Backend::Sqlite).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls = ca.issue_material("key-service", Usage::Service).unwrap();
        let config = coffer_key_service::Config::new(
            SecretString::from(database.url().to_owned()),
            RootKeyring::generate().unwrap(),
            tls,
        );
        let service = Service::spawn(listener.into(), |listeners, stopped| {
            coffer_key_service::serve(config, listeners, stopped)
        })
        .await
        .unwrap();
        Self {
            addr: service.addr,
            service,
            _database: database,
        }
    }

    pub async fn stop(&mut self) {
        self.service.stop().await.unwrap();
    }
}

/// A running auth-service.
pub type AuthService = Service<coffer_auth_service::Error>;

/// The whole test stack: CA, key-service, one auth-service (more with `spawn_auth`).
pub struct Stack {
    pub ca: Arc<DevCa>,
    pub key_service: KeyService,
    pub auth: AuthService,
    pub database: TestDatabase,
    operator: Client,
}

/// Test settings: fast bcrypt, short lockout.
pub fn config(stack_ca: &DevCa, database: &TestDatabase, key_service: SocketAddr) -> Config {
    let tls = stack_ca
        .issue_material("auth-service", Usage::Service)
        .unwrap();
    let mut config = Config::new(
        SecretString::from(database.url().to_owned()),
        tls,
        format!("https://{key_service}"),
    );
    config.bcrypt_cost = 4;
    config.lockout.max_failures = 3;
    config.signing_key_refresh = Duration::from_millis(200);
    config
}

/// Starts an auth-service; resolves once its start-up (database, key-service, signing key)
/// is over, or with its start-up error.
pub async fn spawn_auth(
    ca: &DevCa,
    config: Config,
) -> Result<(AuthService, Client), coffer_auth_service::Error> {
    init_tracing();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service = Service::spawn(listener.into(), |listeners, stopped| {
        coffer_auth_service::serve(config, listeners, stopped)
    })
    .await
    .map_err(|ended| match ended {
        Ended::Failed(error) => error,
        _ => panic!("the auth-service ended during start-up"),
    })?;
    let operator = client_for(ca, service.addr, "operator/test").await;
    Ok((service, operator))
}

impl Stack {
    pub async fn spawn(database: TestDatabase) -> Self {
        Self::spawn_with(database, |_| {}).await
    }

    pub async fn spawn_with(database: TestDatabase, tweak: impl FnOnce(&mut Config)) -> Self {
        let ca = Arc::new(DevCa::generate("coffer.local").unwrap());
        let key_service = KeyService::spawn(&ca).await;
        let mut config = config(&ca, &database, key_service.addr);
        tweak(&mut config);
        let (auth, operator) = spawn_auth(&ca, config).await.unwrap();
        Self {
            ca,
            key_service,
            auth,
            database,
            operator,
        }
    }

    /// A client as the test operator (no bearer).
    pub fn operator(&self) -> Client {
        self.operator.clone()
    }

    /// A client with the certificate of `name`.
    pub async fn client_as(&self, name: &str) -> Client {
        client_for(&self.ca, self.auth.addr, name).await
    }

    /// Starts a second auth-service on the same database and key-service.
    pub async fn second_instance(&self, tweak: impl FnOnce(&mut Config)) -> (AuthService, Client) {
        let mut config = config(&self.ca, &self.database, self.key_service.addr);
        tweak(&mut config);
        spawn_auth(&self.ca, config).await.unwrap()
    }

    /// Creates a tenant and a user with `roles` in it.
    pub async fn tenant_with_user(&self, tenant: &str, user: &str, roles: &[&str]) {
        let created = self
            .operator()
            .create_tenant(pb::CreateTenantRequest {
                tenant_id: tenant.into(),
                display_name: tenant.into(),
            })
            .await;
        if let Err(status) = created {
            assert_eq!(status.code(), tonic::Code::AlreadyExists, "{status:?}");
        }
        self.create_user(tenant, user, roles).await;
    }

    pub async fn create_user(&self, tenant: &str, user: &str, roles: &[&str]) -> pb::Principal {
        self.operator()
            .create_principal(user_request(tenant, user, roles))
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn login(&self, tenant: &str, user: &str) -> pb::TokenResponse {
        self.operator()
            .login(pb::LoginRequest {
                tenant_id: tenant.into(),
                username: user.into(),
                password: PASSWORD.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn shutdown(mut self) {
        self.auth.stop().await.unwrap();
        self.key_service.stop().await;
    }
}

pub fn user_request(tenant: &str, user: &str, roles: &[&str]) -> pb::CreatePrincipalRequest {
    pb::CreatePrincipalRequest {
        parent: format!("tenants/{tenant}"),
        principal_id: user.into(),
        kind: pb::PrincipalKind::User as i32,
        password: PASSWORD.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        scopes: Vec::new(),
    }
}

/// A space-separated scope list as a `repeated string scopes` field.
pub fn scope_list(text: &str) -> Vec<String> {
    text.split_ascii_whitespace().map(str::to_owned).collect()
}

pub async fn client_for(ca: &DevCa, addr: SocketAddr, name: &str) -> Client {
    let material = ca.issue_material(name, Usage::Client).unwrap();
    AuthServiceClient::new(
        connect(addr, material.client_config("127.0.0.1"))
            .await
            .unwrap(),
    )
}

/// Creates an API key in `acme` for the bearer's own principal.
pub async fn create_key(
    client: &mut Client,
    token: &str,
    scopes: &str,
) -> pb::CreateApiKeyResponse {
    client
        .create_api_key(bearer(
            token,
            pb::CreateApiKeyRequest {
                parent: "tenants/acme".into(),
                display_name: "laptop".into(),
                scopes: scope_list(scopes),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

/// VerifyApiKey (the client's certificate must be an introspector's).
pub async fn verify(
    client: &mut Client,
    key: &str,
) -> Result<pb::VerifyApiKeyResponse, tonic::Status> {
    client
        .verify_api_key(pb::VerifyApiKeyRequest {
            key: key.into(),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}
