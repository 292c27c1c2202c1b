//! The auth-service binary, configured by environment and an optional TOML file
//! (`coffer-auth-service [CONFIG.toml]`); see `config.rs` for every setting.

use std::process::ExitCode;

use coffer_auth_service::{Config, serve};

#[tokio::main]
async fn main() -> ExitCode {
    coffer_server::main("coffer-auth-service", Config::load, |c| &c.server, serve).await
}
