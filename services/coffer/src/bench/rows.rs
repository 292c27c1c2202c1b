//! The rows Coffer's services contribute. Each suite prepares what its rows need (a key, an
//! API key, a credential) through the real RPCs and returns its rows; a new service (the
//! gateway, the OAuth token endpoint) adds a suite to [`SUITES`] and nothing else.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use base64::Engine as _;
use coffer_proto::pb;
use coffer_proto::pb::auth_service_client::AuthServiceClient;
use coffer_proto::pb::credential_service_client::CredentialServiceClient;
use coffer_proto::pb::key_service_client::KeyServiceClient;
use secrecy::{ExposeSecret as _, SecretString};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use super::crypto;
use super::measure::{Caller, Row, Step};
use super::stack::Stack;
use crate::layout::{ADMIN_PRINCIPAL, BOOTSTRAP_TENANT};

/// What the suites share: the stack's connections (as the operator), the bootstrap admin's
/// API key, and how many single-use API keys the uncached row may consume.
pub struct Context {
    /// key-service connections.
    pub key_service: Vec<Channel>,
    /// auth-service connections.
    pub auth_service: Vec<Channel>,
    /// credential-service connections.
    pub credential_service: Vec<Channel>,
    /// The REST gateway's address (each worker opens its own HTTP/1.1 connection).
    pub gateway: std::net::SocketAddr,
    /// The bootstrap admin's API key (tenant `default`).
    pub admin_key: SecretString,
    /// Fresh API keys to create for the uncached VerifyApiKey row (each is verified once).
    pub uncached_keys: usize,
    /// credential-service's database, for the in-process read baseline (`None`: left out).
    pub credential_database: Option<SecretString>,
    /// A database of the bench's own on the same back end, for the in-process write baseline
    /// (`None`: left out).
    pub scratch_database: Option<SecretString>,
}

impl Context {
    /// Connects `connections` times to each service of `stack`.
    ///
    /// # Errors
    /// If a connection fails or the admin key file cannot be read.
    pub async fn connect(
        stack: &Stack,
        connections: usize,
        uncached_keys: usize,
    ) -> anyhow::Result<Self> {
        let key_file = crate::admin::admin_key_file(&stack.data_dir);
        let admin_key = std::fs::read_to_string(&key_file)
            .with_context(|| format!("reading {}", key_file.display()))?;
        Ok(Self {
            key_service: stack.channels(stack.key_service, connections).await?,
            auth_service: stack.channels(stack.auth_service, connections).await?,
            credential_service: stack
                .channels(stack.credential_service, connections)
                .await?,
            gateway: stack.gateway,
            admin_key: SecretString::from(admin_key.trim().to_owned()),
            uncached_keys,
            credential_database: stack.credential_database(),
            scratch_database: stack.scratch_database(),
        })
    }

    fn clients<C>(channels: &[Channel], new: impl Fn(Channel) -> C) -> Vec<C> {
        channels.iter().cloned().map(new).collect()
    }
}

type Rows<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Vec<Row>>> + Send + 'a>>;
/// A suite: prepares its state and returns its rows.
pub type Suite = for<'a> fn(&'a Context, &'a Payloads) -> Rows<'a>;

/// The payload sizes of the key-service rows.
#[derive(Debug, Clone)]
pub struct Payloads {
    /// The small one (32 B by default).
    pub small: usize,
    /// The large one (4 KiB by default).
    pub large: usize,
}

/// Every suite, baseline first.
pub const SUITES: &[Suite] = &[
    |cx, _| Box::pin(baseline(cx)),
    |cx, p| Box::pin(key_service(cx, p)),
    |cx, _| Box::pin(auth_service(cx)),
    |cx, _| Box::pin(credential_service(cx)),
    |cx, _| Box::pin(gateway(cx)),
    |cx, _| Box::pin(oauth(cx)),
];

/// The resource the bench's `coffer up` lets OAuth tokens be asked for (see
/// [`super::stack`]); nothing listens there, the tokens are only minted and verified.
pub const OAUTH_RESOURCE: &str = "http://127.0.0.1:9/bench-mcp";

/// The uncached VerifyApiKey row, whose setup (one bcrypt hash per call) is skipped when it is
/// not wanted.
pub const UNCACHED_LABEL: &str = "auth-service: VerifyApiKey (uncached: bcrypt)";
const UNCACHED_NAME: &str = "VerifyApiKey (uncached: bcrypt)";

