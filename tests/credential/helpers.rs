//! The three services wired together, users with roles, and a credential client.

use std::collections::HashMap;
use std::sync::Arc;

use coffer_crypto::RootKeyring;
use coffer_proto::pb;
use coffer_proto::pb::auth_service_client::AuthServiceClient;
use coffer_proto::pb::credential_service_client::CredentialServiceClient;
pub use coffer_test_support::assert_status;
use coffer_test_support::{Backend, TestDatabase, connect, init_tracing};
use coffer_transport::DevCa;
use coffer_transport::dev_ca::Usage;
use secrecy::SecretString;
use tonic::transport::Channel;

pub type Client = CredentialServiceClient<Channel>;

const PASSWORD: &str = "correct horse battery";

/// key-service + auth-service + credential-service, tenants `acme` and `globex`, and tokens
/// for an org_admin, a developer and a viewer of acme and an org_admin of globex.
pub struct Stack {
    pub ca: Arc<DevCa>,
    /// The three services, started by the composition root as `coffer up` starts them.
    pub services: coffer_stack::Stack,
    pub database: TestDatabase,
    /// Databases of the other services, when they have their own.
    _support: Vec<TestDatabase>,
    pub tokens: HashMap<&'static str, String>,
}

impl Stack {
    /// The stack with credential-service on `database`, key-service and auth-service each on
    /// a SQLite file of its own.
    pub async fn spawn(database: TestDatabase) -> Self {
        let key_db = TestDatabase::create(Backend::Sqlite).await.unwrap();
        let auth_db = TestDatabase::create(Backend::Sqlite).await.unwrap();
        let urls = [key_db.url().to_owned(), auth_db.url().to_owned()];
        Self::spawn_on(database, urls, vec![key_db, auth_db]).await
    }

    /// The stack with all three services on one `database` (each in its own schema).
    pub async fn spawn_sharing(database: TestDatabase) -> Self {
        let urls = [database.url().to_owned(), database.url().to_owned()];
        Self::spawn_on(database, urls, Vec::new()).await
    }

    async fn spawn_on(
        database: TestDatabase,
        [key_url, auth_url]: [String; 2],
        support: Vec<TestDatabase>,
    ) -> Self {
        init_tracing();
        let ca = Arc::new(DevCa::generate("coffer.local").unwrap());
        let certificates = coffer_stack::Certificates::issue(&ca).unwrap();
        let services = coffer_stack::Stack::builder(RootKeyring::generate().unwrap(), certificates)
            .databases(coffer_stack::Databases {
                key_service: SecretString::from(key_url),
                auth_service: SecretString::from(auth_url),
                credential_service: SecretString::from(database.url().to_owned()),
            })
            .addresses(coffer_stack::Addresses {
                metrics: true,
                ..Default::default()
            })
            .auth_service(|config| config.bcrypt_cost = 4)
            // Small pages, so sweeps in tests span several.
            .credential_service(|config| config.rewrap_page_size = 2)
            .spawn()
            .await
            .unwrap();
        let auth = AuthServiceClient::new(
            connect(
                services.auth_service.addr,
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
                ..Default::default()
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
        Self {
            ca,
            services,
            database,
            _support: support,
            tokens,
        }
    }

    /// A client (certificate `gateway`) of the credential-service.
    pub async fn client(&self) -> Client {
        let material = self.ca.issue_material("gateway", Usage::Client).unwrap();
        CredentialServiceClient::new(
            connect(
                self.services.credential_service.addr,
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
        self.services
            .restart_credential_service(|config| {
                config.rewrap_page_size = 2;
                tweak(config);
            })
            .await
            .unwrap();
    }

    pub async fn shutdown(self) {
        self.services.shutdown().await.unwrap();
    }

    /// A request with the bearer of `who` (`admin`, `developer`, `viewer`, `other`).
    pub fn as_user<T>(&self, who: &str, message: T) -> tonic::Request<T> {
        coffer_test_support::bearer(&self.tokens[who], message)
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
        let channel = connect(
            self.services.key_service.addr,
            material.client_config("127.0.0.1"),
        )
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
        coffer_server::metrics::scrape(self.services.credential_service.metrics_addr.unwrap())
            .await
            .unwrap()
    }

    /// A raw connection to the credential database.
    pub async fn raw_database(&self) -> sqlx::AnyConnection {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        sqlx::AnyConnection::connect(&self.database.url_in("coffer_credential"))
            .await
            .unwrap()
    }
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
