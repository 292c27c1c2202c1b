//! SPIFFE identities: who is calling, from the URI SAN of the peer's certificate.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::{Error, Result};

const SCHEME: &str = "spiffe://";
/// Longest SPIFFE ID accepted, as the SPIFFE spec recommends (2048 bytes).
const MAX_LEN: usize = 2048;

/// A validated SPIFFE ID, `spiffe://{trust-domain}/{path}`.
///
/// The trust domain is lowercase `[a-z0-9._-]`; the path is one or more `/`-separated segments
/// of `[A-Za-z0-9._-]`, none empty, `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    /// Shared: a call's identity is cloned into its principal without copying.
    id: Arc<str>,
    domain_len: usize,
}

impl SpiffeId {
    /// Builds `spiffe://{trust_domain}/{path}`.
    ///
    /// # Errors
    /// [`Error::SpiffeId`] if either part is invalid.
    pub fn new(trust_domain: &str, path: &str) -> Result<Self> {
        Self::parse(&format!("{SCHEME}{trust_domain}/{path}"))
    }

    /// Parses and validates a SPIFFE ID.
    ///
    /// # Errors
    /// [`Error::SpiffeId`] naming what is wrong.
    pub fn parse(id: &str) -> Result<Self> {
        if id.len() > MAX_LEN {
            return Err(Error::SpiffeId("longer than 2048 bytes"));
        }
        let rest = id
            .strip_prefix(SCHEME)
            .ok_or(Error::SpiffeId("must start with spiffe://"))?;
        let (domain, path) = rest
            .split_once('/')
            .ok_or(Error::SpiffeId("missing path"))?;
        if domain.is_empty()
            || !domain
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        {
            return Err(Error::SpiffeId("trust domain must be [a-z0-9._-]+"));
        }
        for segment in path.split('/') {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err(Error::SpiffeId(
                    "path segments must be non-empty and not . or ..",
                ));
            }
            if !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(Error::SpiffeId("path segments must be [A-Za-z0-9._-]+"));
            }
        }
        Ok(Self {
            id: Arc::from(id),
            domain_len: domain.len(),
        })
    }

    /// The trust domain, e.g. `coffer.local`.
    pub fn trust_domain(&self) -> &str {
        &self.id[SCHEME.len()..SCHEME.len() + self.domain_len]
    }

    /// The path without its leading `/`, e.g. `operator/alice`.
    pub fn path(&self) -> &str {
        &self.id[SCHEME.len() + self.domain_len + 1..]
    }

    /// The whole ID.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// Reads the SPIFFE ID of the client certificate a tonic request arrived with.
    ///
    /// Returns `None` when the connection has no client certificate, the certificate does not
    /// parse, or it has no or more than one `spiffe://` URI SAN (the SPIFFE X.509-SVID spec
    /// requires exactly one). The certificate itself was already verified against the CA by
    /// the TLS handshake.
    pub fn from_request<T>(request: &tonic::Request<T>) -> Option<Self> {
        Self::of_peer(&request.peer_certs()?)
    }

    /// The SPIFFE ID of a connection's peer, from the certificates tonic attaches to each of
    /// its calls (as [`SpiffeId::from_certificate_der`] of the first), parsed once per
    /// connection rather than once per call.
    ///
    /// tonic hands every call on a connection the same `Arc` of its peer's certificates, so
    /// [`PEERS`] remembers the answer by that `Arc`'s address. What a certificate names never
    /// changes, so nothing remembered can go stale.
    pub fn of_peer(certs: &Arc<Vec<CertificateDer<'static>>>) -> Option<Self> {
        let address = Arc::as_ptr(certs).addr();
        let mut peers = PEERS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, id)) = peers.get(&address) {
            return id.clone();
        }
        let id = Self::from_certificate_der(certs.first()?);
        if peers.len() >= PEER_CAPACITY {
            // Connections that have closed first; if all are open, start afresh.
            peers.retain(|_, (certs, _)| certs.strong_count() > 0);
            if peers.len() >= PEER_CAPACITY {
                peers.clear();
            }
        }
        peers.insert(address, (Arc::downgrade(certs), id.clone()));
        id
    }

    /// Reads the single `spiffe://` URI SAN of a DER certificate.
    pub fn from_certificate_der(der: &[u8]) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let san = cert.subject_alternative_name().ok()??;
        let mut ids = san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::URI(uri) if uri.starts_with(SCHEME) => Some(*uri),
                _ => None,
            });
        let id = ids.next()?;
        if ids.next().is_some() {
            return None;
        }
        Self::parse(id).ok()
    }
}