/// The uncached VerifyApiKey row runs at least this long (a bcrypt check takes about a
/// quarter second).
pub const UNCACHED_AT_LEAST: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a worker waits after auth-service shed a bcrypt check, and how often it retries.
const SHED_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);
const MAX_SHED_RETRIES: usize = 4000;

/// The group and name of the no-op row every other is compared with.
pub const BASELINE: (&str, &str) = ("baseline", "Health/Check (no-op RPC)");

/// `grpc.health.v1.Health/Check` on key-service: mTLS, HTTP/2 and protobuf, but no
/// authorization, database or cryptography.
async fn baseline(cx: &Context) -> anyhow::Result<Vec<Row>> {
    let health = Context::clients(&cx.key_service, HealthClient::new);
    Ok(vec![Row::grpc(
        BASELINE.0,
        BASELINE.1,
        health,
        |mut client| async move {
            client
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map(drop)
        },
    )])
}

async fn key_service(cx: &Context, payloads: &Payloads) -> anyhow::Result<Vec<Row>> {
    const GROUP: &str = "key-service";
    const BATCH: usize = 100;
    let clients = Context::clients(&cx.key_service, KeyServiceClient::new);
    let mut kms = clients[0].clone();
    let key_id = format!("bench{}", std::process::id());
    let name = format!("tenants/bench/keys/{key_id}");
    match kms
        .create_key(pb::CreateKeyRequest {
            parent: "tenants/bench".into(),
            key_id,
            key: None,
        })
        .await
    {
        Ok(_) => {}
        Err(status) if status.code() == tonic::Code::AlreadyExists => {}
        Err(status) => return Err(status).context("creating the bench key"),
    }
    let encrypt = |plaintext: Vec<u8>| pb::EncryptRequest {
        name: name.clone(),
        plaintext,
        ..Default::default()
    };
    let mut rows = Vec::new();
    for size in [payloads.small, payloads.large] {
        let request = encrypt(vec![0x5a; size]);
        rows.push(
            Row::grpc(
                GROUP,
                format!("Encrypt {}", crypto::size(size)),
                clients.clone(),
                move |mut c| {
                    let request = request.clone();
                    async move { c.encrypt(request).await.map(drop) }
                },
            )
            .crypto(crypto::seal(size)),
        );
    }
    let ciphertext = kms
        .encrypt(encrypt(vec![0x5a; payloads.small]))
        .await
        .context("the first Encrypt")?
        .into_inner()
        .ciphertext;
    let decrypt = pb::DecryptRequest {
        name: name.clone(),
        input: Some(pb::decrypt_request::Input::Ciphertext(ciphertext.clone())),
        ..Default::default()
    };
    rows.push(
        Row::grpc(
            GROUP,
            format!("Decrypt {}", crypto::size(payloads.small)),
            clients.clone(),
            move |mut c| {
                let request = decrypt.clone();
                async move { c.decrypt(request).await.map(drop) }
            },
        )
        .crypto(crypto::open(payloads.small)),
    );
    let generate = pb::GenerateDataKeyRequest {
        name: name.clone(),
        ..Default::default()
    };
    rows.push(
        Row::grpc(GROUP, "GenerateDataKey", clients.clone(), move |mut c| {
            let request = generate.clone();
            async move { c.generate_data_key(request).await.map(drop) }
        })
        .crypto(crypto::seal(32)),
    );
    let batch = pb::BatchDecryptRequest {
        name,
        items: vec![
            pb::BatchItem {
                ciphertext,
                encryption_context: HashMap::new(),
            };
            BATCH
        ],
    };
    rows.push(Row::grpc(
        GROUP,
        format!("BatchDecrypt {BATCH} x {}", crypto::size(payloads.small)),
        clients,
        move |mut c| {
            let request = batch.clone();
            async move { c.batch_decrypt(request).await.map(drop) }
        },
    ));
    Ok(rows)
}

