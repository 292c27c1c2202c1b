//! `coffer`: run the dev stack, issue dev certificates, manage API keys and tokens.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use coffer::{admin, bench, cred, layout, up};
use secrecy::ExposeSecret as _;

#[derive(Parser)]
#[command(
    name = "coffer",
    version,
    about = "Coffer: secrets infrastructure for MCP deployments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole stack in this process on embedded defaults (development only).
    Up {
        /// Data directory: dev CA, certificates, dev root key, SQLite files.
        #[arg(long, default_value = "./coffer-data")]
        data_dir: PathBuf,
        /// Address of the key-service (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: SocketAddr,
        /// Address of the auth-service.
        #[arg(long, default_value = "127.0.0.1:50052")]
        auth_listen: SocketAddr,
        /// Address of the credential-service.
        #[arg(long, default_value = "127.0.0.1:50053")]
        credential_listen: SocketAddr,
        /// Seconds each service may drain its in-flight calls after Ctrl-C.
        #[arg(long, default_value_t = 10)]
        shutdown_grace: u64,
    },
    /// Measure key-service throughput and latency over mTLS against a same-run baseline.
    Bench {
        /// Seconds per workload.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Concurrent callers per workload.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Plaintext size for Encrypt/Decrypt, in bytes (at most 65536).
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(0..=65536))]
        payload: u32,
    },
    /// Dev CA certificates.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Log in with a password read from standard input; prints the tokens.
    Login {
        #[command(flatten)]
        target: TargetArgs,
        /// Tenant id.
        #[arg(long, default_value = layout::BOOTSTRAP_TENANT)]
        tenant: String,
        /// The user's principal id.
        #[arg(long)]
        username: String,
    },
    /// API keys (the bearer is `$COFFER_API_KEY` or `--api-key-file`).
    Apikey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// MCP credentials (the bearer is `$COFFER_API_KEY` or `--api-key-file`).
    Cred {
        #[command(subcommand)]
        command: CredCommand,
    },
    /// Seal one value read from standard input to the credential-service's sealing key;
    /// prints `{"ciphertext": ..., "kid": ...}` for a `sealed_env` entry.
    Seal {
        #[command(flatten)]
        target: CredTargetArgs,
    },
}

#[derive(Subcommand)]
enum CredCommand {
    /// Create a credential. `--sealed NAME` reads NAME's value from stdin (a line each).
    Create {
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
        #[command(flatten)]
        target: CredTargetArgs,
        /// Id or `tenants/{t}/credentials/{id}`.
        name: String,
    },
    /// List credentials (names of their variables, never values).
    List {
        #[command(flatten)]
        target: CredTargetArgs,
        /// Only this MCP server's.
        #[arg(long, default_value = "")]
        server_id: String,
    },
    /// Change entries, given the row version last read.
    Update {
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
        #[command(flatten)]
        target: CredTargetArgs,
        /// Id or `tenants/{t}/credentials/{id}`.
        name: String,
    },
    /// Delete a credential.
    Delete {
        #[command(flatten)]
        target: CredTargetArgs,
        /// Id or `tenants/{t}/credentials/{id}`.
        name: String,
    },
    /// Check that variables are present and non-empty, without revealing them.
    Validate {
        #[command(flatten)]
        target: CredTargetArgs,
        /// Id or `tenants/{t}/credentials/{id}`.
        name: String,
        /// A required variable (repeatable).
        #[arg(long)]
        require: Vec<String>,
    },
}

#[derive(Args)]
struct CredTargetArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// credential-service address.
    #[arg(long, default_value = "127.0.0.1:50053")]
    credential_addr: SocketAddr,
    /// Tenant id.
    #[arg(long, default_value = layout::BOOTSTRAP_TENANT)]
    tenant: String,
}

