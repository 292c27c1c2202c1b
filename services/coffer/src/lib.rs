//! The `coffer` command-line tool, as a library so tests drive the same code as the binary.
//!
//! - [`up`]: the whole stack in one process on embedded defaults, for development.
//! - [`admin`]: operator commands against a running stack (login, API keys, introspection).
//! - [`cred`]: MCP credentials (`coffer cred`, `coffer seal`), sealing secrets locally.
//! - [`bench`]: throughput and latency of the key-service against a same-run baseline.
//! - [`layout`]: the data directory `coffer up` creates and reuses (dev CA, certificates, dev
//!   root key, SQLite files).

pub mod admin;
pub mod bench;
pub mod cred;
pub mod layout;
pub mod oauth;
pub mod up;
