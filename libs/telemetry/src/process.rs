//! The shared `main` of every service binary, after its configuration is parsed: set up
//! logging and tracing, install the signal handlers, bind, serve until Ctrl-C or SIGTERM, then
//! drain in-flight calls for at most the grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::{LogFormat, ShutdownSignal};

/// What a service binary runs with.
#[derive(Debug, Clone)]
pub struct Service {
    /// The binary's name, for logs and the OpenTelemetry `service.name`.
    pub name: &'static str,
    /// Log line format.
    pub log_format: LogFormat,
    /// OTLP collector, if any.
    pub otlp_endpoint: Option<String>,
    /// Address to bind.
    pub listen: SocketAddr,
    /// Longest wait for in-flight calls after a stop signal.
    pub shutdown_grace_period: Duration,
}

/// A server's failure, as the process reports it.
pub trait Failure: std::fmt::Display {
    /// Whether the failure is the operator's configuration (for example a root key that does
    /// not match the database): the process then exits with [`EX_USAGE`] rather than a
    /// generic failure, so a supervisor does not restart it in a loop.
    fn is_misconfiguration(&self) -> bool;
}

/// A future that resolves when the server should stop.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs `serve(listener, shutdown)` as the process's server and returns the exit code:
/// success after a clean drain; failure if set-up fails, the server fails, or the drain
/// outlasts the grace period (with a warning).
pub async fn run<F, Fut, E>(service: Service, serve: F) -> ExitCode
where
    F: FnOnce(TcpListener, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Failure + Send + 'static,
{
    let name = service.name;
    let telemetry = match crate::init(name, service.log_format, service.otlp_endpoint.as_deref()) {
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
    let listener = match TcpListener::bind(service.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(listen = %service.listen, %error, "cannot bind");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(listen = %service.listen, "{name} starting");
    let grace = service.shutdown_grace_period;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(serve(
        listener,
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
    telemetry.shutdown();
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(error)) if error.is_misconfiguration() => {
            tracing::error!(%error, "{name}: invalid configuration");
            eprintln!("{name}: invalid configuration: {error}");
            ExitCode::from(EX_USAGE)
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "{name} failed");
            ExitCode::FAILURE
        }
        Err(join_error) => {
            tracing::error!(%join_error, "{name} task failed");
            ExitCode::FAILURE
        }
    }
}

/// EX_USAGE from sysexits.h: the configuration is wrong.
pub const EX_USAGE: u8 = 64;
