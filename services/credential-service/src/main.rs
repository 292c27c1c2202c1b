//! The credential-service binary, configured by environment and an optional TOML file
//! (`coffer-credential-service [CONFIG.toml]`); see `config.rs` for every setting.

use std::process::ExitCode;

use coffer_credential_service::{Config, serve_with_metrics};
use coffer_telemetry::process::{self, EX_USAGE, Service};

#[tokio::main]
async fn main() -> ExitCode {
    let file = std::env::args_os().nth(1).map(std::path::PathBuf::from);
    let config = match Config::load(file.as_deref()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("coffer-credential-service: invalid configuration:\n{errors}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let service = Service {
        name: "coffer-credential-service",
        log_format: config.log_format,
        otlp_endpoint: config.otlp_endpoint.clone(),
        listen: config.listen,
        shutdown_grace_period: config.shutdown_grace_period,
    };
    let metrics = match config.metrics_listen {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => Some(listener),
            Err(error) => {
                eprintln!(
                    "coffer-credential-service: cannot bind the metrics address {addr}: {error}"
                );
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    process::run(service, |listener, shutdown| {
        serve_with_metrics(config, listener, metrics, shutdown)
    })
    .await
}
