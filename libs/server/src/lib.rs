//! The common core of every Coffer gRPC service, so that a service crate holds only its RPCs,
//! its rules and its tables.
//!
//! - [`Config`]: the settings every server has (listen address, TLS files, request timeout,
//!   shutdown grace, log format, OTLP, metrics address), parsed by one section parser.
//! - [`serve()`]: the server stack for any service: mutual TLS, the request timeout, a trace
//!   span per call, `grpc.health.v1.Health`, server reflection v1 and v1alpha, TCP_NODELAY, and
//!   Prometheus `/metrics` with a request count and latency per RPC and status code.
//! - [`main()`]: the whole process main of a service binary: configuration (exit 64 listing
//!   every problem), telemetry, bind, signals, serve, drain.
//! - [`upstream`]: another service as a dependency, parsed from configuration the same way by
//!   every service that calls another.
//! - [`Service`]: one service running in this process (spawned with a readiness signal,
//!   stopped with a grace period), for `coffer up` and the tests.
//! - [`task`]: background loops (interval, jitter, one log line per outage) that stop when
//!   their handle is dropped, so an early start-up error leaks nothing.
//! - [`Clock`]: wall-clock time that tests advance instead of sleeping.
//! - [`names`] and [`paging`]: the id rule of resource names, and the one way every List RPC
//!   pages (page sizes, and opaque page tokens bound to the list, parent and filter).
//! - [`authz`]: the text form of the services' authorization tables (SPIFFE subjects and RPCs).
//! - [`status`]: gRPC statuses with `google.rpc.ErrorInfo` and `google.rpc.BadRequest` details,
//!   which the gateway turns into JSON error details.
//!
//! Every program linking this crate (each service binary, `coffer`, the tests) allocates with
//! mimalloc: under load glibc's malloc took about 15% of the stack's CPU (`perf`, issue 11),
//! mimalloc about 10%, and masked reads ran 20-30% faster with it (README, Performance). Its
//! transparent huge pages are off (the `no_thp` feature): with them an idle `coffer up` held
//! 86 MiB instead of 39 MiB.

pub mod authz;
pub mod clock;
pub mod config;
pub mod metrics;
pub mod names;
pub mod paging;
pub mod process;
pub mod running;
pub mod serve;
pub mod status;
pub mod task;
pub mod throttle;
pub mod upstream;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use clock::Clock;
pub use config::Config;
pub use process::{EX_UNAVAILABLE, EX_USAGE, Failure, Listeners, Shutdown, main};
pub use running::{Ended, Service};
pub use serve::{ServeError, serve};
