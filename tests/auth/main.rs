//! auth-service integration tests: a real key-service and auth-service on 127.0.0.1:0 with
//! certificates from one test CA, generated clients, the auth store on SQLite and PostgreSQL.

// Test helpers are `pub` for the sibling modules of this one binary, not for other crates.
#![allow(unreachable_pub, missing_docs)]
// The whole crate is test code: helpers fail loudly, like the tests that call them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod abuse;
mod api_keys;
mod attacks;
mod authn;
mod directory;
mod escalation;
mod factors;
mod helpers;
mod interop;
mod shutdown;
mod signing;
mod tokens;
