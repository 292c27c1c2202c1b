//! Operator commands against a running stack's auth-service (`coffer admin bootstrap`,
//! `coffer login`, `coffer apikey`, `coffer token`). They connect with an operator certificate:
//! `--cert`, `--key` and `--ca` (a production PKI), or the data directory's
//! (`DIR/certs/operator.pem`, from `coffer up` or `coffer certs init`). Addresses are
//! `HOST:PORT`; the service's certificate must carry that host. Commands that act inside a
//! tenant also send an API key as bearer: `$COFFER_API_KEY`, or the file `--api-key-file`
//! (default: the admin key `coffer up` saved, `DIR/admin-api-key`).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use coffer_proto::pb;
use coffer_proto::pb::auth_service_client::AuthServiceClient;
use coffer_transport::{TlsFiles, TlsMaterial};
use secrecy::{ExposeSecret as _, SecretString};
use tonic::transport::{Channel, Endpoint};

use crate::layout::{ADMIN_API_KEY_FILE, ADMIN_PRINCIPAL, BOOTSTRAP_TENANT};

/// Where the stack is and who we are.
#[derive(Debug, Clone)]
pub struct Target {
    /// The data directory holding the operator certificate (unless `tls` names one).
    pub data_dir: PathBuf,
    /// The auth-service address, `HOST:PORT`.
    pub auth_addr: String,
    /// The operator certificate, key and CA, if not the data directory's.
    pub tls: Option<TlsFiles>,
    /// The API key file used as bearer when `$COFFER_API_KEY` is unset.
    pub api_key_file: Option<PathBuf>,
}

impl Target {
    /// A client of auth-service, authenticated by the operator certificate.
    ///
    /// # Errors
    /// If the certificate files are missing or the service cannot be reached.
    pub async fn connect(&self) -> anyhow::Result<AuthServiceClient<Channel>> {
        Ok(AuthServiceClient::new(
            self.channel(&self.auth_addr, "auth-service").await?,
        ))
    }

    /// An mTLS channel to the service at `addr` (`HOST:PORT`), with the operator certificate;
    /// the service's certificate must be valid for `HOST`.
    ///
    /// # Errors
    /// If the certificate files are missing or the service cannot be reached.
    pub async fn channel(&self, addr: &str, service: &str) -> anyhow::Result<Channel> {
        let material = match &self.tls {
            Some(files) => TlsMaterial::load(files).context("loading --cert, --key and --ca")?,
            None => TlsMaterial::load(&crate::layout::operator_files(&self.data_dir))
                .with_context(|| {
                    format!(
                        "no operator certificate in {}: run `coffer up` or `coffer certs init` \
                         first, or pass --cert, --key and --ca",
                        self.data_dir.join("certs").display()
                    )
                })?,
        };
        let host = coffer_config::https_host(&format!("https://{addr}"))
            .with_context(|| format!("{service} address {addr:?} is not HOST:PORT"))?;
        Endpoint::from_shared(format!("https://{addr}"))
            .with_context(|| format!("{service} address {addr:?} is not HOST:PORT"))?
            .tls_config(material.client_config(&host))?
            .connect()
            .await
            .with_context(|| format!("cannot reach {service} at {addr}"))
    }

    /// The bearer API key: `$COFFER_API_KEY`, else the key file.
    ///
    /// # Errors
    /// If neither is available.
    pub fn api_key(&self) -> anyhow::Result<SecretString> {
        if let Ok(key) = std::env::var("COFFER_API_KEY") {
            return Ok(SecretString::from(key));
        }
        let file = self
            .api_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(ADMIN_API_KEY_FILE));
        let key = std::fs::read_to_string(&file).with_context(|| {
            format!(
                "no API key: set COFFER_API_KEY or pass --api-key-file (tried {})",
                file.display()
            )
        })?;
        Ok(SecretString::from(key.trim().to_owned()))
    }

    /// `message` with the bearer API key attached.
    pub(crate) fn authorized<T>(&self, message: T) -> anyhow::Result<tonic::Request<T>> {
        let mut request = tonic::Request::new(message);
        let value = format!("Bearer {}", self.api_key()?.expose_secret());
        request.metadata_mut().insert(
            "authorization",
            value.parse().context("API key is not ASCII")?,
        );
        Ok(request)
    }
}

