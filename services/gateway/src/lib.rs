//! Coffer's REST gateway (issue 12, in progress): applications, browsers and MCP clients speak
//! REST and JSON; the services speak gRPC over mTLS. The routes come from the protos'
//! `google.api.http` annotations in the descriptor set ([`routes`]), so an annotated RPC is
//! reachable over REST with no code here.
//!
//! What exists so far: path templates ([`template`]), the route table ([`routes`]) and the
//! JSON transcoding of requests and responses ([`transcode`]), calls of any RPC with a dynamic
//! message ([`grpc`]), Google's JSON error format ([`error`]) and the axum handler with the
//! security headers, probes and `/openapi.json` ([`server`], [`openapi`]). Still to come:
//! configuration and the process, TLS, `/docs`, request logs.

pub mod error;
pub mod grpc;
pub mod limit;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod template;
pub mod transcode;
