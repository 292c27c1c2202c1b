//! A tower layer that authenticates every gRPC call before it reaches the service: the
//! verified [`Principal`] is put into the request's extensions, where a handler finds it with
//! [`principal`]; a call without a valid bearer is answered with the [`Error`]'s status and
//! never reaches the handler. Paths under the public prefixes (health, reflection) pass without
//! a bearer.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::Principal;
use crate::authenticator::{Authenticator, Error};

/// Health checks and reflection: callable with the mTLS certificate alone.
pub const DEFAULT_PUBLIC_PREFIXES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.",
    "/grpc.reflection.v1alpha.",
];

/// The layer.
#[derive(Clone)]
pub struct AuthnLayer {
    authenticator: Arc<Authenticator>,
    public_prefixes: &'static [&'static str],
}

impl AuthnLayer {
    /// Authenticates every call except those under `public_prefixes`.
    pub fn new(
        authenticator: Arc<Authenticator>,
        public_prefixes: &'static [&'static str],
    ) -> Self {
        Self {
            authenticator,
            public_prefixes,
        }
    }
}

impl<S> tower::Layer<S> for AuthnLayer {
    type Service = Authn<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authn {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service the layer wraps around the gRPC router.
#[derive(Clone)]
pub struct Authn<S> {
    inner: S,
    layer: AuthnLayer,
}

impl<S, B> tower::Service<http::Request<B>> for Authn<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone takes over readiness from the instance that was polled ready (the tower
        // idiom for services called from a spawned future).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let path = request.uri().path();
            if !layer
                .public_prefixes
                .iter()
                .any(|prefix| path.starts_with(prefix))
            {
                let client = peer_identity(&request);
                match layer
                    .authenticator
                    .authenticate_headers(request.headers(), client.as_ref())
                    .await
                {
                    Ok(principal) => {
                        request.extensions_mut().insert(principal);
                    }
                    Err(error) => return Ok(reject(error)),
                }
            }
            inner.call(request).await
        })
    }
}

/// The caller's SPIFFE ID, from the TLS connection info tonic's server attaches.
fn peer_identity<B>(request: &http::Request<B>) -> Option<coffer_transport::SpiffeId> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let certs = request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()?
        .peer_certs()?;
    coffer_transport::SpiffeId::of_peer(&certs)
}

fn reject(error: Error) -> http::Response<tonic::body::Body> {
    tonic::Status::from(error).into_http()
}

/// The principal the layer verified, in a handler.
///
/// # Errors
/// UNAUTHENTICATED when the layer did not run for this call.
pub fn principal<T>(request: &tonic::Request<T>) -> Result<&Principal, tonic::Status> {
    request
        .extensions()
        .get::<Principal>()
        .ok_or_else(|| tonic::Status::unauthenticated("invalid credentials"))
}
