//! What the gateway's integration tests share: a real stack on SQLite files and its CA.

#![allow(clippy::unwrap_used)]

use coffer_crypto::RootKeyring;
use coffer_test_support::init_tracing;
use coffer_transport::DevCa;

/// The three services on SQLite files in `dir` (bcrypt at its cheapest), and the CA that
/// issued their certificates (for operator and gateway identities).
pub(crate) async fn stack(dir: &std::path::Path) -> (coffer_stack::Stack, DevCa) {
    init_tracing();
    let ca = DevCa::generate("coffer.local").unwrap();
    let certificates = coffer_stack::Certificates::issue(&ca).unwrap();
    let stack = coffer_stack::Stack::builder(RootKeyring::generate().unwrap(), certificates)
        .databases(coffer_stack::Databases::sqlite_in(dir))
        .auth_service(|config| config.bcrypt_cost = 4)
        .spawn()
        .await
        .unwrap();
    (stack, ca)
}
