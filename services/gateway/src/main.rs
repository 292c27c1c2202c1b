//! The REST gateway binary, configured by environment and an optional TOML file
//! (`coffer-gateway [CONFIG.toml]`); see `config.rs` for every setting.

use std::process::ExitCode;

use coffer_gateway::{Config, serve};

#[tokio::main]
async fn main() -> ExitCode {
    coffer_server::main("coffer-gateway", Config::load, |c| &c.server, serve).await
}