/// How many connections' peer identities [`PEERS`] holds.
const PEER_CAPACITY: usize = 1024;

/// Peer identities by the address of their connection's certificates (see
/// [`SpiffeId::of_peer`]). Each entry holds a `Weak` of those certificates: it keeps their
/// allocation, though not the certificates, alive, so no other connection's certificates can
/// appear at that address while the entry exists, and an address found here is always the
/// same connection's.
type Peers = HashMap<usize, (Weak<Vec<CertificateDer<'static>>>, Option<SpiffeId>)>;
static PEERS: LazyLock<Mutex<Peers>> = LazyLock::new(|| Mutex::new(HashMap::new()));

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids_split_into_domain_and_path() {
        let id = SpiffeId::parse("spiffe://coffer.local/operator/alice").unwrap();
        assert_eq!(id.trust_domain(), "coffer.local");
        assert_eq!(id.path(), "operator/alice");
        assert_eq!(id.to_string(), "spiffe://coffer.local/operator/alice");
        assert_eq!(SpiffeId::new("coffer.local", "operator/alice").unwrap(), id);
    }

    #[test]
    fn invalid_ids_are_rejected() {
        for bad in [
            "http://coffer.local/x",
            "spiffe://coffer.local",
            "spiffe://coffer.local/",
            "spiffe:///x",
            "spiffe://Coffer.local/x",
            "spiffe://coffer.local/a//b",
            "spiffe://coffer.local/a/../b",
            "spiffe://coffer.local/a b",
            "spiffe://coffer.local/a?b",
        ] {
            assert!(SpiffeId::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn each_connection_is_answered_with_its_own_peer() {
        let ca = crate::DevCa::generate("coffer.local").unwrap();
        let der = |name: &str| {
            let issued = ca.issue(name, crate::dev_ca::Usage::Client).unwrap();
            CertificateDer::from(crate::tls::first_certificate_der(&issued.cert_pem).unwrap())
        };
        let (alice, bob) = (der("operator/alice"), der("operator/bob"));
        // Connections come and go, past the cache's capacity: freed certificates' addresses
        // are reused, and each connection must still be told its own peer.
        let mut open = Vec::new();
        for n in 0..3 * PEER_CAPACITY {
            let (cert, name) = if n % 2 == 0 {
                (&alice, "alice")
            } else {
                (&bob, "bob")
            };
            let certs = Arc::new(vec![cert.clone()]);
            for _ in 0..2 {
                let id = SpiffeId::of_peer(&certs).unwrap();
                assert_eq!(id.path(), format!("operator/{name}"), "connection {n}");
            }
            if n % 7 == 0 {
                open.push(certs);
            }
        }
        for (n, certs) in open.iter().enumerate() {
            let name = if n * 7 % 2 == 0 { "alice" } else { "bob" };
            assert_eq!(
                SpiffeId::of_peer(certs).unwrap().path(),
                format!("operator/{name}")
            );
        }
        assert_eq!(SpiffeId::of_peer(&Arc::new(Vec::new())), None);
        let garbage = Arc::new(vec![CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])]);
        assert_eq!(SpiffeId::of_peer(&garbage), None);
    }
}
