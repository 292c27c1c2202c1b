//! Generated gRPC code for Coffer's `coffer.v1` protos.
//!
//! The generated code lives in a private module with lints relaxed and is re-exported as
//! [`pb`], so every service and client imports the same types. [`FILE_DESCRIPTOR_SET`] is the
//! encoded descriptor set of the same protos, for gRPC server reflection and the REST gateway.
//! [`is_valid_id`] is the one rule for the ids inside resource names (`tenants/{tenant}/...`),
//! and [`paging`] the one way every List RPC pages.

mod generated {
    #![allow(
        missing_docs,
        unreachable_pub,
        clippy::all,
        clippy::pedantic,
        rust_2018_idioms
    )]

    pub mod coffer {
        pub mod v1 {
            tonic::include_proto!("coffer.v1");
        }
    }
}

/// The `coffer.v1` messages, clients and servers.
pub mod pb {
    pub use crate::generated::coffer::v1::*;
}

/// The encoded `google.protobuf.FileDescriptorSet` of every Coffer proto (with its imports),
/// for `tonic-reflection` and for transcoding.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/coffer_descriptor.bin"));

pub mod paging;

/// Longest id in a resource name.
pub const MAX_ID_LEN: usize = 64;

/// The rule [`is_valid_id`] checks, for error messages.
pub const ID_PATTERN: &str = "[a-z0-9_-]{1,64}";

/// Whether `id` may name a tenant, principal or key: `[a-z0-9_-]{1,64}`, so it is safe in a
/// resource name, a SPIFFE path, an HKDF `info` and a log line alike.
pub fn is_valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_pattern() {
        for good in ["a", "acme", "team_1-b", &"x".repeat(MAX_ID_LEN)] {
            assert!(is_valid_id(good), "{good}");
        }
        for bad in [
            "",
            "Acme",
            "a.b",
            "a/b",
            "a b",
            "é",
            &"x".repeat(MAX_ID_LEN + 1),
        ] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }
}