impl CredTargetArgs {
    fn target(self) -> cred::CredTarget {
        cred::CredTarget {
            target: self.target.target(),
            addr: self.credential_addr,
            tenant: self.tenant,
        }
    }
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Issue a client certificate for spiffe://coffer.local/NAME from the dev CA.
    Issue {
        /// SPIFFE path, e.g. `operator/alice` (all RPCs) or `credential-service`.
        #[arg(long)]
        name: String,
        /// Data directory of `coffer up`.
        #[arg(long, default_value = "./coffer-data")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create a key; it is printed once.
    Create {
        #[command(flatten)]
        target: TargetArgs,
        /// Tenant id.
        #[arg(long, default_value = layout::BOOTSTRAP_TENANT)]
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
        #[command(flatten)]
        target: TargetArgs,
        /// Tenant id.
        #[arg(long, default_value = layout::BOOTSTRAP_TENANT)]
        tenant: String,
    },
    /// Revoke a key, e.g. `tenants/default/apiKeys/AbC...`.
    Revoke {
        #[command(flatten)]
        target: TargetArgs,
        /// The key's resource name.
        name: String,
    },
    /// Give a key a new secret, keeping the old one valid for a grace period.
    Roll {
        #[command(flatten)]
        target: TargetArgs,
        /// The key's resource name.
        name: String,
        /// Seconds the old secret stays valid (at most 604800).
        #[arg(long, default_value_t = 0)]
        grace: u64,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Introspect a token read from standard input.
    Introspect {
        #[command(flatten)]
        target: TargetArgs,
    },
}

#[derive(Args)]
struct TargetArgs {
    /// Data directory of `coffer up` (for the operator certificate and the admin key).
    #[arg(long, default_value = "./coffer-data")]
    data_dir: PathBuf,
    /// auth-service address.
    #[arg(long, default_value = "127.0.0.1:50052")]
    auth_addr: SocketAddr,
    /// File holding the bearer API key, when `$COFFER_API_KEY` is unset
    /// (default: DATA_DIR/admin-api-key).
    #[arg(long)]
    api_key_file: Option<PathBuf>,
}

impl TargetArgs {
    fn target(self) -> admin::Target {
        admin::Target {
            data_dir: self.data_dir,
            auth_addr: self.auth_addr,
            api_key_file: self.api_key_file,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Up {
            data_dir,
            listen,
            auth_listen,
            credential_listen,
            shutdown_grace,
        } => {
            run_up(up::Options {
                data_dir,
                listen,
                auth_listen,
                credential_listen,
                shutdown_grace_period: Duration::from_secs(shutdown_grace),
            })
            .await
        }
        Command::Bench {
            seconds,
            concurrency,
            payload,
        } => {
            let options = bench::Options {
                duration: Duration::from_secs(seconds),
                concurrency,
                payload: payload as usize,
            };
            bench::run(&options)
                .await
                .map(|reports| bench::render(&reports, &options))
        }
        Command::Certs {
            command: CertsCommand::Issue { name, data_dir },
        } => layout::issue_client_certificate(&data_dir, &name).map(|files| {
            format!(
                "certificate: {}\nprivate key: {}\n",
                files.cert.display(),
                files.key.display()
            )
        }),
        Command::Login {
            target,
            tenant,
            username,
        } => admin::login(&target.target(), &tenant, &username).await,
        Command::Apikey { command } => match command {
            ApiKeyCommand::Create {
                target,
                tenant,
                principal,
                scopes,
                ttl,
                display_name,
            } => {
                let target = target.target();
                admin::create_api_key(
                    &target,
                    &tenant,
                    principal.as_deref(),
                    &scopes,
                    ttl,
                    &display_name,
                )
                .await
            }
            ApiKeyCommand::List { target, tenant } => {
                admin::list_api_keys(&target.target(), &tenant).await
            }
            ApiKeyCommand::Revoke { target, name } => {
                admin::revoke_api_key(&target.target(), &name).await
            }
            ApiKeyCommand::Roll {
                target,
                name,
                grace,
            } => admin::roll_api_key(&target.target(), &name, grace).await,
        },
        Command::Token {
            command: TokenCommand::Introspect { target },
        } => admin::introspect(&target.target()).await,
        Command::Seal { target } => cred::seal(&target.target()).await,
        Command::Cred { command } => match command {
            CredCommand::Create {
                target,
                server_id,
                template_id,
                server_name,
                env,
                sealed,
            } => {
                cred::create(
                    &target.target(),
                    &server_id,
                    &template_id,
                    &server_name,
                    &env,
                    &sealed,
                )
                .await
            }
            CredCommand::Get { target, name } => cred::get(&target.target(), &name).await,
            CredCommand::List { target, server_id } => {
                cred::list(&target.target(), &server_id).await
            }
            CredCommand::Update {
                target,
                name,
                version,
                env,
                unset,
                sealed,
            } => cred::update(&target.target(), &name, version, &env, &unset, &sealed).await,
            CredCommand::Reveal { target, name } => cred::reveal(&target.target(), &name).await,
            CredCommand::Delete { target, name } => cred::delete(&target.target(), &name).await,
            CredCommand::Validate {
                target,
                name,
                require,
            } => cred::validate(&target.target(), &name, &require).await,
        },
    };
    match outcome {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("coffer: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_up(options: up::Options) -> anyhow::Result<String> {
    let otlp_endpoint = std::env::var(coffer_telemetry::OTLP_ENDPOINT_VARIABLE).ok();
    let telemetry = coffer_telemetry::init(
        "coffer",
        coffer_telemetry::LogFormat::Human,
        otlp_endpoint.as_deref(),
    )?;
    let signal = coffer_telemetry::ShutdownSignal::install()?;
    let mut running = up::start(&options).await?;
    eprintln!("{}", up::dev_mode_warning(&running));
    tracing::warn!("dev mode: root key and CA key are stored unprotected in the data directory");
    let target = admin::Target {
        data_dir: running.layout.data_dir.clone(),
        auth_addr: running.auth_service_addr,
        api_key_file: None,
    };
    let key_file = admin::admin_key_file(&running.layout.data_dir);
    let bootstrapped = tokio::select! {
        error = running.failed() => return Err(error),
        bootstrapped = admin::bootstrap(&target) => bootstrapped?,
    };
    println!("key-service listening on {}", running.key_service_addr);
    println!("auth-service listening on {}", running.auth_service_addr);
    println!(
        "credential-service listening on {}",
        running.credential_service_addr
    );
    match bootstrapped {
        Some(key) => println!(
            "admin API key of tenant `default` (shown once; saved to {}): {}",
            key_file.display(),
            key.expose_secret()
        ),
        None => println!(
            "admin API key of tenant `default`: see {}",
            key_file.display()
        ),
    }
    println!("try: {}", running.grpcurl_command(running.key_service_addr));
    tokio::select! {
        error = running.failed() => return Err(error),
        () = signal.recv() => {}
    }
    // Each service drains for at most the grace period (`--shutdown-grace`).
    let outcome = running.shutdown().await;
    telemetry.shutdown();
    outcome.map(|()| String::new())
}