/// Reads a secret from standard input (piped, or typed and ended with Enter); never echoes it
/// back. With a terminal, use `read -rs` in the shell for no echo while typing.
///
/// # Errors
/// If standard input cannot be read or is empty.
pub fn secret_from_stdin(what: &str) -> anyhow::Result<SecretString> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .with_context(|| format!("reading {what} from stdin"))?;
    let text = text.trim_end_matches(['\n', '\r']).to_owned();
    anyhow::ensure!(!text.is_empty(), "no {what} on standard input");
    Ok(SecretString::from(text))
}

/// `coffer login`: a user's password (from stdin) for tokens. A user with two-step sign-in
/// puts the code from their app (or a recovery code) on a second line.
///
/// # Errors
/// If the login is refused.
pub async fn login(target: &Target, tenant: &str, username: &str) -> anyhow::Result<String> {
    let input = secret_from_stdin("password")?;
    let (password, second_factor) = input
        .expose_secret()
        .split_once('\n')
        .map_or((input.expose_secret(), ""), |(password, code)| {
            (password.trim_end_matches('\r'), code.trim())
        });
    let tokens = target
        .connect()
        .await?
        .login(pb::LoginRequest {
            tenant_id: tenant.to_owned(),
            username: username.to_owned(),
            password: password.to_owned(),
            second_factor: second_factor.to_owned(),
        })
        .await
        .context("login refused")?
        .into_inner();
    Ok(format!(
        "access_token: {}\nexpires_in: {}\nrefresh_token: {}\nscope: {}\n",
        tokens.access_token, tokens.expires_in, tokens.refresh_token, tokens.scope
    ))
}

/// `coffer admin remove-totp`: a user's two-step sign-in off, with the operator certificate.
///
/// # Errors
/// If the call is refused.
pub async fn remove_totp(target: &Target, tenant: &str, username: &str) -> anyhow::Result<String> {
    let parent = format!("tenants/{tenant}/principals/{username}");
    let status = target
        .connect()
        .await?
        .remove_totp(pb::RemoveTotpRequest {
            parent: parent.clone(),
            ..Default::default()
        })
        .await
        .context("RemoveTotp")?
        .into_inner();
    anyhow::ensure!(!status.enabled, "two-step sign-in is still on for {parent}");
    Ok(format!("two-step sign-in off: {parent}\n"))
}

/// `coffer apikey create`.
///
/// # Errors
/// If the call is refused.
pub async fn create_api_key(
    target: &Target,
    tenant: &str,
    principal: Option<&str>,
    scopes: &str,
    ttl_seconds: u64,
    display_name: &str,
) -> anyhow::Result<String> {
    let request = pb::CreateApiKeyRequest {
        parent: format!("tenants/{tenant}"),
        principal: principal
            .map(|p| format!("tenants/{tenant}/principals/{p}"))
            .unwrap_or_default(),
        display_name: display_name.to_owned(),
        // Space- or comma-separated on the command line, one per item on the wire.
        scopes: scopes
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        ttl: (ttl_seconds > 0).then(|| seconds(ttl_seconds)),
    };
    let created = target
        .connect()
        .await?
        .create_api_key(target.authorized(request)?)
        .await?
        .into_inner();
    let meta = created.api_key.unwrap_or_default();
    Ok(format!(
        "name: {}\nscopes: {}\nkey (shown once, store it now): {}\n",
        meta.name,
        meta.scopes.join(" "),
        created.key
    ))
}

/// `coffer apikey list`.
///
/// # Errors
/// If the call is refused.
pub async fn list_api_keys(target: &Target, tenant: &str) -> anyhow::Result<String> {
    let mut client = target.connect().await?;
    let mut out = String::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListApiKeysRequest {
            parent: format!("tenants/{tenant}"),
            page_size: 100,
            page_token: page_token.clone(),
        };
        let page = client
            .list_api_keys(target.authorized(request)?)
            .await?
            .into_inner();
        for key in page.api_keys {
            let state = if key.revoke_time.is_some() {
                "revoked"
            } else {
                "active"
            };
            out.push_str(&format!(
                "{}\t{}\t{}\t{}\t{state}\n",
                key.name,
                key.hint,
                key.principal,
                key.scopes.join(" ")
            ));
        }
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
}

/// `coffer apikey revoke`.
///
/// # Errors
/// If the call is refused.
pub async fn revoke_api_key(target: &Target, name: &str) -> anyhow::Result<String> {
    let request = pb::RevokeApiKeyRequest {
        name: name.to_owned(),
    };
    let revoked = target
        .connect()
        .await?
        .revoke_api_key(target.authorized(request)?)
        .await?
        .into_inner();
    Ok(format!("revoked: {}\n", revoked.name))
}

