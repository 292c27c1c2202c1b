//! Server and client mTLS configuration from PEM files.
//!
//! tonic's TLS is rustls with the aws-lc-rs provider (the workspace's only TLS stack). Servers
//! require and verify a client certificate chaining to the configured CA; clients verify the
//! server against the same CA and present their own certificate.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret as _, SecretString};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
use x509_parser::pem::Pem;

use crate::{Error, Result, SpiffeId};

/// Where a service's or client's certificate, private key and CA certificate are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate (chain), leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8).
    pub key: PathBuf,
    /// PEM CA certificate(s) that peers' certificates must chain to.
    pub ca: PathBuf,
}

/// TLS material read into memory and checked: the certificate and CA parse, the key is present.
#[derive(Clone)]
pub struct TlsMaterial {
    cert_pem: String,
    key_pem: SecretString,
    ca_pem: String,
    identity: Option<SpiffeId>,
}

impl TlsMaterial {
    /// Reads and checks the three files.
    ///
    /// # Errors
    /// [`Error::Io`] for an unreadable file, [`Error::Pem`] for one without a certificate or key.
    pub fn load(files: &TlsFiles) -> Result<Self> {
        let read = |path: &Path| std::fs::read_to_string(path).map_err(Error::io(path));
        let cert_pem = read(&files.cert)?;
        let key_pem = SecretString::from(read(&files.key)?);
        let ca_pem = read(&files.ca)?;
        let identity = first_certificate_der(&cert_pem)
            .ok_or_else(|| Error::Pem {
                path: files.cert.clone(),
                what: "no PEM certificate",
            })
            .map(|der| SpiffeId::from_certificate_der(&der))?;
        first_certificate_der(&ca_pem).ok_or_else(|| Error::Pem {
            path: files.ca.clone(),
            what: "no PEM certificate",
        })?;
        if !key_pem.expose_secret().contains("PRIVATE KEY-----") {
            return Err(Error::Pem {
                path: files.key.clone(),
                what: "no PEM private key",
            });
        }
        check_pair(files, &cert_pem, &key_pem)?;
        Ok(Self {
            cert_pem,
            key_pem,
            ca_pem,
            identity,
        })
    }

    /// Material already in memory (for the dev CA and tests).
    pub fn from_pem(cert_pem: String, key_pem: SecretString, ca_pem: String) -> Self {
        let identity =
            first_certificate_der(&cert_pem).and_then(|d| SpiffeId::from_certificate_der(&d));
        Self {
            cert_pem,
            key_pem,
            ca_pem,
            identity,
        }
    }

    /// The SPIFFE ID in this material's own certificate, if it has one.
    pub fn identity(&self) -> Option<&SpiffeId> {
        self.identity.as_ref()
    }

    /// A server config that requires client certificates from the CA.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.tonic_identity())
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
            .client_auth_optional(false)
            .timeout(HANDSHAKE_TIMEOUT)
    }

    /// A client config that presents this certificate and verifies the server's certificate
    /// against the CA for `server_name` (a DNS name or IP address in its SAN).
    pub fn client_config(&self, server_name: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .identity(self.tonic_identity())
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .domain_name(server_name)
            .timeout(HANDSHAKE_TIMEOUT)
    }

    /// The certificate chain, PEM.
    pub(crate) fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate(s), PEM.
    pub(crate) fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The private key, DER (PKCS#8, SEC1 or PKCS#1, as the PEM label says).
    pub(crate) fn private_key_der(&self) -> Option<Vec<u8>> {
        Pem::iter_from_buffer(self.key_pem.expose_secret().as_bytes())
            .filter_map(std::result::Result::ok)
            .find(|p| p.label.ends_with("PRIVATE KEY"))
            .map(|p| p.contents)
    }

    fn tonic_identity(&self) -> Identity {
        Identity::from_pem(&self.cert_pem, self.key_pem.expose_secret())
    }
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// A TLS server configuration for a public listener (the REST gateway's): the certificate
/// chain in `cert` and the key in `key` (PEM), no client certificate asked for, TLS 1.2 and
/// 1.3 with the aws-lc-rs provider, and `alpn` offered (e.g. `http/1.1`). The key is checked
/// against the certificate here, so a swapped file is named at start.
///
/// # Errors
/// [`Error::Io`] for an unreadable file, [`Error::Pem`] for a missing certificate, an
/// unusable key or a key that does not match.
pub fn public_server_config(
    cert: &Path,
    key: &Path,
    alpn: &[&[u8]],
) -> Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |path: &Path| std::fs::read_to_string(path).map_err(Error::io(path));
    let cert_pem = read(cert)?;
    let key_pem = SecretString::from(read(key)?);
    let unusable = |path: &Path, what| Error::Pem {
        path: path.to_owned(),
        what,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| unusable(cert, "not a PEM certificate chain"))?;
    if chain.is_empty() {
        return Err(unusable(cert, "no PEM certificate"));
    }
    let private_key = PrivateKeyDer::from_pem_slice(key_pem.expose_secret().as_bytes())
        .map_err(|_| unusable(key, "not a usable private key"))?;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| unusable(cert, "no usable TLS protocol version"))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|error| match error {
            rustls::Error::InconsistentKeys(_) => {
                unusable(key, "does not match the certificate's public key")
            }
            _ => unusable(key, "not a usable private key"),
        })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Every PEM block labelled `label`, DER.
pub(crate) fn pem_blocks(pem: &str, label: &str) -> Vec<Vec<u8>> {
    Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(std::result::Result::ok)
        .filter(|p| p.label == label)
        .map(|p| p.contents)
        .collect()
}

pub(crate) fn first_certificate_der(pem: &str) -> Option<Vec<u8>> {
    Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(std::result::Result::ok)
        .find(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
}

/// A TLS handshake that takes longer than this is abandoned, so a slow or silent client cannot
/// hold a connection slot.
pub(crate) const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Checks that the key is usable and belongs to the certificate, so a swapped or stale key
/// file is named at start rather than failing every handshake later.
fn check_pair(files: &TlsFiles, cert_pem: &str, key_pem: &SecretString) -> Result<()> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let unusable = |path: &Path, what| Error::Pem {
        path: path.to_owned(),
        what,
    };
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|_| unusable(&files.cert, "no PEM certificate"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.expose_secret().as_bytes())
        .map_err(|_| unusable(&files.key, "not a usable private key"))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    match rustls::sign::CertifiedKey::from_der(vec![cert], key, &provider) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => Err(unusable(
            &files.key,
            "does not match the certificate's public key",
        )),
        Err(_) => Err(unusable(&files.key, "not a usable private key")),
    }
}
