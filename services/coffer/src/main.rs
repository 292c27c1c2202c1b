//! `coffer`: run the dev stack, issue dev certificates, manage API keys and tokens.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use coffer::admin::{ApiKeyCommand, TargetArgs, TokenCommand};
use coffer::cred::{CredCommand, CredTargetArgs};
use coffer::oauth::OAuthCommand;
use coffer::{admin, bench, cred, layout, oauth, up};
use coffer_transport::dev_ca::{HostName, Usage};
use secrecy::{ExposeSecret as _, SecretString};

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
        /// Address of the REST gateway (plain HTTP, so a loopback address).
        #[arg(long, default_value = "127.0.0.1:8080")]
        gateway_listen: SocketAddr,
        /// A browser origin the gateway allows (CORS), e.g. `https://app.example`; repeatable,
        /// or `*` alone for any (never with credentials). Default: none.
        #[arg(long = "gateway-cors-origin")]
        gateway_cors_origins: Vec<String>,
        /// REST requests per client address per minute before 429 (0: unlimited).
        #[arg(long, default_value_t = coffer_gateway::limit::DEFAULT_PER_MINUTE)]
        gateway_rate_limit: u32,
        /// REST requests per API key per minute before 429, from any address (0: unlimited).
        #[arg(long, default_value_t = coffer_gateway::limit::DEFAULT_PER_KEY_PER_MINUTE)]
        gateway_key_rate_limit: u32,
        /// An MCP server OAuth tokens may be requested for (repeatable): `URI` or
        /// `URI=scope,scope` (scopes default to mcp:read,mcp:write,mcp:admin). Coffer's own
        /// REST API, at the gateway's URL, always is one.
        #[arg(long = "oauth-resource", value_name = "URI")]
        oauth_resources: Vec<String>,
        /// Seconds each service may drain its in-flight calls after Ctrl-C.
        #[arg(long, default_value_t = 10)]
        shutdown_grace: u64,
        /// One PostgreSQL database for the three services, each in its own schema (default:
        /// SQLite files in the data directory). Also `$COFFER_UP_DATABASE_URL`.
        #[arg(long, env = "COFFER_UP_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// key-service's key-record cache TTL and credential-service's row cache TTL (default
        /// 1s, at most 1s; `0s` reads from the database on every call): for `coffer bench`
        /// comparisons.
        #[arg(long, value_parser = parse_duration)]
        record_cache_ttl: Option<Duration>,
    },
    /// Measure every hot path over mTLS against a no-op RPC, its cryptography and OpenBao.
    Bench {
        /// Time per row and concurrency level, after a warm-up of a tenth of it (at most 10m).
        #[arg(long, default_value = "3s", value_parser = parse_row_duration)]
        duration: Duration,
        /// Concurrency levels (concurrent callers), comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64",
              value_parser = clap::value_parser!(u16).range(1..=1024))]
        concurrency: Vec<u16>,
        /// HTTP/2 connections per service that the callers share.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
        connections: u16,
        /// The small key-service payload, in bytes.
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(0..=65536))]
        payload: u32,
        /// The large key-service payload, in bytes.
        #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(0..=65536))]
        large_payload: u32,
        /// Back ends, comma-separated: `sqlite`, `postgres` (a fresh database on
        /// --postgres-url's server, dropped after).
        #[arg(long, value_delimiter = ',', default_value = "sqlite")]
        backend: Vec<BenchBackend>,
        /// The PostgreSQL server for `--backend postgres` (its database part is replaced).
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
        postgres_url: String,
        /// key-service's key-record and credential-service's row cache TTL in the child stacks
        /// (default 1s; `0s` reads from the database on every call, to measure what the caches
        /// gain).
        #[arg(long, value_parser = parse_duration, conflicts_with = "target_data_dir")]
        record_cache_ttl: Option<Duration>,
        /// Measure a `coffer up` started apart, with this data directory, instead of child
        /// stacks; start it with `--gateway-rate-limit 0 --gateway-key-rate-limit 0
        /// --oauth-resource http://127.0.0.1:9/bench-mcp` (the OAuth rows' resource).
        #[arg(long)]
        target_data_dir: Option<PathBuf>,
        /// Its key-service address.
        #[arg(long, default_value = "127.0.0.1:50051", requires = "target_data_dir")]
        key_addr: SocketAddr,
        /// Its auth-service address.
        #[arg(long, default_value = "127.0.0.1:50052", requires = "target_data_dir")]
        auth_addr: SocketAddr,
        /// Its credential-service address.
        #[arg(long, default_value = "127.0.0.1:50053", requires = "target_data_dir")]
        credential_addr: SocketAddr,
        /// Its REST gateway.
        #[arg(long, default_value = "127.0.0.1:8080", requires = "target_data_dir")]
        gateway_addr: SocketAddr,
        /// The OpenBao binary (default: `.venv/bin/bao`, then `bao` on PATH).
        #[arg(long)]
        bao: Option<PathBuf>,
        /// Leave OpenBao out.
        #[arg(long, conflicts_with = "bao")]
        no_openbao: bool,
        /// Only the rows whose `group: name` contains this (repeatable; the no-op row always
        /// runs), e.g. `--only GetCredential` to profile one path.
        #[arg(long)]
        only: Vec<String>,
        /// Run every row this many times against each stack and read its memory after each
        /// pass (the figures are the first pass's): growth per request shows as memory that
        /// keeps rising from the second pass on.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=10))]
        passes: u8,
        /// Also write JSON, Markdown and SVG into this directory (the README's are in
        /// `services/coffer/bench/results`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Dev CA certificates.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// The first admin of a tenant, with the operator certificate alone.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Log in with a password read from standard input (a user with two-step sign-in puts
    /// the code from their app, or a recovery code, on a second line); prints the tokens.
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
    /// The OAuth authorization server: pre-registered clients.
    Oauth {
        #[command(subcommand)]
        command: OAuthCommand,
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
    /// Write the services' protobuf descriptor set (every proto with its imports and the
    /// `google.api.http` annotations): what Envoy's gRPC-JSON transcoder and grpcurl without
    /// reflection read. The same bytes the gateway builds its routes from.
    DescriptorSet {
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a tenant (unless it exists), an `org_admin` service account in it (unless it
    /// exists) and an API key for it; the key is printed once and stored nowhere.
    Bootstrap {
        /// Where auth-service is and the operator certificate.
        #[command(flatten)]
        target: TargetArgs,
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// The service account's id.
        #[arg(long, default_value = layout::ADMIN_PRINCIPAL)]
        principal: String,
    },
    /// Turn a user's two-step sign-in off (their TOTP key and recovery codes), for a user
    /// who lost both their device and their codes; audited.
    RemoveTotp {
        /// Where auth-service is and the operator certificate.
        #[command(flatten)]
        target: TargetArgs,
        /// Tenant id.
        #[arg(long, default_value = layout::BOOTSTRAP_TENANT)]
        tenant: String,
        /// The user's principal id.
        #[arg(long)]
        username: String,
    },
}

/// A back end of `coffer bench`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum BenchBackend {
    Sqlite,
    Postgres,
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Issue a certificate for spiffe://coffer.local/NAME from the dev CA.
    Issue {
        /// SPIFFE path, e.g. `operator/alice` (all RPCs) or `credential-service`.
        #[arg(long)]
        name: String,
        /// A server certificate (server and client usage, valid for localhost and the
        /// --dns/--ip names), for a service; without it, a client-only certificate.
        #[arg(long)]
        server: bool,
        /// A DNS name callers dial (repeatable; needs --server).
        #[arg(long = "dns", value_name = "NAME", requires = "server")]
        dns: Vec<String>,
        /// An IP address callers dial (repeatable; needs --server).
        #[arg(long = "ip", value_name = "ADDR", requires = "server")]
        ip: Vec<std::net::IpAddr>,
        /// Data directory holding the dev CA (`coffer up` or `coffer certs init`).
        #[arg(long, default_value = "./coffer-data")]
        data_dir: PathBuf,
    },
    /// Create the dev CA and the operator's and the three services' certificates in
    /// DIR/certs, without starting anything (for services run as separate processes).
    Init {
        /// Where `certs/` goes.
        #[arg(long, default_value = "./coffer-data")]
        data_dir: PathBuf,
        /// A DNS name the services are dialled by (repeatable).
        #[arg(long = "dns", value_name = "NAME")]
        dns: Vec<String>,
        /// An IP address the services are dialled at (repeatable).
        #[arg(long = "ip", value_name = "ADDR")]
        ip: Vec<std::net::IpAddr>,
    },
}

/// A duration argument such as `0s`, `250ms` or `1s`.
fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    coffer_config::parse_duration(text).ok_or("a duration such as 0s, 250ms or 1s")
}

