//! `coffer cred` and `coffer seal`: MCP credentials from the command line.
//!
//! Secret values never go on the command line (shell history, `ps`): `--sealed NAME` reads the
//! value of NAME from standard input (one line per `--sealed`, in order), seals it locally to
//! the credential-service's sealing key, and sends only the sealed box. `--env NAME=VALUE` is
//! for values that are not secret.

use std::collections::HashMap;
use std::io::BufRead as _;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::{Args, Subcommand};
use coffer_proto::pb;
use coffer_proto::pb::credential_service_client::CredentialServiceClient;
use secrecy::{ExposeSecret as _, SecretString};
use tonic::transport::Channel;

use crate::admin::{Target, TargetArgs};
use crate::layout;

/// What `coffer cred` and `coffer seal` talk to.
#[derive(Debug, Clone)]
pub struct CredTarget {
    /// Certificates and bearer.
    pub target: Target,
    /// The credential-service address, `HOST:PORT`.
    pub addr: String,
    /// Tenant id.
    pub tenant: String,
}

impl CredTarget {
    async fn client(&self) -> anyhow::Result<CredentialServiceClient<Channel>> {
        Ok(CredentialServiceClient::new(
            self.target
                .channel(&self.addr, "credential-service")
                .await?,
        ))
    }

    fn name(&self, id_or_name: &str) -> String {
        if id_or_name.starts_with("tenants/") {
            id_or_name.to_owned()
        } else {
            format!("tenants/{}/credentials/{id_or_name}", self.tenant)
        }
    }

    /// Seals each of `names`' values, read one per line from stdin, to the service's key.
    async fn seal_stdin(
        &self,
        names: &[String],
    ) -> anyhow::Result<HashMap<String, pb::SealedValue>> {
        if names.is_empty() {
            return Ok(HashMap::new());
        }
        let key = self.sealing_key().await?;
        let mut lines = std::io::stdin().lock().lines();
        let mut sealed = HashMap::new();
        for name in names {
            let value = SecretString::from(
                lines
                    .next()
                    .with_context(|| format!("no value for {name} on standard input"))??,
            );
            sealed.insert(name.clone(), seal_with(&key, value.expose_secret())?);
        }
        Ok(sealed)
    }

    async fn sealing_key(&self) -> anyhow::Result<pb::SealingKey> {
        let request = pb::GetSealingKeyRequest {
            parent: format!("tenants/{}", self.tenant),
        };
        Ok(self
            .client()
            .await?
            .get_sealing_key(self.target.authorized(request)?)
            .await?
            .into_inner())
    }
}

fn seal_with(key: &pb::SealingKey, value: &str) -> anyhow::Result<pb::SealedValue> {
    let public_key: [u8; 32] = STANDARD
        .decode(&key.public_key)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .context("the sealing key is not a base64 X25519 key")?;
    let sealed = coffer_crypto::sealed::seal(&public_key, value.as_bytes())?;
    Ok(pb::SealedValue {
        ciphertext: STANDARD.encode(sealed),
        kid: key.kid.clone(),
    })
}

/// Parses `NAME=VALUE` pairs.
///
/// # Errors
/// For an entry without `=`.
pub fn parse_env(pairs: &[String]) -> anyhow::Result<HashMap<String, String>> {
    pairs
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--env takes NAME=VALUE, got `{pair}`"))
        })
        .collect()
}

/// `coffer seal`: seals one value from stdin; prints `{"ciphertext", "kid"}` JSON.
///
/// # Errors
/// If the key cannot be fetched or stdin is empty.
pub async fn seal(target: &CredTarget) -> anyhow::Result<String> {
    let value = crate::admin::secret_from_stdin("value")?;
    let key = target.sealing_key().await?;
    let sealed = seal_with(&key, value.expose_secret())?;
    Ok(format!(
        "{}\n",
        serde_json::json!({ "ciphertext": sealed.ciphertext, "kid": sealed.kid })
    ))
}

/// `coffer cred create`.
///
/// # Errors
/// If the call is refused.
pub async fn create(
    target: &CredTarget,
    server_id: &str,
    template_id: &str,
    server_name: &str,
    env: &[String],
    sealed: &[String],
) -> anyhow::Result<String> {
    let request = pb::CreateCredentialRequest {
        parent: format!("tenants/{}", target.tenant),
        server_id: server_id.to_owned(),
        template_id: template_id.to_owned(),
        server_name: server_name.to_owned(),
        env: parse_env(env)?,
        configured_integrations: Vec::new(),
        expire_time: None,
        sealed_env: target.seal_stdin(sealed).await?,
        opaque: None,
    };
    let created = target
        .client()
        .await?
        .create_credential(target.target.authorized(request)?)
        .await?;
    Ok(render(&created.into_inner()))
}

