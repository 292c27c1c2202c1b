//! key-service integration tests: real servers on 127.0.0.1:0, real mTLS certificates from a
//! test CA, generated clients, each test on SQLite and PostgreSQL.

// Test helpers are `pub` for the sibling modules of this one binary, not for other crates.
#![allow(unreachable_pub, missing_docs)]
// The whole crate is test code: helpers fail loudly, like the tests that call them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod authz;
mod crypto;
mod deletion;
mod errors;
mod helpers;
mod keys;
mod replicas;
mod root;
mod rotation;
mod schema;
mod shutdown;