async fn auth_service(cx: &Context) -> anyhow::Result<Vec<Row>> {
    const GROUP: &str = "auth-service";
    let clients = Context::clients(&cx.auth_service, AuthServiceClient::new);
    let admin_key = cx.admin_key.expose_secret().to_owned();
    let verify = pb::VerifyApiKeyRequest {
        key: admin_key.clone(),
        client: String::new(),
    };
    let cached = Row::grpc(
        GROUP,
        "VerifyApiKey (cached)",
        clients.clone(),
        move |mut c| {
            let request = verify.clone();
            async move { c.verify_api_key(request).await.map(drop) }
        },
    );

    // Every uncached verification needs a key never verified before: made now (each costs a
    // bcrypt hash), used once each, shared by the workers until they run out. Each worker
    // verifies for a client of its own (as a gateway does for many), and auth-service's bcrypt
    // pool sheds what it cannot run at once (RESOURCE_EXHAUSTED): the worker retries after
    // a short pause, as a client would, and the latency counts the wait.
    let fresh = create_api_keys(&clients[0], cx.uncached_keys).await?;
    let fresh = Arc::new(Mutex::new(fresh));
    let shared = Arc::new(clients.clone());
    let uncached = Row::new(GROUP, UNCACHED_NAME, move |worker| {
        let (fresh, client) = (Arc::clone(&fresh), shared[worker % shared.len()].clone());
        async move {
            let caller: Caller = Box::new(move || {
                let next = fresh.lock().unwrap_or_else(PoisonError::into_inner).pop();
                let mut client = client.clone();
                Box::pin(async move {
                    let Some(key) = next else {
                        return Ok(Step::Exhausted);
                    };
                    let request = pb::VerifyApiKeyRequest {
                        key: key.expose_secret().to_owned(),
                        client: format!("coffer-bench/worker-{worker}"),
                    };
                    for _ in 0..MAX_SHED_RETRIES {
                        match client.verify_api_key(request.clone()).await {
                            Ok(_) => return Ok(Step::Done),
                            Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                                tokio::time::sleep(SHED_PAUSE).await;
                            }
                            Err(status) => return Err(status.into()),
                        }
                    }
                    anyhow::bail!("auth-service shed every retry of an uncached VerifyApiKey")
                })
            });
            Ok(caller)
        }
    })
    .crypto(crypto::bcrypt_verify())
    .at_least(UNCACHED_AT_LEAST);

    let exchange = pb::ExchangeApiKeyRequest { key: admin_key };
    let exchanged = Row::grpc(GROUP, "ExchangeApiKey (RSA sign)", clients, move |mut c| {
        let request = exchange.clone();
        async move { c.exchange_api_key(request).await.map(drop) }
    })
    .crypto(crypto::RSA_SIGN);
    Ok(vec![cached, uncached, exchanged])
}

/// `count` new API keys of the bootstrap admin, one at a time (auth-service lets one client
/// run only a share of its bcrypt pool).
async fn create_api_keys(
    client: &AuthServiceClient<Channel>,
    count: usize,
) -> anyhow::Result<Vec<SecretString>> {
    let mut client = client.clone();
    let mut keys = Vec::with_capacity(count);
    for _ in 0..count {
        let created = client
            .create_api_key(pb::CreateApiKeyRequest {
                parent: format!("tenants/{BOOTSTRAP_TENANT}"),
                principal: format!("tenants/{BOOTSTRAP_TENANT}/principals/{ADMIN_PRINCIPAL}"),
                display_name: "coffer bench (uncached VerifyApiKey)".into(),
                scopes: Vec::new(),
                ttl: None,
            })
            .await
            .context("creating API keys for the uncached VerifyApiKey row")?;
        keys.push(SecretString::from(created.into_inner().key));
    }
    Ok(keys)
}

