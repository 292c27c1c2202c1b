//! The whole `main` of a service binary: read the configuration (exit 64 listing every
//! problem), set up logging and tracing, install the signal handlers, bind, serve until Ctrl-C
//! or SIGTERM, then drain in-flight calls for at most the grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;

use coffer_config::ConfigErrors;
use coffer_telemetry::ShutdownSignal;
use tokio::net::TcpListener;

/// EX_USAGE from sysexits.h: the configuration is wrong.
pub const EX_USAGE: u8 = 64;

/// EX_UNAVAILABLE from sysexits.h: a dependency (the database, another service) cannot be
/// reached at start-up; restarting later may succeed.
pub const EX_UNAVAILABLE: u8 = 69;

/// A server's failure, as the process reports it: on stderr and in the log with its whole
/// cause chain (which database host refused, which file, which service), and as the exit code.
pub trait Failure: std::error::Error {
    /// Whether the failure is the operator's configuration (for example a root key that does
    /// not match the database): the process then exits with [`EX_USAGE`] rather than a
    /// generic failure, so a supervisor does not restart it in a loop.
    fn is_misconfiguration(&self) -> bool;

    /// Whether a dependency could not be reached at start-up: exit [`EX_UNAVAILABLE`].
    fn is_unavailable(&self) -> bool {
        false
    }
}

/// A future that resolves when the server should stop.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The sockets a service serves on, bound by its caller: the binary binds the configured
/// addresses, tests and `coffer up` bind `127.0.0.1:0`.
#[derive(Debug)]
pub struct Listeners {
    /// The gRPC listener.
    pub grpc: TcpListener,
    /// The Prometheus `/metrics` listener, if any.
    pub metrics: Option<TcpListener>,
    /// Told when start-up is over and the service accepts calls (a composition root waits
    /// for it before starting the services that depend on this one).
    pub ready: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Listeners {
    /// The gRPC listener and, if any, the metrics listener.
    pub fn new(grpc: TcpListener, metrics: Option<TcpListener>) -> Self {
        Self {
            grpc,
            metrics,
            ready: None,
        }
    }
}

impl From<TcpListener> for Listeners {
    fn from(grpc: TcpListener) -> Self {
        Self::new(grpc, None)
    }
}

/// The process main of the service binary `name`: `load` reads the configuration from the
/// optional TOML file named by the first argument and the environment, `server` picks its
/// [`crate::Config`], and `serve` runs the service. Returns the exit code: success after a
/// clean drain; [`EX_USAGE`] for a configuration problem (every one listed on stderr);
/// [`EX_UNAVAILABLE`] when a dependency cannot be reached at start-up; failure if set-up
/// fails otherwise, the server fails, or the drain outlasts the grace period.
pub async fn main<C, L, G, F, Fut, E>(name: &'static str, load: L, server: G, serve: F) -> ExitCode
where
    L: FnOnce(Option<&Path>) -> Result<C, ConfigErrors>,
    G: FnOnce(&C) -> &crate::Config,
    F: FnOnce(C, Listeners, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Failure + Send + 'static,
{
    let file = std::env::args_os().nth(1).map(PathBuf::from);
    let config = match load(file.as_deref()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{name}: invalid configuration:\n{errors}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let settings = server(&config);
    let (listen, metrics_listen, grace) = (
        settings.listen,
        settings.metrics_listen,
        settings.shutdown_grace_period,
    );
    let telemetry = match coffer_telemetry::init(
        name,
        settings.log_format,
        settings.otlp_endpoint.as_deref(),
    ) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("{name}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let signal = match ShutdownSignal::install() {
        Ok(signal) => signal,
        Err(error) => {
            tracing::error!(%error, "cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    let listeners = match bind(listen, metrics_listen).await {
        Ok(listeners) => listeners,
        Err((addr, error)) => {
            tracing::error!(listen = %addr, %error, "cannot bind");
            eprintln!("{name}: cannot bind {addr}: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The bound addresses (a configured port 0 is the port the system picked).
    let bound = |listener: &TcpListener| {
        listener
            .local_addr()
            .map_or_else(|_| String::new(), |a| a.to_string())
    };
    let metrics_bound = listeners.metrics.as_ref().map(bound);
    tracing::info!(
        listen = %bound(&listeners.grpc),
        metrics = ?metrics_bound,
        "{name} starting"
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(serve(
        config,
        listeners,
        Box::pin(async {
            let _ = stopped.await;
        }),
    ));
    let outcome = tokio::select! {
        outcome = &mut server => outcome,
        () = signal.recv() => {
            let _ = stop.send(());
            match tokio::time::timeout(grace, &mut server).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    tracing::warn!(?grace, "shutdown grace period expired; abandoning calls");
                    telemetry.shutdown();
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let code = match outcome {
        Ok(Ok(())) => {
            tracing::info!("{name} stopped after draining in-flight calls");
            ExitCode::SUCCESS
        }
        Ok(Err(error)) => {
            let (code, what) = if error.is_misconfiguration() {
                (ExitCode::from(EX_USAGE), "invalid configuration")
            } else if error.is_unavailable() {
                (
                    ExitCode::from(EX_UNAVAILABLE),
                    "a dependency is unavailable",
                )
            } else {
                (ExitCode::FAILURE, "failed")
            };
            let cause = coffer_telemetry::error_chain(&error);
            tracing::error!(error = %cause, "{name}: {what}");
            eprintln!("{name}: {what}: {cause}");
            code
        }
        Err(join_error) => {
            tracing::error!(%join_error, "{name} task failed");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}

/// Binds the configured gRPC and metrics addresses.
async fn bind(
    listen: SocketAddr,
    metrics_listen: Option<SocketAddr>,
) -> Result<Listeners, (SocketAddr, std::io::Error)> {
    let grpc = TcpListener::bind(listen).await.map_err(|e| (listen, e))?;
    let metrics = match metrics_listen {
        Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| (addr, e))?),
        None => None,
    };
    Ok(Listeners::new(grpc, metrics))
}
