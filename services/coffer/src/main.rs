//! `coffer`: run the dev stack, issue dev certificates.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use coffer::{bench, layout, up};

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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Up {
            data_dir,
            listen,
            auth_listen,
        } => {
            run_up(up::Options {
                data_dir,
                listen,
                auth_listen,
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
                .map(|reports| print!("{}", bench::render(&reports, &options)))
        }
        Command::Certs {
            command: CertsCommand::Issue { name, data_dir },
        } => layout::issue_client_certificate(&data_dir, &name).map(|files| {
            println!(
                "certificate: {}\nprivate key: {}",
                files.cert.display(),
                files.key.display()
            );
        }),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("coffer: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_up(options: up::Options) -> anyhow::Result<()> {
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
    println!("key-service listening on {}", running.key_service_addr);
    println!("auth-service listening on {}", running.auth_service_addr);
    println!("try: {}", running.grpcurl_command(running.key_service_addr));
    tokio::select! {
        error = running.failed() => return Err(error),
        () = signal.recv() => {}
    }
    let outcome = match tokio::time::timeout(SHUTDOWN_GRACE, running.shutdown()).await {
        Ok(outcome) => outcome,
        Err(_) => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "shutdown grace period expired");
            Ok(())
        }
    };
    telemetry.shutdown();
    outcome
}

/// How long `coffer up` waits for in-flight calls after Ctrl-C.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
