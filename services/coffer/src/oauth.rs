//! `coffer oauth`: the OAuth authorization server's commands: pre-registered clients (with
//! the operator certificate), and a user's grants (with the user's bearer,
//! `$COFFER_API_KEY` or `--api-key-file`).

use anyhow::Context as _;
use clap::Subcommand;
use coffer_proto::pb;
use secrecy::{ExposeSecret as _, SecretString};

use crate::admin::TargetArgs;

/// `coffer oauth ...`.
#[derive(Subcommand)]
pub enum OAuthCommand {
    /// Register an OAuth client as an operator: a public client for the authorization code
    /// grant (by default), or a confidential one; a confidential client's secret is printed
    /// once and stored nowhere.
    CreateClient {
        /// Where auth-service is and the operator certificate.
        #[command(flatten)]
        target: TargetArgs,
        /// The name the consent page shows.
        #[arg(long)]
        name: String,
        /// An exact redirect URI (repeatable): https, or http on a loopback host.
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// A confidential client (HTTP Basic with a client secret) instead of a public one.
        #[arg(long)]
        confidential: bool,
        /// A client credentials client acting as this service account
        /// (`tenants/{t}/principals/{p}`) instead of a user-facing one.
        #[arg(long, value_name = "PRINCIPAL")]
        service_account: Option<String>,
        /// The scopes a client credentials client may be granted (repeatable).
        #[arg(long = "scope", value_name = "SCOPE", requires = "service_account")]
        scopes: Vec<String>,
        /// A resource server's client instead (confidential, no grants): the resource URI of
        /// the MCP server it protects; it may introspect that resource's tokens.
        #[arg(long, value_name = "URI", conflicts_with_all = ["redirect_uris", "service_account"])]
        resource_server: Option<String>,
        /// Authenticate with RFC 7523 assertions signed by these public keys (a JWK Set file)
        /// instead of a secret (`private_key_jwt`).
        #[arg(long, value_name = "FILE", conflicts_with = "resource_server")]
        jwks_file: Option<std::path::PathBuf>,
    },
    /// The clients you allowed (your bearer's user): name, client, resource, scopes.
    Grants {
        /// Where auth-service is, the certificate, and the bearer.
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Withdraw a grant: its refresh tokens are revoked at once.
    RevokeGrant {
        /// Where auth-service is, the certificate, and the bearer.
        #[command(flatten)]
        target: TargetArgs,
        /// `tenants/{t}/principals/{p}/grants/{id}` (from `coffer oauth grants`).
        name: String,
    },
}

/// Runs a `coffer oauth` subcommand; its output (`client_id: ...`, and `client_secret: ...`
/// for a confidential client).
///
/// # Errors
/// If the call is refused.
pub async fn run(command: OAuthCommand) -> anyhow::Result<String> {
    match command {
        OAuthCommand::CreateClient {
            target,
            name,
            redirect_uris,
            confidential,
            service_account,
            scopes,
            resource_server,
            jwks_file,
        } => {
            let jwks = jwks_file
                .map(|file| {
                    std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))
                })
                .transpose()?;
            create_client(
                target,
                ClientSpec {
                    name,
                    redirect_uris,
                    confidential,
                    service_account,
                    scopes,
                    resource_server,
                    jwks,
                },
            )
            .await
        }
        OAuthCommand::Grants { target } => {
            let target = target.target();
            let grants = target
                .connect()
                .await?
                .list_grants(target.authorized(pb::ListGrantsRequest::default())?)
                .await
                .map_err(|status| anyhow::anyhow!("{}", status.message()))
                .context("ListGrants")?
                .into_inner()
                .grants;
            Ok(grants
                .iter()
                .map(|grant| {
                    format!(
                        "{}\t{}\t{}\t{}\n",
                        grant.name,
                        grant.client_name,
                        grant.resource,
                        grant.scopes.join(" ")
                    )
                })
                .collect())
        }
        OAuthCommand::RevokeGrant { target, name } => {
            let target = target.target();
            let revoked = target
                .connect()
                .await?
                .revoke_grant(target.authorized(pb::RevokeGrantRequest {
                    name,
                    session: String::new(),
                })?)
                .await
                .map_err(|status| anyhow::anyhow!("{}", status.message()))
                .context("RevokeGrant")?
                .into_inner();
            Ok(format!(
                "revoked {} ({})\n",
                revoked.name, revoked.client_name
            ))
        }
    }
}

/// What `coffer oauth create-client` asks for.
struct ClientSpec {
    name: String,
    redirect_uris: Vec<String>,
    confidential: bool,
    service_account: Option<String>,
    scopes: Vec<String>,
    resource_server: Option<String>,
    jwks: Option<String>,
}

/// `coffer oauth create-client`.
async fn create_client(target: TargetArgs, spec: ClientSpec) -> anyhow::Result<String> {
    let ClientSpec {
        name,
        redirect_uris,
        confidential,
        service_account,
        scopes,
        resource_server,
        jwks,
    } = spec;
    let credentials = service_account.is_some();
    let method = if jwks.is_some() {
        pb::TokenEndpointAuthMethod::PrivateKeyJwt
    } else if confidential || credentials || resource_server.is_some() {
        pb::TokenEndpointAuthMethod::ClientSecretBasic
    } else {
        pb::TokenEndpointAuthMethod::None
    };
    let created = target
        .target()
        .connect()
        .await?
        .create_client(pb::CreateClientRequest {
            client_name: name,
            redirect_uris,
            grant_types: if credentials {
                vec!["client_credentials".to_owned()]
            } else {
                Vec::new()
            },
            token_endpoint_auth_method: method.into(),
            principal: service_account.unwrap_or_default(),
            scopes,
            resource_server: resource_server.unwrap_or_default(),
            jwks: jwks.unwrap_or_default(),
        })
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))
        .context("CreateClient")?
        .into_inner();
    let client = created.client.context("CreateClient answered no client")?;
    let secret = SecretString::from(created.client_secret);
    let mut output = format!("client_id: {}\n", client.client_id);
    if !secret.expose_secret().is_empty() {
        output.push_str(&format!(
            "client_secret: {}\n(shown once: Coffer keeps only its hash)\n",
            secret.expose_secret()
        ));
    }
    Ok(output)
}