/// `coffer apikey roll`.
///
/// # Errors
/// If the call is refused.
pub async fn roll_api_key(
    target: &Target,
    name: &str,
    grace_seconds: u64,
) -> anyhow::Result<String> {
    let request = pb::RollApiKeyRequest {
        name: name.to_owned(),
        grace_period: Some(seconds(grace_seconds)),
    };
    let rolled = target
        .connect()
        .await?
        .roll_api_key(target.authorized(request)?)
        .await?
        .into_inner();
    Ok(format!(
        "name: {}\nold secret valid for: {grace_seconds}s\nnew key (shown once, store it now): {}\n",
        rolled.api_key.unwrap_or_default().name,
        rolled.key
    ))
}

/// `coffer token introspect`: the token from stdin.
///
/// # Errors
/// If the call fails.
pub async fn introspect(target: &Target) -> anyhow::Result<String> {
    let token = secret_from_stdin("token")?;
    let response = target
        .connect()
        .await?
        .introspect(pb::IntrospectRequest {
            token: token.expose_secret().to_owned(),
        })
        .await?
        .into_inner();
    if !response.active {
        return Ok("active: false\n".to_owned());
    }
    Ok(format!(
        "active: true\ntoken_type: {}\nsub: {}\ntenant: {}\nscope: {}\nexp: {}\n",
        response.token_type, response.sub, response.tenant, response.scope, response.exp
    ))
}
/// Bootstraps a `coffer up` data directory: the tenant `default`, a service account `admin`
/// with `org_admin`, and an API key for it, saved 0600 to `DIR/admin-api-key`. Returns the key
/// when it was created now (to show once), `None` when the data directory was bootstrapped
/// before.
///
/// # Errors
/// If a call fails.
pub async fn bootstrap(target: &Target) -> anyhow::Result<Option<SecretString>> {
    let key_file = target.data_dir.join(ADMIN_API_KEY_FILE);
    if key_file.exists() {
        return Ok(None);
    }
    let admin = first_admin(
        target,
        BOOTSTRAP_TENANT,
        ADMIN_PRINCIPAL,
        "coffer up bootstrap",
    )
    .await?;
    crate::layout::write_private(&key_file, &format!("{}\n", admin.key.expose_secret()))?;
    Ok(Some(admin.key))
}

/// What [`first_admin`] made.
#[derive(Debug)]
pub struct FirstAdmin {
    /// The API key of the admin service account (shown once, never stored by Coffer).
    pub key: SecretString,
    /// Whether the tenant was created now (it may have existed).
    pub created_tenant: bool,
    /// Whether the service account was created now.
    pub created_principal: bool,
}

/// Creates `tenant` (unless it exists), a service account `principal` with `org_admin` in it
/// (unless it exists), and a new API key for it, with the operator certificate alone: the
/// first admin of a tenant, in production or in `coffer up`.
///
/// # Errors
/// If a call fails (an existing tenant or principal is not a failure).
pub async fn first_admin(
    target: &Target,
    tenant: &str,
    principal: &str,
    key_name: &str,
) -> anyhow::Result<FirstAdmin> {
    let mut client = target.connect().await?;
    let existed = |status: &tonic::Status| status.code() == tonic::Code::AlreadyExists;
    let created_tenant = match client
        .create_tenant(pb::CreateTenantRequest {
            tenant_id: tenant.to_owned(),
            display_name: tenant.to_owned(),
        })
        .await
    {
        Ok(_) => true,
        Err(status) if existed(&status) => false,
        Err(status) => return Err(status).context(format!("creating tenant {tenant}")),
    };
    let created_principal = match client
        .create_principal(pb::CreatePrincipalRequest {
            parent: format!("tenants/{tenant}"),
            principal_id: principal.to_owned(),
            kind: pb::PrincipalKind::ServiceAccount as i32,
            password: String::new(),
            roles: vec!["org_admin".to_owned()],
            scopes: Vec::new(),
        })
        .await
    {
        Ok(_) => true,
        Err(status) if existed(&status) => false,
        Err(status) => return Err(status).context(format!("creating service account {principal}")),
    };
    let key = client
        .create_api_key(pb::CreateApiKeyRequest {
            parent: format!("tenants/{tenant}"),
            principal: format!("tenants/{tenant}/principals/{principal}"),
            display_name: key_name.to_owned(),
            scopes: Vec::new(),
            ttl: None,
        })
        .await
        .context("creating the admin API key")?
        .into_inner()
        .key;
    Ok(FirstAdmin {
        key: SecretString::from(key),
        created_tenant,
        created_principal,
    })
}

