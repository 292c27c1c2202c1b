//! Generated gRPC code for Coffer's `coffer.v1` protos.
//!
//! The generated code lives in a private module with lints relaxed and is re-exported as
//! [`pb`], so every service and client imports the same types. [`FILE_DESCRIPTOR_SET`] is the
//! encoded descriptor set of the same protos, for gRPC server reflection and the REST gateway.
//! Nothing else lives here: the conventions of the API (ids in names, paging) are in
//! `coffer-server`.

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
