//! Coffer's REST gateway (issue 12, in progress): applications, browsers and MCP clients speak
//! REST and JSON; the services speak gRPC over mTLS. The routes come from the protos'
//! `google.api.http` annotations in the descriptor set ([`routes`]), so an annotated RPC is
//! reachable over REST with no code here.
//!
//! The parts: path templates ([`template`]) and the route table ([`routes`]); the JSON
//! transcoding of requests and responses ([`transcode`]); calls of any RPC with a dynamic
//! message ([`grpc`]); Google's JSON error format ([`error`]); rate limits per address and
//! per API key ([`limit`]); what an unverified bearer may tell the gateway ([`bearer`]);
//! `/openapi.json` and `/docs` ([`openapi`]); and the axum handler with admission (header
//! size, rate limits, load shedding), timeouts, the security headers, CORS, probes and the
//! access log ([`server`]). The services verify every bearer; the gateway holds no secret but
//! its client certificate. `coffer up` runs it. Still to come (issue 12): a production binary
//! with its configuration and TLS on the public listener.

pub mod bearer;
pub mod error;
pub mod grpc;
pub mod limit;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod template;
pub mod transcode;