/// The default data directory's admin key file, for messages.
pub fn admin_key_file(data_dir: &Path) -> PathBuf {
    data_dir.join(ADMIN_API_KEY_FILE)
}

/// Whole seconds as a `google.protobuf.Duration`.
fn seconds(seconds: u64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(seconds).unwrap_or(i64::MAX),
        nanos: 0,
    }
}

// === the `coffer apikey` and `coffer token` command lines ===

/// `coffer apikey ...`: API keys of a tenant, through auth-service.
#[derive(Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key; it is printed once.
    Create {
        /// Where the service is and how to authenticate.
        #[command(flatten)]
        target: TargetArgs,
        /// Tenant id.
        #[arg(long, default_value = BOOTSTRAP_TENANT)]
        tenant: String,
        /// Owner principal id (default: the caller).
        #[arg(long)]
        principal: Option<String>,
        /// Space-separated scopes (default: all of the owner's).
        #[arg(long, default_value = "")]
        scopes: String,
        /// Lifetime in seconds (0: no expiry).
        #[arg(long, default_value_t = 0)]
        ttl: u64,
        /// A label.
        #[arg(long, default_value = "")]
        display_name: String,
    },
    /// List a tenant's keys (never their secrets).
    List {
        /// Where the service is and how to authenticate.
        #[command(flatten)]
        target: TargetArgs,
        /// Tenant id.
        #[arg(long, default_value = BOOTSTRAP_TENANT)]
        tenant: String,
    },
    /// Revoke a key, e.g. `tenants/default/apiKeys/AbC...`.
    Revoke {
        /// Where the service is and how to authenticate.
        #[command(flatten)]
        target: TargetArgs,
        /// The key's resource name.
        name: String,
    },
    /// Give a key a new secret, keeping the old one valid for a grace period.
    Roll {
        /// Where the service is and how to authenticate.
        #[command(flatten)]
        target: TargetArgs,
        /// The key's resource name.
        name: String,
        /// Seconds the old secret stays valid (at most 604800).
        #[arg(long, default_value_t = 0)]
        grace: u64,
    },
}

/// `coffer token ...`: access tokens.
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Introspect a token read from standard input.
    Introspect {
        /// Where the service is and how to authenticate.
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// Which auth-service, and the credentials to call it with.
#[derive(Args, Clone)]
pub struct TargetArgs {
    /// Data directory of `coffer up` or `coffer certs init` (for the operator certificate
    /// and the admin key), unless --cert, --key and --ca are given.
    #[arg(long, default_value = "./coffer-data")]
    pub data_dir: PathBuf,
    /// auth-service address, HOST:PORT (its certificate must carry HOST).
    #[arg(long, default_value = "127.0.0.1:50052")]
    pub auth_addr: String,
    /// Operator client certificate (PEM), from your own PKI.
    #[arg(long, requires_all = ["key", "ca"])]
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires_all = ["cert", "ca"])]
    pub key: Option<PathBuf>,
    /// The CA the services' certificates chain to (PEM).
    #[arg(long, requires_all = ["cert", "key"])]
    pub ca: Option<PathBuf>,
    /// File holding the bearer API key, when `$COFFER_API_KEY` is unset
    /// (default: DATA_DIR/admin-api-key).
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
}

impl TargetArgs {
    /// The target these arguments name.
    pub fn target(self) -> Target {
        let tls = match (self.cert, self.key, self.ca) {
            (Some(cert), Some(key), Some(ca)) => Some(TlsFiles { cert, key, ca }),
            _ => None,
        };
        Target {
            data_dir: self.data_dir,
            auth_addr: self.auth_addr,
            tls,
            api_key_file: self.api_key_file,
        }
    }
}

/// Runs a `coffer apikey` subcommand; its output.
///
/// # Errors
/// If the call is refused.
pub async fn run(command: ApiKeyCommand) -> anyhow::Result<String> {
    match command {
        ApiKeyCommand::Create {
            target,
            tenant,
            principal,
            scopes,
            ttl,
            display_name,
        } => {
            let target = target.target();
            create_api_key(
                &target,
                &tenant,
                principal.as_deref(),
                &scopes,
                ttl,
                &display_name,
            )
            .await
        }
        ApiKeyCommand::List { target, tenant } => list_api_keys(&target.target(), &tenant).await,
        ApiKeyCommand::Revoke { target, name } => revoke_api_key(&target.target(), &name).await,
        ApiKeyCommand::Roll {
            target,
            name,
            grace,
        } => roll_api_key(&target.target(), &name, grace).await,
    }
}
