//! Generated gRPC code for Coffer's `coffer.v1` protos.
//!
//! The generated code lives in a private module with lints relaxed and is re-exported as
//! [`pb`], so every service and client imports the same types. [`FILE_DESCRIPTOR_SET`] is the
//! encoded descriptor set of the same protos, for gRPC server reflection and the REST gateway.

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

/// gRPC server reflection, v1 and v1alpha (grpcurl before 1.9, as on PyPI, speaks only
/// v1alpha), advertising `service` with the health and reflection services and nothing else:
/// [`FILE_DESCRIPTOR_SET`] describes every Coffer proto, but a server lists only what it serves.
///
/// # Errors
/// If the descriptor sets do not decode (a build problem, not a runtime one).
#[allow(clippy::type_complexity)]
pub fn reflection(
    service: &str,
) -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    tonic_reflection::server::Error,
> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(service)
            .with_service_name("grpc.health.v1.Health")
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .with_service_name("grpc.reflection.v1alpha.ServerReflection")
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}