async fn credential_service(cx: &Context) -> anyhow::Result<Vec<Row>> {
    const GROUP: &str = "credential-service";
    let mut auth = AuthServiceClient::new(cx.auth_service[0].clone());
    let token = auth
        .exchange_api_key(pb::ExchangeApiKeyRequest {
            key: cx.admin_key.expose_secret().to_owned(),
        })
        .await
        .context("exchanging the admin key for a token")?
        .into_inner()
        .access_token;
    let bearer = Bearer(
        format!("Bearer {token}")
            .parse()
            .context("a token as metadata")?,
    );
    let clients = Context::clients(&cx.credential_service, CredentialServiceClient::new);
    let name = create_credential(cx, &bearer, "bench").await?;
    let read = match &cx.credential_database {
        Some(url) => Some(indexed_read(url, &name).await?),
        None => None,
    };
    let get = {
        let (name, bearer) = (name.clone(), bearer.clone());
        Row::grpc(
            GROUP,
            "GetCredential (masked)",
            clients.clone(),
            move |mut c| {
                let request = bearer.request(pb::GetCredentialRequest { name: name.clone() });
                async move { c.get_credential(request).await.map(drop) }
            },
        )
    };
    let reveal = {
        let (name, bearer) = (name.clone(), bearer.clone());
        Row::grpc(
            GROUP,
            "RevealCredential (audited)",
            clients.clone(),
            move |mut c| {
                let request = bearer.request(pb::RevealCredentialRequest { name: name.clone() });
                async move { c.reveal_credential(request).await.map(drop) }
            },
        )
    };
    let hydrate = Row::grpc(GROUP, "HydrateConfig (audited)", clients, move |mut c| {
        let request = bearer.request(pb::HydrateConfigRequest {
            name: name.clone(),
            base_config: r#"{"mcpServers":{"bench":{"command":"bench"}}}"#.into(),
            paths: HashMap::from([(
                "/mcpServers/bench/env/API_KEY".to_owned(),
                "API_KEY".to_owned(),
            )]),
        });
        async move { c.hydrate_config(request).await.map(drop) }
    });
    let commit = match &cx.scratch_database {
        Some(url) => Some(durable_commit(url).await?),
        None => None,
    };
    Ok(read
        .into_iter()
        .chain(commit)
        .chain([get, reveal, hydrate])
        .collect())
}

/// The name of the in-process read baseline.
pub const INDEXED_READ: &str = "indexed read (in-process sqlx)";
/// The name of the in-process write baseline.
pub const DURABLE_COMMIT: &str = "durable commit (in-process sqlx)";

/// GetCredential's database read alone: the credential's row by primary key, through a read
/// pool set up as credential-service's own (`coffer_db::connect_reads`), from this process
/// while the stack idles. An RPC that does this read can approach the no-op RPC's rate only
/// as far as this one allows.
async fn indexed_read(url: &SecretString, name: &str) -> anyhow::Result<Row> {
    let (tenant, id) = name
        .strip_prefix("tenants/")
        .and_then(|rest| rest.split_once("/credentials/"))
        .with_context(|| format!("{name} is not a credential name"))?;
    let (tenant, id) = (tenant.to_owned(), id.to_owned());
    let config = coffer_db::Config::new(url.clone());
    let pool = coffer_db::connect_reads(&config, coffer_credential_service::DATABASE_SCHEMA)
        .await
        .context("opening credential-service's database for the read baseline")?;
    Ok(Row::new(BASELINE.0, INDEXED_READ, move |_| {
        let (pool, tenant, id) = (pool.clone(), tenant.clone(), id.clone());
        async move {
            let caller: Caller = Box::new(move || {
                let (pool, tenant, id) = (pool.clone(), tenant.clone(), id.clone());
                Box::pin(async move {
                    sqlx::query("SELECT * FROM cred_credentials WHERE tenant = $1 AND id = $2")
                        .bind(tenant)
                        .bind(id)
                        .fetch_optional(&pool)
                        .await?
                        .context("the bench credential's row is not where the read looks")?;
                    Ok(Step::Done)
                })
            });
            Ok(caller)
        }
    }))
}

/// An `authorization` header for every request of a row.
#[derive(Clone)]
struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl Bearer {
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        request
    }
}

/// What an audited call writes, alone: one row of an audit event's size, committed in a
/// transaction of its own, through a pool set up as a service's (`coffer_db::connect`: on
/// SQLite one WAL writer, synchronous commits), from this process while the stack idles.
/// RevealCredential and HydrateConfig append to the audit log before they answer; their group
/// commit shares one commit between the calls waiting for it, so they can pass this rate.
async fn durable_commit(url: &SecretString) -> anyhow::Result<Row> {
    static NO_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate::Migrator::DEFAULT;
    let migrations = coffer_db::Migrations {
        sqlite: &NO_MIGRATIONS,
        postgres: &NO_MIGRATIONS,
        schema: "coffer_bench",
        table: "bench_commits",
    };
    let database = coffer_db::connect(&coffer_db::Config::new(url.clone()), &migrations)
        .await
        .context("opening the scratch database for the write baseline")?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS bench_commits \
         (worker BIGINT NOT NULL, n BIGINT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (worker, n))",
    )
    .execute(&database.pool)
    .await
    .context("creating the write baseline's table")?;
    // A worker's numbers go on across concurrency levels (the table keeps every row).
    let next = Arc::new(std::sync::atomic::AtomicI64::new(0));
    Ok(Row::new(BASELINE.0, DURABLE_COMMIT, move |worker| {
        let (pool, next) = (database.pool.clone(), Arc::clone(&next));
        async move {
            let worker = i64::try_from(worker)?;
            let caller: Caller = Box::new(move || {
                let pool = pool.clone();
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Box::pin(async move {
                    sqlx::query("INSERT INTO bench_commits (worker, n, body) VALUES ($1, $2, $3)")
                        .bind(worker)
                        .bind(n)
                        .bind(AUDIT_SIZED_BODY)
                        .execute(&pool)
                        .await?;
                    Ok(Step::Done)
                })
            });
            Ok(caller)
        }
    }))
}