/// `coffer cred get`.
///
/// # Errors
/// If the call is refused.
pub async fn get(target: &CredTarget, name: &str) -> anyhow::Result<String> {
    let request = pb::GetCredentialRequest {
        name: target.name(name),
    };
    let credential = target
        .client()
        .await?
        .get_credential(target.target.authorized(request)?)
        .await?;
    Ok(render(&credential.into_inner()))
}

/// `coffer cred list`.
///
/// # Errors
/// If the call is refused.
pub async fn list(target: &CredTarget, server_id: &str) -> anyhow::Result<String> {
    let mut client = target.client().await?;
    let mut out = String::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListCredentialsRequest {
            parent: format!("tenants/{}", target.tenant),
            page_size: 100,
            page_token: page_token.clone(),
            server_id: server_id.to_owned(),
            template_id: String::new(),
        };
        let page = client
            .list_credentials(target.target.authorized(request)?)
            .await?
            .into_inner();
        for credential in &page.credentials {
            let mut names: Vec<&String> = credential.env.keys().collect();
            names.sort();
            let names: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
            out.push_str(&format!(
                "{}\t{}\tv{}\t{}\n",
                credential.name,
                credential.server_id,
                credential.row_version,
                names.join(",")
            ));
        }
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
}

/// `coffer cred update`.
///
/// # Errors
/// If the call is refused (ABORTED when `version` is stale).
pub async fn update(
    target: &CredTarget,
    name: &str,
    version: u64,
    env: &[String],
    unset: &[String],
    sealed: &[String],
) -> anyhow::Result<String> {
    let request = pb::UpdateCredentialRequest {
        name: target.name(name),
        row_version: version,
        set_env: parse_env(env)?,
        unset_env: unset.to_vec(),
        set_sealed_env: target.seal_stdin(sealed).await?,
        set_opaque: None,
    };
    let updated = target
        .client()
        .await?
        .update_credential(target.target.authorized(request)?)
        .await?;
    Ok(render(&updated.into_inner()))
}

/// `coffer cred reveal`: the values in the clear (audited).
///
/// # Errors
/// If the call is refused.
pub async fn reveal(target: &CredTarget, name: &str) -> anyhow::Result<String> {
    let request = pb::RevealCredentialRequest {
        name: target.name(name),
    };
    let revealed = target
        .client()
        .await?
        .reveal_credential(target.target.authorized(request)?)
        .await?;
    let mut entries: Vec<(String, String)> = revealed.into_inner().env.into_iter().collect();
    entries.sort();
    Ok(entries.iter().map(|(k, v)| format!("{k}={v}\n")).collect())
}

/// `coffer cred delete`.
///
/// # Errors
/// If the call is refused.
pub async fn delete(target: &CredTarget, name: &str) -> anyhow::Result<String> {
    let name = target.name(name);
    let request = pb::DeleteCredentialRequest { name: name.clone() };
    target
        .client()
        .await?
        .delete_credential(target.target.authorized(request)?)
        .await?;
    Ok(format!("deleted: {name}\n"))
}

/// `coffer cred validate`.
///
/// # Errors
/// If the call is refused.
pub async fn validate(
    target: &CredTarget,
    name: &str,
    required: &[String],
) -> anyhow::Result<String> {
    let request = pb::ValidateCredentialRequest {
        name: target.name(name),
        required_keys: required.to_vec(),
    };
    let result = target
        .client()
        .await?
        .validate_credential(target.target.authorized(request)?)
        .await?
        .into_inner();
    Ok(format!(
        "valid: {}\nmissing: {}\n",
        result.valid,
        result.missing.join(",")
    ))
}

fn render(credential: &pb::Credential) -> String {
    let mut out = format!(
        "name: {}\nserver_id: {}\nrow_version: {}\n",
        credential.name, credential.server_id, credential.row_version
    );
    let mut entries: Vec<(&String, &String)> = credential.env.iter().collect();
    entries.sort();
    for (key, masked) in entries {
        out.push_str(&format!("env {key}: {masked}\n"));
    }
    out
}

// === the `coffer cred` command line ===

