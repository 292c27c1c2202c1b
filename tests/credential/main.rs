//! credential-service integration tests: real key-service, auth-service and
//! credential-service on 127.0.0.1:0 with one test CA; the credential store on SQLite and
//! PostgreSQL.

// Test helpers are `pub` for the sibling modules of this one binary, not for other crates.
#![allow(unreachable_pub, missing_docs)]
// The whole crate is test code: helpers fail loudly, like the tests that call them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod attacks;
mod audit;
mod audit_tampering;
mod credentials;
mod helpers;
mod key_states;
mod replicas;
mod revocation;
mod sealing;
mod shutdown;
mod storage;
mod sweep;
mod zero_knowledge;