/// About the size of an audit event row (names, actor, request id, two SHA-256 hashes).
const AUDIT_SIZED_BODY: &str = concat!(
    "tenants/default/credentials/bench reveal success operator/admin ",
    "0123456789abcdef0123456789abcdef ",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 ",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
);

/// The REST gateway: its no-op route (`/healthz`, which touches no service), one no-op RPC
/// through it (`/readyz` of key-service alone: REST in, one gRPC Health/Check, JSON out), a
/// masked GetCredential and an Encrypt of 32 bytes over REST with the admin API key, beside the
/// same calls over gRPC in the credential-service and key-service suites.
async fn gateway(cx: &Context) -> anyhow::Result<Vec<Row>> {
    const GROUP: &str = "gateway (REST)";
    let bearer = Bearer(
        format!("Bearer {}", cx.admin_key.expose_secret())
            .parse()
            .context("the admin key as metadata")?,
    );
    let created = create_credential(cx, &bearer, "rest").await?;
    let authorization = Arc::new(format!("Bearer {}", cx.admin_key.expose_secret()));
    let host = cx.gateway.to_string();
    // A tenant key the admin's bearer may use (the services' own keys are reserved).
    let key = format!(
        "tenants/{BOOTSTRAP_TENANT}/keys/bench-rest-{}",
        std::process::id()
    );
    let (parent, key_id) = key.rsplit_once("/keys/").context("a key name")?;
    let mut setup = super::http::connect(cx.gateway, None).await?;
    super::http::call(
        &mut setup,
        GROUP,
        "POST",
        &format!("http://{}/v1/{parent}/keys?keyId={key_id}", cx.gateway),
        &[("host", &host), ("authorization", &authorization)],
        Some("{}".to_owned()),
    )
    .await
    .context("creating the REST bench key")?;
    let encrypt_body = Arc::new(format!(
        r#"{{"plaintext": "{}"}}"#,
        base64::engine::general_purpose::STANDARD.encode([0x42_u8; 32])
    ));
    let rest =
        |name: &'static str, method: &'static str, path: String, body: Option<Arc<String>>| {
            let (addr, authorization) = (cx.gateway, Arc::clone(&authorization));
            let uri = Arc::new(format!("http://{addr}{path}"));
            Row::new(GROUP, name, move |_| {
                let (uri, authorization, body) =
                    (Arc::clone(&uri), Arc::clone(&authorization), body.clone());
                async move {
                    let connection = Arc::new(tokio::sync::Mutex::new(
                        super::http::connect(addr, None).await?,
                    ));
                    let host = addr.to_string();
                    let caller: Caller = Box::new(move || {
                        let (uri, authorization, host, connection, body) = (
                            Arc::clone(&uri),
                            Arc::clone(&authorization),
                            host.clone(),
                            Arc::clone(&connection),
                            body.clone(),
                        );
                        Box::pin(async move {
                            let mut connection = connection.lock().await;
                            let headers =
                                [("host", host.as_str()), ("authorization", &**authorization)];
                            let body = body.map(|body| (*body).clone());
                            super::http::call(&mut connection, GROUP, method, &uri, &headers, body)
                                .await?;
                            Ok(Step::Done)
                        })
                    });
                    Ok(caller)
                }
            })
        };
    Ok(vec![
        rest("no-op route (/healthz)", "GET", "/healthz".to_owned(), None),
        rest(
            "no-op RPC via REST (/readyz)",
            "GET",
            "/readyz?service=coffer.v1.KeyService".to_owned(),
            None,
        ),
        rest(
            "GetCredential (masked)",
            "GET",
            format!("/v1/{created}"),
            None,
        ),
        rest(
            "Encrypt 32 B",
            "POST",
            format!("/v1/{key}:encrypt"),
            Some(encrypt_body),
        ),
    ])
}

