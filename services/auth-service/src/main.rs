//! The auth-service binary, configured by environment and an optional TOML file
//! (`coffer-auth-service [CONFIG.toml]`); see `config.rs` for every setting.

use std::process::ExitCode;

use coffer_auth_service::{Config, serve};
use tokio::net::TcpListener;

/// EX_USAGE from sysexits.h: the configuration is wrong.
const EX_USAGE: u8 = 64;

#[tokio::main]
async fn main() -> ExitCode {
    let file = std::env::args_os().nth(1).map(std::path::PathBuf::from);
    let config = match Config::load(file.as_deref()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("coffer-auth-service: invalid configuration:\n{errors}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let telemetry = match coffer_telemetry::init(
        "coffer-auth-service",
        config.log_format,
        config.otlp_endpoint.as_deref(),
    ) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("coffer-auth-service: {error}");
            return ExitCode::FAILURE;
        }
    };
    let signal = match coffer_telemetry::ShutdownSignal::install() {
        Ok(signal) => signal,
        Err(error) => {
            tracing::error!(%error, "cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(listen = %config.listen, %error, "cannot bind");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(listen = %config.listen, "auth-service starting");
    let grace = config.shutdown_grace_period;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(serve(config, listener, async {
        let _ = stopped.await;
    }));
    let outcome = tokio::select! {
        outcome = &mut server => outcome,
        () = signal.recv() => {
            let _ = stop.send(());
            match tokio::time::timeout(grace, &mut server).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    tracing::warn!(?grace, "shutdown grace period expired; abandoning calls");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    telemetry.shutdown();
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(error)) => {
            tracing::error!(error = %error, "auth-service failed");
            ExitCode::FAILURE
        }
        Err(join_error) => {
            tracing::error!(%join_error, "auth-service task failed");
            ExitCode::FAILURE
        }
    }
}
