//! Mutual TLS for every Coffer listener and client.
//!
//! - [`tls`]: tonic server and client TLS configs (rustls, aws-lc-rs provider) from PEM files.
//!   Servers always require a client certificate from the configured CA.
//! - [`identity`]: a caller's identity is the SPIFFE URI SAN of its certificate,
//!   `spiffe://{trust-domain}/{name}`, read once per request into a typed [`SpiffeId`].
//! - [`dev_ca`]: a development CA (rcgen) that issues service and operator certificates, for
//!   `coffer up` and the tests. Never for production.

pub mod dev_ca;
mod error;
pub mod identity;
pub mod tls;
pub mod upstream;

pub use dev_ca::DevCa;
pub use error::{Error, Result};
pub use identity::SpiffeId;
pub use tls::{TlsFiles, TlsMaterial, public_server_config};
pub use upstream::Upstream;