/// A credential of the bootstrap tenant for a suite's rows (server id `{prefix}{pid}`); its
/// name.
async fn create_credential(cx: &Context, bearer: &Bearer, prefix: &str) -> anyhow::Result<String> {
    let created = CredentialServiceClient::new(cx.credential_service[0].clone())
        .create_credential(bearer.request(pb::CreateCredentialRequest {
            parent: format!("tenants/{BOOTSTRAP_TENANT}"),
            server_id: format!("{prefix}{}", std::process::id()),
            template_id: "bench".into(),
            server_name: format!("coffer bench ({prefix})"),
            env: HashMap::from([("API_KEY".to_owned(), "sk-bench-0123456789abcdef".to_owned())]),
            ..Default::default()
        }))
        .await
        .with_context(|| format!("creating the {prefix} bench credential"))?;
    Ok(created.into_inner().name)
}

/// The OAuth authorization server: the token endpoint's client credentials grant over REST
/// (RSA-2048 signing is its cryptography), and an MCP server's verification of the token with
/// libs/resource-server in this process (RSA-2048 verification is its cryptography; the
/// kit remembers verified tokens, so this is the steady state of a client reusing its token).
async fn oauth(cx: &Context) -> anyhow::Result<Vec<Row>> {
    const GROUP: &str = "OAuth";
    let mut operator = AuthServiceClient::new(cx.auth_service[0].clone());
    let account = format!("bench-robot-{}", std::process::id());
    operator
        .create_principal(pb::CreatePrincipalRequest {
            parent: format!("tenants/{BOOTSTRAP_TENANT}"),
            principal_id: account.clone(),
            kind: pb::PrincipalKind::ServiceAccount as i32,
            scopes: vec!["mcp:read".into()],
            ..Default::default()
        })
        .await
        .context("the bench service account")?;
    let created = operator
        .create_client(pb::CreateClientRequest {
            client_name: "coffer bench".into(),
            grant_types: vec!["client_credentials".into()],
            token_endpoint_auth_method: pb::TokenEndpointAuthMethod::ClientSecretBasic.into(),
            principal: format!("tenants/{BOOTSTRAP_TENANT}/principals/{account}"),
            scopes: vec!["mcp:read".into()],
            ..Default::default()
        })
        .await
        .context("the bench client")?
        .into_inner();
    let client_id = created.client.context("a client")?.client_id;
    let basic = Arc::new(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{client_id}:{}", created.client_secret))
    ));
    let form: Arc<String> = Arc::new(
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("resource", OAUTH_RESOURCE)
            .finish(),
    );
    let addr = cx.gateway;
    let host = Arc::new(addr.to_string());
    let uri = Arc::new(format!("http://{addr}/oauth/token"));
    let token = {
        let mut connection = super::http::connect(addr, None).await?;
        let answer = super::http::call(
            &mut connection,
            GROUP,
            "POST",
            &uri,
            &[("host", &host), ("authorization", &basic)],
            Some((*form).clone()),
        )
        .await?;
        let answer: serde_json::Value = serde_json::from_slice(&answer)?;
        answer["access_token"]
            .as_str()
            .context("a token response")?
            .to_owned()
    };
    let grant = Row::new(
        GROUP,
        "token endpoint: client_credentials (REST)",
        move |_| {
            let (uri, host, basic, form) = (
                Arc::clone(&uri),
                Arc::clone(&host),
                Arc::clone(&basic),
                Arc::clone(&form),
            );
            async move {
                let connection = Arc::new(tokio::sync::Mutex::new(
                    super::http::connect(addr, None).await?,
                ));
                let caller: Caller = Box::new(move || {
                    let (uri, host, basic, form, connection) = (
                        Arc::clone(&uri),
                        Arc::clone(&host),
                        Arc::clone(&basic),
                        Arc::clone(&form),
                        Arc::clone(&connection),
                    );
                    Box::pin(async move {
                        let mut connection = connection.lock().await;
                        let headers = [("host", host.as_str()), ("authorization", basic.as_str())];
                        super::http::call(
                            &mut connection,
                            GROUP,
                            "POST",
                            &uri,
                            &headers,
                            Some((*form).clone()),
                        )
                        .await?;
                        Ok(Step::Done)
                    })
                });
                Ok(caller)
            }
        },
    )
    .crypto(crypto::RSA_SIGN);
    let protection =
        coffer_resource_server::ResourceServer::new(OAUTH_RESOURCE, &format!("http://{addr}"))?;
    let header: http::HeaderValue = format!("Bearer {token}").parse()?;
    let required: coffer_authn::Scopes = [coffer_authn::Scope::McpRead].into_iter().collect();
    // The first verification fetches the JWKS; the row measures what follows.
    protection
        .verify(Some(&header), &required)
        .await
        .map_err(|refusal| anyhow::anyhow!("the bench token was refused: {refusal:?}"))?;
    let verify = Row::new(
        GROUP,
        "resource server verify (libs/resource-server)",
        move |_| {
            let (protection, header, required) =
                (protection.clone(), header.clone(), required.clone());
            async move {
                let caller: Caller = Box::new(move || {
                    let (protection, header, required) =
                        (protection.clone(), header.clone(), required.clone());
                    Box::pin(async move {
                        protection
                            .verify(Some(&header), &required)
                            .await
                            .map_err(|refusal| anyhow::anyhow!("refused: {refusal:?}"))?;
                        Ok(Step::Done)
                    })
                });
                Ok(caller)
            }
        },
    )
    .crypto(crypto::RSA_VERIFY);
    let refresh = refresh_row(cx, &mut operator).await?;
    Ok(vec![grant, refresh, verify])
}

