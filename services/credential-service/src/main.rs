//! The credential-service binary, configured by environment and an optional TOML file
//! (`coffer-credential-service [CONFIG.toml]`); see `config.rs` for every setting.

use std::process::ExitCode;

use coffer_credential_service::{Config, serve};

#[tokio::main]
async fn main() -> ExitCode {
    coffer_server::main(
        "coffer-credential-service",
        Config::load,
        |c| &c.server,
        serve,
    )
    .await
}
