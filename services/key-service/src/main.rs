//! The key-service binary, configured by environment and an optional TOML file
//! (`coffer-key-service [CONFIG.toml]`); see `config.rs` for every setting.

use std::process::ExitCode;

use coffer_key_service::{Config, serve};

#[tokio::main]
async fn main() -> ExitCode {
    coffer_server::main("coffer-key-service", Config::load, |c| &c.server, serve).await
}