/// The token endpoint's refresh grant: each worker holds a refresh token of its own (from an
/// authorization code of a bench user, signed in once; the consent remembered, so further
/// authorizations redirect at once) and rotates it on every call.
async fn refresh_row(
    cx: &Context,
    operator: &mut AuthServiceClient<Channel>,
) -> anyhow::Result<Row> {
    const GROUP: &str = "OAuth";
    const REDIRECT: &str = "http://127.0.0.1:9/bench-callback";
    let user = format!("bench-user-{}", std::process::id());
    let password = format!("bench password {}", std::process::id());
    operator
        .create_principal(pb::CreatePrincipalRequest {
            parent: format!("tenants/{BOOTSTRAP_TENANT}"),
            principal_id: user.clone(),
            kind: pb::PrincipalKind::User as i32,
            password: password.clone(),
            roles: vec!["developer".into()],
            ..Default::default()
        })
        .await
        .context("the bench user")?;
    let client_id = operator
        .create_client(pb::CreateClientRequest {
            client_name: "coffer bench (user)".into(),
            redirect_uris: vec![REDIRECT.into()],
            ..Default::default()
        })
        .await
        .context("the bench user's client")?
        .into_inner()
        .client
        .context("a client")?
        .client_id;
    let flow = Arc::new(UserFlow {
        addr: cx.gateway,
        client_id,
        redirect: REDIRECT,
        cookies: tokio::sync::Mutex::new(String::new()),
    });
    flow.sign_in(&user, &password).await?;
    Ok(
        Row::new(GROUP, "token endpoint: refresh_token (REST)", move |_| {
            let flow = Arc::clone(&flow);
            async move {
                let token = Arc::new(tokio::sync::Mutex::new(flow.refresh_token().await?));
                let connection = Arc::new(tokio::sync::Mutex::new(
                    super::http::connect(flow.addr, None).await?,
                ));
                let caller: Caller = Box::new(move || {
                    let (flow, token, connection) = (
                        Arc::clone(&flow),
                        Arc::clone(&token),
                        Arc::clone(&connection),
                    );
                    Box::pin(async move {
                        let mut token = token.lock().await;
                        let form = url::form_urlencoded::Serializer::new(String::new())
                            .append_pair("grant_type", "refresh_token")
                            .append_pair("refresh_token", &token)
                            .append_pair("client_id", &flow.client_id)
                            .finish();
                        let mut connection = connection.lock().await;
                        *token = flow.token_call(&mut connection, form).await?;
                        Ok(Step::Done)
                    })
                });
                Ok(caller)
            }
        })
        .crypto(crypto::RSA_SIGN),
    )
}

/// A bench user's browser, as far as the bench needs one: its cookies, and the flow.
struct UserFlow {
    addr: std::net::SocketAddr,
    client_id: String,
    redirect: &'static str,
    cookies: tokio::sync::Mutex<String>,
}