/// `coffer cred ...`: credentials of a tenant, through credential-service.
#[derive(Subcommand)]
pub enum CredCommand {
    /// Create a credential. `--sealed NAME` reads NAME's value from stdin (a line each).
    Create {
        /// Where the service is and how to authenticate.
        #[command(flatten)]
        target: CredTargetArgs,
        /// The MCP server id.
        #[arg(long)]
        server_id: String,
        /// The server template id.
        #[arg(long, default_value = "")]
        template_id: String,
        /// A display name.
        #[arg(long, default_value = "")]
        server_name: String,
        /// A non-secret entry, NAME=VALUE (repeatable).
        #[arg(long)]
        env: Vec<String>,
        /// A secret entry: its value is read from stdin and sealed locally (repeatable).
        #[arg(long)]
        sealed: Vec<String>,
    },
    /// Show a credential, masked.
    Get {
        /// Where the service is and how to authenticate.
        #[command(flatten)]
        target: CredTargetArgs,
        /// Id or `tenants/{t}/credentials/{id}`.
        name: String,
    },
    /// List credentials (names of their variables, never values).
    List {
        /// Where the service is and how to authenticate.
        #[command(flatten)]
        target: CredTargetArgs,
        /// Only this MCP server's.
        #[arg(long, default_value = "")]
        server_id: String,
    },
    /// Change entries, given the row version last read.
    Update {
        /// Where the service is and how to authenticate.
        #[command(flatten)]
        target: CredTargetArgs,
        /// Id or `tenants/{t}/credentials/{id}`.
        name: String,
        /// The row version this change is based on.
        #[arg(long)]
        version: u64,
        /// Set a non-secret entry, NAME=VALUE (repeatable).
        #[arg(long)]
        env: Vec<String>,
        /// Remove an entry (repeatable).
        #[arg(long)]
        unset: Vec<String>,
        /// Set a secret entry read from stdin, sealed locally (repeatable).
        #[arg(long)]
        sealed: Vec<String>,
    },
    /// Print the values in the clear (audited).
    Reveal {
        /// Where the service is and how to authenticate.
        #[command(flatten)]
        target: CredTargetArgs,
        /// Id or `tenants/{t}/credentials/{id}`.
        name: String,
    },
    /// Delete a credential.
    Delete {
        /// Where the service is and how to authenticate.
        #[command(flatten)]
        target: CredTargetArgs,
        /// Id or `tenants/{t}/credentials/{id}`.
        name: String,
    },
    /// Check that variables are present and non-empty, without revealing them.
    Validate {
        /// Where the service is and how to authenticate.
        #[command(flatten)]
        target: CredTargetArgs,
        /// Id or `tenants/{t}/credentials/{id}`.
        name: String,
        /// A required variable (repeatable).
        #[arg(long)]
        require: Vec<String>,
    },
}

/// Which credential-service and tenant, and the credentials to call it with.
#[derive(Args)]
pub struct CredTargetArgs {
    /// The auth-service and the bearer.
    #[command(flatten)]
    pub target: TargetArgs,
    /// credential-service address, HOST:PORT (its certificate must carry HOST).
    #[arg(long, default_value = "127.0.0.1:50053")]
    pub credential_addr: String,
    /// Tenant id.
    #[arg(long, default_value = layout::BOOTSTRAP_TENANT)]
    pub tenant: String,
}

impl CredTargetArgs {
    /// The target these arguments name.
    pub fn target(self) -> CredTarget {
        CredTarget {
            target: self.target.target(),
            addr: self.credential_addr,
            tenant: self.tenant,
        }
    }
}

/// Runs a `coffer cred` subcommand; its output.
///
/// # Errors
/// If the call is refused or the input is bad.
pub async fn run(command: CredCommand) -> anyhow::Result<String> {
    match command {
        CredCommand::Create {
            target,
            server_id,
            template_id,
            server_name,
            env,
            sealed,
        } => {
            create(
                &target.target(),
                &server_id,
                &template_id,
                &server_name,
                &env,
                &sealed,
            )
            .await
        }
        CredCommand::Get { target, name } => get(&target.target(), &name).await,
        CredCommand::List { target, server_id } => list(&target.target(), &server_id).await,
        CredCommand::Update {
            target,
            name,
            version,
            env,
            unset,
            sealed,
        } => update(&target.target(), &name, version, &env, &unset, &sealed).await,
        CredCommand::Reveal { target, name } => reveal(&target.target(), &name).await,
        CredCommand::Delete { target, name } => delete(&target.target(), &name).await,
        CredCommand::Validate {
            target,
            name,
            require,
        } => validate(&target.target(), &name, &require).await,
    }
}