/// `coffer bench --duration`: positive and at most ten minutes, so a run stays bounded.
fn parse_row_duration(text: &str) -> Result<Duration, &'static str> {
    match parse_duration(text)? {
        d if d.is_zero() || d > Duration::from_secs(600) => Err("a duration from 1ms to 10m"),
        d => Ok(d),
    }
}

/// `--dns` and `--ip` as certificate host names.
fn host_names(dns: Vec<String>, ip: Vec<std::net::IpAddr>) -> Vec<HostName> {
    dns.into_iter()
        .map(HostName::Dns)
        .chain(ip.into_iter().map(HostName::Ip))
        .collect()
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
            gateway_listen,
            gateway_cors_origins,
            gateway_rate_limit,
            gateway_key_rate_limit,
            oauth_resources,
            shutdown_grace,
            database_url,
            record_cache_ttl,
        } => {
            let oauth_resources = match oauth_resources
                .iter()
                .map(|entry| coffer_auth_service::Resource::parse(entry))
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(resources) => resources,
                Err(why) => {
                    eprintln!("coffer: --oauth-resource {why}");
                    return ExitCode::from(64);
                }
            };
            let gateway_cors = match coffer_gateway::server::Cors::parse(&gateway_cors_origins) {
                Ok(cors) => cors,
                Err(why) => {
                    eprintln!("coffer: --gateway-cors-origin {why}");
                    return ExitCode::from(64);
                }
            };
            run_up(up::Options {
                data_dir,
                listen,
                auth_listen,
                credential_listen,
                gateway_listen,
                gateway_cors,
                gateway_rate_limit,
                gateway_key_rate_limit,
                oauth_resources,
                oauth_document_allowance: None,
                shutdown_grace_period: Duration::from_secs(shutdown_grace),
                record_cache_ttl,
                database_url: database_url.map(SecretString::from),
            })
            .await
        }
        Command::Bench {
            duration,
            concurrency,
            connections,
            payload,
            large_payload,
            backend,
            postgres_url,
            record_cache_ttl,
            target_data_dir,
            key_addr,
            auth_addr,
            credential_addr,
            gateway_addr,
            bao,
            no_openbao,
            only,
            passes,
            out,
        } => {
            let options = bench::Options {
                duration,
                concurrency: concurrency.into_iter().map(usize::from).collect(),
                connections: usize::from(connections),
                payloads: bench::rows::Payloads {
                    small: payload as usize,
                    large: large_payload as usize,
                },
                backends: backend
                    .into_iter()
                    .map(|b| match b {
                        BenchBackend::Sqlite => bench::stack::Backend::Sqlite,
                        BenchBackend::Postgres => {
                            bench::stack::Backend::Postgres(postgres_url.clone())
                        }
                    })
                    .collect(),
                record_cache_ttl,
                target: target_data_dir.map(|data_dir| bench::Target {
                    data_dir,
                    key_service: key_addr,
                    auth_service: auth_addr,
                    credential_service: credential_addr,
                    gateway: gateway_addr,
                }),
                bao,
                no_openbao,
                only,
                passes: usize::from(passes),
            };
            match bench::run(options).await {
                Ok(results) => {
                    let mut text = results.render();
                    match out.map(|dir| results.write(&dir)).transpose() {
                        Ok(written) => {
                            for path in written.unwrap_or_default() {
                                text.push_str(&format!("written: {}\n", path.display()));
                            }
                            Ok(text)
                        }
                        Err(error) => Err(error),
                    }
                }
                Err(error) => Err(error),
            }
        }
        Command::Certs {
            command:
                CertsCommand::Issue {
                    name,
                    server,
                    dns,
                    ip,
                    data_dir,
                },
        } => {
            let usage = if server {
                Usage::Service
            } else {
                Usage::Client
            };
            layout::issue_certificate(&data_dir, &name, usage, &host_names(dns, ip)).map(|files| {
                format!(
                    "certificate: {}\nprivate key: {}\nCA: {}\n",
                    files.cert.display(),
                    files.key.display(),
                    files.ca.display()
                )
            })
        }
        Command::Certs {
            command: CertsCommand::Init { data_dir, dns, ip },
        } => layout::stack_certificates(&data_dir, &host_names(dns, ip)).map(|certs| {
            let mut out = format!("CA: {}\n", certs.certs_dir.join("ca.pem").display());
            for (who, files) in [
                (
                    "operator (spiffe://coffer.local/operator/admin)",
                    &certs.operator,
                ),
                ("key-service", &certs.key_service),
                ("auth-service", &certs.auth_service),
                ("credential-service", &certs.credential_service),
            ] {
                out.push_str(&format!(
                    "{who}: {} {}\n",
                    files.cert.display(),
                    files.key.display()
                ));
            }
            out.push_str(
                "Copy to each host only its own .pem, -key.pem and ca.pem; ca-key.pem signs every \
                 certificate and stays with whoever issues them.\n",
            );
            out
        }),
        Command::Admin {
            command:
                AdminCommand::RemoveTotp {
                    target,
                    tenant,
                    username,
                },
        } => admin::remove_totp(&target.target(), &tenant, &username).await,
        Command::Admin {
            command:
                AdminCommand::Bootstrap {
                    target,
                    tenant,
                    principal,
                },
        } => admin::first_admin(
            &target.target(),
            &tenant,
            &principal,
            "coffer admin bootstrap",
        )
        .await
        .map(|admin| {
            let tenant_state = if admin.created_tenant {
                "created"
            } else {
                "existed"
            };
            // An existing account keeps its roles: the new key holds what the account holds
            // now, which may be less than org_admin if it was demoted.
            let account = if admin.created_principal {
                "org_admin service account, created"
            } else {
                "existed; its roles are unchanged"
            };
            format!(
                "tenant: tenants/{tenant} ({tenant_state})\nadmin: \
                 tenants/{tenant}/principals/{principal} ({account})\nAPI key (shown once; \
                 Coffer keeps only its hash): {}\n",
                admin.key.expose_secret()
            )
        }),
        Command::Login {
            target,
            tenant,
            username,
        } => admin::login(&target.target(), &tenant, &username).await,
        Command::Apikey { command } => admin::run(command).await,
        Command::Oauth { command } => oauth::run(command).await,
        Command::Token {
            command: TokenCommand::Introspect { target },
        } => admin::introspect(&target.target()).await,
        Command::Seal { target } => cred::seal(&target.target()).await,
        Command::DescriptorSet { out } => std::fs::write(&out, coffer_proto::FILE_DESCRIPTOR_SET)
            .map(|()| {
                format!(
                    "wrote {} ({} bytes)\n",
                    out.display(),
                    coffer_proto::FILE_DESCRIPTOR_SET.len()
                )
            })
            .map_err(|error| anyhow::anyhow!("cannot write {}: {error}", out.display())),
        Command::Cred { command } => cred::run(command).await,
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
        auth_addr: running.auth_service_addr.to_string(),
        tls: None,
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
    println!("gateway listening on http://{}", running.gateway_addr);
    println!(
        "REST API: http://{0}/openapi.json (OpenAPI 3.1), http://{0}/docs (for a person)",
        running.gateway_addr
    );
    println!("try: {}", running.grpcurl_command(running.key_service_addr));
    println!("try: {}", running.curl_command());
    tokio::select! {
        error = running.failed() => return Err(error),
        () = signal.recv() => {}
    }
    // Each service drains for at most the grace period (`--shutdown-grace`).
    let outcome = running.shutdown().await;
    telemetry.shutdown();
    outcome.map(|()| String::new())
}