impl UserFlow {
    /// Signs in with the password and allows, keeping the session cookie.
    async fn sign_in(&self, user: &str, password: &str) -> anyhow::Result<()> {
        let mut connection = super::http::connect(self.addr, None).await?;
        let (path, _) = self.authorization()?;
        let page = self.send(&mut connection, "GET", &path, None).await?;
        let text = String::from_utf8_lossy(&page.body).into_owned();
        let (request, csrf) = (hidden(&text, "request")?, hidden(&text, "csrf")?);
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("request", &request)
            .append_pair("csrf", &csrf)
            .append_pair("tenant", BOOTSTRAP_TENANT)
            .append_pair("username", user)
            .append_pair("password", password)
            .finish();
        let consent = self
            .send(&mut connection, "POST", "/oauth/login", Some(form))
            .await?;
        anyhow::ensure!(consent.status == 200, "bench sign-in: {}", consent.status);
        let text = String::from_utf8_lossy(&consent.body).into_owned();
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("request", &hidden(&text, "request")?)
            .append_pair("csrf", &csrf)
            .append_pair("decision", "allow")
            .finish();
        let allowed = self
            .send(&mut connection, "POST", "/oauth/consent", Some(form))
            .await?;
        anyhow::ensure!(allowed.status == 303, "bench consent: {}", allowed.status);
        Ok(())
    }

    /// A fresh refresh token: an authorization the remembered consent answers at once, and
    /// the code's exchange.
    async fn refresh_token(&self) -> anyhow::Result<String> {
        let mut connection = super::http::connect(self.addr, None).await?;
        let (path, verifier) = self.authorization()?;
        let answer = self.send(&mut connection, "GET", &path, None).await?;
        anyhow::ensure!(
            answer.status == 303,
            "bench authorization: {}",
            answer.status
        );
        let location = answer
            .headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .context("a redirect")?;
        let code = url::Url::parse(location)?
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .context("a code")?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", &code)
            .append_pair("redirect_uri", self.redirect)
            .append_pair("code_verifier", &verifier)
            .append_pair("client_id", &self.client_id)
            .finish();
        self.token_call(&mut connection, form).await
    }

    /// A token request; the new refresh token.
    async fn token_call(
        &self,
        connection: &mut super::http::Connection,
        form: String,
    ) -> anyhow::Result<String> {
        let host = self.addr.to_string();
        let uri = format!("http://{}/oauth/token", self.addr);
        let headers = [
            ("host", host.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        let answer =
            super::http::exchange(connection, "OAuth", "POST", &uri, &headers, Some(form)).await?;
        anyhow::ensure!(answer.status == 200, "bench token call: {}", answer.status);
        let tokens: serde_json::Value = serde_json::from_slice(&answer.body)?;
        Ok(tokens["refresh_token"]
            .as_str()
            .context("a refresh token")?
            .to_owned())
    }

    /// An authorization request for Coffer's own API with offline access: its path and the
    /// PKCE verifier.
    fn authorization(&self) -> anyhow::Result<(String, String)> {
        use sha2::Digest as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut random = [0u8; 32];
        coffer_crypto::fill_random(&mut random)?;
        let verifier = engine.encode(random);
        let challenge = engine.encode(sha2::Sha256::digest(verifier.as_bytes()));
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", self.redirect)
            .append_pair("scope", "mcp:read offline_access")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("resource", &format!("http://{}", self.addr))
            .finish();
        Ok((format!("/oauth/authorize?{query}"), verifier))
    }

    /// One browser request: the cookies sent, and the ones set kept.
    async fn send(
        &self,
        connection: &mut super::http::Connection,
        method: &str,
        path: &str,
        form: Option<String>,
    ) -> anyhow::Result<super::http::Answer> {
        let host = self.addr.to_string();
        let uri = format!("http://{}{path}", self.addr);
        let mut cookies = self.cookies.lock().await;
        let mut headers = vec![
            ("host", host.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        if !cookies.is_empty() {
            headers.push(("cookie", cookies.as_str()));
        }
        let answer =
            super::http::exchange(connection, "OAuth", method, &uri, &headers, form).await?;
        for value in answer.headers.get_all(http::header::SET_COOKIE) {
            let Some(pair) = value.to_str().ok().and_then(|v| v.split(';').next()) else {
                continue;
            };
            if !cookies.is_empty() {
                cookies.push_str("; ");
            }
            cookies.push_str(pair);
        }
        Ok(answer)
    }
}

/// A hidden form field's value in a page.
fn hidden(html: &str, name: &str) -> anyhow::Result<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).context("a hidden field")? + marker.len();
    let end = html[start..].find('"').context("a hidden field's end")? + start;
    Ok(html[start..end].to_owned())
}
