//! mTLS connections to another Coffer service that verify *which* service answers.
//!
//! A server certificate that chains to the CA and names the dialled host is not enough: every
//! service's certificate comes from the same CA, so a leaked certificate of one service (with
//! a matching DNS or IP name) could impersonate another. An [`Upstream`] also requires the
//! server certificate's SPIFFE ID to be the expected one, checked inside the TLS handshake
//! (a custom rustls verifier around the standard WebPKI one), before any request is sent.

use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tonic::transport::{Channel, Endpoint};

use crate::tls::{HANDSHAKE_TIMEOUT, pem_blocks};
use crate::{Error, Result, SpiffeId, TlsMaterial};

/// Another service: where it is, the name its certificate carries, and its SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// `https://host:port`.
    pub url: String,
    /// The DNS name or IP address its certificate must carry.
    pub server_name: String,
    /// The SPIFFE ID its certificate must carry.
    pub identity: SpiffeId,
}

impl Upstream {
    /// Connects over mTLS, presenting `tls`'s certificate and verifying the server against
    /// `tls`'s CA, [`Upstream::server_name`] and [`Upstream::identity`].
    ///
    /// # Errors
    /// [`Error::Upstream`] if the URL is not `https://host:port`, the TLS material is
    /// unusable, or the connection or handshake fails (a wrong identity fails the handshake).
    pub async fn connect(&self, tls: &TlsMaterial) -> Result<Channel> {
        let (endpoint, connector) = self.endpoint(tls)?;
        endpoint
            .connect_with_connector(connector)
            .await
            .map_err(|e| self.error(coffer_telemetry::error_chain(&e)))
    }

    /// As [`Upstream::connect`], but connects on first use (and again after a failure), so a
    /// caller can start before the service does; a call while it is down fails with
    /// UNAVAILABLE.
    ///
    /// # Errors
    /// [`Error::Upstream`] if the URL or the TLS material is unusable.
    pub fn connect_lazy(&self, tls: &TlsMaterial) -> Result<Channel> {
        let (endpoint, connector) = self.endpoint(tls)?;
        Ok(endpoint.connect_with_connector_lazy(connector))
    }

    /// The endpoint and the connector that does TCP (no Nagle) and the verifying handshake.
    fn endpoint(
        &self,
        tls: &TlsMaterial,
    ) -> Result<(
        Endpoint,
        impl tower::Service<
            http::Uri,
            Response = TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
            Error = std::io::Error,
            Future = impl Future + Send,
        > + Clone
        + Send
        + 'static,
    )> {
        let config = Arc::new(self.client_config(tls)?);
        let authority = self
            .url
            .strip_prefix("https://")
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .ok_or_else(|| self.error("the URL must be https://host:port".to_owned()))?
            .to_owned();
        let server_name = ServerName::try_from(self.server_name.clone()).map_err(|_| {
            self.error("the server name is not a DNS name or IP address".to_owned())
        })?;
        // tonic does no TLS of its own on an http:// endpoint: the connector below does it.
        let endpoint = Endpoint::from_shared(format!("http://{authority}"))
            .map_err(|e| self.error(e.to_string()))?;
        let connector = tower::service_fn(move |_: http::Uri| {
            let (config, authority, server_name) =
                (Arc::clone(&config), authority.clone(), server_name.clone());
            async move {
                let tcp = tokio::net::TcpStream::connect(&authority).await?;
                tcp.set_nodelay(true)?;
                let handshake = tokio_rustls::TlsConnector::from(config).connect(server_name, tcp);
                let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        });
        Ok((endpoint, connector))
    }

    fn client_config(&self, tls: &TlsMaterial) -> Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        for der in pem_blocks(tls.ca_pem(), "CERTIFICATE") {
            roots
                .add(CertificateDer::from(der))
                .map_err(|e| self.error(format!("CA certificate: {e}")))?;
        }
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|e| self.error(format!("CA certificates: {e}")))?;
        let chain: Vec<CertificateDer<'static>> = pem_blocks(tls.cert_pem(), "CERTIFICATE")
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        let key = tls
            .private_key_der()
            .and_then(|der| PrivateKeyDer::try_from(der).ok())
            .ok_or_else(|| self.error("no usable private key".to_owned()))?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| self.error(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SpiffeVerifier {
                inner,
                expected: self.identity.clone(),
            }))
            .with_client_auth_cert(chain, key)
            .map_err(|e| self.error(format!("client certificate: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }

    fn error(&self, why: String) -> Error {
        Error::Upstream {
            url: self.url.clone(),
            why,
        }
    }
}

/// The WebPKI verifier (chain to the CA, name, validity), then the SPIFFE ID.
#[derive(Debug)]
struct SpiffeVerifier {
    inner: Arc<WebPkiServerVerifier>,
    expected: SpiffeId,
}

impl ServerCertVerifier for SpiffeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        match SpiffeId::from_certificate_der(end_entity) {
            Some(id) if id == self.expected => Ok(verified),
            _ => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
