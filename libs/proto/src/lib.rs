//! Generated gRPC code for Coffer's `coffer.v1` protos.
//!
//! The generated code lives in a private module with lints relaxed and is re-exported as
//! [`pb`], so every service and client imports the same types. [`FILE_DESCRIPTOR_SET`] is the
//! encoded descriptor set of the same protos, for gRPC server reflection and the REST gateway.
//! [`is_valid_id`] is the one rule for the ids inside resource names (`tenants/{tenant}/...`),
//! [`paging`] the one way every List RPC pages, and [`serve`] how every service serves.

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

/// Why [`serve`] stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Reflection could not be built (a build problem, not a runtime one).
    #[error("reflection setup failed")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("gRPC server failed")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves `router` (a configured server with the service named `service` added) on
/// `listener`, with what every Coffer server has beside it: `grpc.health.v1.Health` (SERVING
/// until `shutdown` resolves, then NOT_SERVING while in-flight calls drain), server reflection
/// v1 and v1alpha, and TCP_NODELAY on every connection.
///
/// # Errors
/// [`ServeError`].
pub async fn serve(
    router: tonic::transport::server::Router,
    service: &'static str,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    use tonic_health::ServingStatus;

    let (reflection_v1, reflection_v1alpha) = reflection(service)?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status(service, ServingStatus::Serving)
        .await;
    let shutdown = async move {
        shutdown.await;
        health
            .set_service_status(service, ServingStatus::NotServing)
            .await;
    };
    // Without TCP_NODELAY, small responses wait on Nagle's algorithm and the client's delayed
    // ACK: about 40 ms per call.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    router
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

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
