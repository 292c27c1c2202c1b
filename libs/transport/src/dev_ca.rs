//! A development certificate authority, for `coffer up` and tests only.
//!
//! It keeps its CA certificate and key as PEM files in a directory, reuses them when they
//! exist, and issues ECDSA P-256 leaf certificates whose URI SAN is the holder's SPIFFE ID.
//! Service certificates are also valid for `localhost`, `127.0.0.1` and `::1`, so clients on
//! the same machine can verify them, and for any other DNS names and IP addresses asked for
//! ([`HostName`]), so clients elsewhere can.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use secrecy::{ExposeSecret as _, SecretString};
use time::{Duration, OffsetDateTime};

use crate::{Error, Result, SpiffeId, TlsFiles, TlsMaterial};

/// File name of the CA certificate in a certificate directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key in a certificate directory.
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// What a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A service: a TLS server (with localhost SANs) that also calls other services.
    Service,
    /// A client only (operators, applications).
    Client,
}

/// A name a service certificate answers to besides its SPIFFE ID: what its callers dial.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostName {
    /// A DNS name (`kms.internal`).
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

impl std::fmt::Display for HostName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dns(name) => write!(f, "DNS name {name}"),
            Self::Ip(ip) => write!(f, "IP address {ip}"),
        }
    }
}

/// A development CA.
pub struct DevCa {
    trust_domain: String,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A freshly issued leaf certificate with its private key.
pub struct IssuedCert {
    /// The SPIFFE ID in the certificate's URI SAN.
    pub id: SpiffeId,
    /// PEM certificate.
    pub cert_pem: String,
    /// PEM PKCS#8 private key.
    pub key_pem: SecretString,
}

impl DevCa {
    /// Generates a new CA for `trust_domain`, valid for ten years.
    ///
    /// # Errors
    /// [`Error::Rcgen`] if key generation or signing fails.
    pub fn generate(trust_domain: &str) -> Result<Self> {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.distinguished_name.push(
            DnType::CommonName,
            format!("Coffer dev CA ({trust_domain})"),
        );
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Coffer development only");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(3650);
        let key = KeyPair::generate()?;
        let cert_pem = params.self_signed(&key)?.pem();
        Ok(Self {
            trust_domain: trust_domain.to_owned(),
            cert_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads the CA from `dir` (`ca.pem`, `ca-key.pem`), or generates one and writes it there
    /// (the key with mode 0600).
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Pem`] for unreadable or unusable files, [`Error::Rcgen`].
    pub fn load_or_create(dir: &Path, trust_domain: &str) -> Result<Self> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        if cert_path.exists() && key_path.exists() {
            let cert_pem = std::fs::read_to_string(&cert_path).map_err(Error::io(&cert_path))?;
            let key_pem = SecretString::from(
                std::fs::read_to_string(&key_path).map_err(Error::io(&key_path))?,
            );
            let key = KeyPair::from_pem(key_pem.expose_secret()).map_err(|_| Error::Pem {
                path: key_path.clone(),
                what: "not a usable private key",
            })?;
            let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|_| Error::Pem {
                path: cert_path.clone(),
                what: "not a CA certificate",
            })?;
            return Ok(Self {
                trust_domain: trust_domain.to_owned(),
                cert_pem,
                issuer,
            });
        }
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let ca = Self::generate(trust_domain)?;
        write_file(&cert_path, &ca.cert_pem, false)?;
        write_file(&key_path, &ca.issuer.key().serialize_pem(), true)?;
        Ok(ca)
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The trust domain of the IDs this CA issues.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// Issues a certificate for `spiffe://{trust-domain}/{name}`, valid for one year.
    ///
    /// # Errors
    /// [`Error::SpiffeId`] for a bad name, [`Error::Rcgen`].
    pub fn issue(&self, name: &str, usage: Usage) -> Result<IssuedCert> {
        self.issue_for(name, usage, &[])
    }

    /// As [`DevCa::issue`], a service certificate also valid for `hosts`.
    ///
    /// # Errors
    /// As [`DevCa::issue`]; [`Error::HostsOnClient`] for hosts on a client certificate.
    pub fn issue_for(&self, name: &str, usage: Usage, hosts: &[HostName]) -> Result<IssuedCert> {
        let id = SpiffeId::new(&self.trust_domain, name)?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        let uri = SanType::URI(id.as_str().try_into()?);
        params.subject_alt_names = match usage {
            Usage::Service => {
                let mut names = vec![
                    uri,
                    SanType::DnsName("localhost".try_into()?),
                    SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                    SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
                ];
                for host in hosts {
                    names.push(match host {
                        HostName::Dns(name) => SanType::DnsName(name.as_str().try_into()?),
                        HostName::Ip(ip) => SanType::IpAddress(*ip),
                    });
                }
                names
            }
            Usage::Client if hosts.is_empty() => vec![uri],
            Usage::Client => return Err(Error::HostsOnClient),
        };
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match usage {
            Usage::Service => {
                vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ]
            }
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(365);
        let key = KeyPair::generate()?;
        let cert_pem = params.signed_by(&key, &self.issuer)?.pem();
        Ok(IssuedCert {
            id,
            cert_pem,
            key_pem: SecretString::from(key.serialize_pem()),
        })
    }

    /// Issues a certificate for `name` into `dir/{stem}.pem` and `dir/{stem}-key.pem` (0600),
    /// unless both files already exist and hold `name`'s identity, and returns the paths
    /// (with this CA as `ca`). An existing certificate of another identity is never handed
    /// out for `name`.
    ///
    /// # Errors
    /// As [`DevCa::issue`], plus [`Error::Io`], and [`Error::Occupied`] when the files hold
    /// another identity.
    pub fn issue_files(
        &self,
        dir: &Path,
        stem: &str,
        name: &str,
        usage: Usage,
    ) -> Result<TlsFiles> {
        self.issue_files_for(dir, stem, name, usage, &[])
    }

    /// As [`DevCa::issue_files`], a service certificate also valid for `hosts`. Existing files
    /// of `name`'s identity are kept only if they have the usage and every host asked for.
    ///
    /// # Errors
    /// As [`DevCa::issue_files`], plus [`Error::Lacking`] for existing files that lack the
    /// usage or a host.
    pub fn issue_files_for(
        &self,
        dir: &Path,
        stem: &str,
        name: &str,
        usage: Usage,
        hosts: &[HostName],
    ) -> Result<TlsFiles> {
        let files = TlsFiles {
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}-key.pem")),
            ca: dir.join(CA_CERT_FILE),
        };
        if files.cert.exists() && files.key.exists() {
            let wanted = SpiffeId::new(&self.trust_domain, name)?;
            let pem = std::fs::read_to_string(&files.cert).map_err(Error::io(&files.cert))?;
            let holds = crate::tls::first_certificate_der(&pem)
                .and_then(|der| SpiffeId::from_certificate_der(&der));
            if holds.as_ref() != Some(&wanted) {
                return Err(Error::Occupied {
                    path: files.cert.clone(),
                    holds: holds.map_or_else(|| "no SPIFFE ID".to_owned(), |id| id.to_string()),
                });
            }
            if let Some(lacks) =
                crate::tls::first_certificate_der(&pem).and_then(|der| lacking(&der, usage, hosts))
            {
                return Err(Error::Lacking {
                    path: files.cert.clone(),
                    lacks,
                });
            }
        } else {
            let issued = self.issue_for(name, usage, hosts)?;
            write_file(&files.cert, &issued.cert_pem, false)?;
            write_file(&files.key, issued.key_pem.expose_secret(), true)?;
        }
        Ok(files)
    }

    /// Issues a certificate and returns it as in-memory TLS material (for tests).
    ///
    /// # Errors
    /// As [`DevCa::issue`].
    pub fn issue_material(&self, name: &str, usage: Usage) -> Result<TlsMaterial> {
        let issued = self.issue(name, usage)?;
        Ok(TlsMaterial::from_pem(
            issued.cert_pem,
            issued.key_pem,
            self.cert_pem.clone(),
        ))
    }
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa")
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Writes a file; private ones are created with mode 0600 so the key is never world-readable,
/// not even for a moment.
fn write_file(path: &Path, contents: &str, private: bool) -> Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(Error::io(path))?;
    file.write_all(contents.as_bytes()).map_err(Error::io(path))
}

/// What a stored certificate lacks of `usage` and `hosts`, if anything (an unreadable one
/// lacks everything).
fn lacking(der: &[u8], usage: Usage, hosts: &[HostName]) -> Option<String> {
    use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Some("a readable certificate".to_owned());
    };
    let server = cert
        .extended_key_usage()
        .ok()
        .flatten()
        .is_some_and(|eku| eku.value.server_auth);
    if usage == Usage::Service && !server {
        return Some("server usage".to_owned());
    }
    let mut held = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => held.push(HostName::Dns((*dns).to_owned())),
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    held.extend(ip.map(HostName::Ip));
                }
                _ => {}
            }
        }
    }
    hosts
        .iter()
        .find(|host| !held.contains(host))
        .map(ToString::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_carry_the_spiffe_id() {
        let ca = DevCa::generate("coffer.test").unwrap();
        let material = ca.issue_material("operator/alice", Usage::Client).unwrap();
        assert_eq!(
            material.identity().unwrap().as_str(),
            "spiffe://coffer.test/operator/alice"
        );
    }

    #[test]
    fn a_second_load_reuses_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let first = DevCa::load_or_create(dir.path(), "coffer.test").unwrap();
        let second = DevCa::load_or_create(dir.path(), "coffer.test").unwrap();
        assert_eq!(first.cert_pem(), second.cert_pem());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(CA_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let files = second
            .issue_files(dir.path(), "svc", "key-service", Usage::Service)
            .unwrap();
        let material = TlsMaterial::load(&files).unwrap();
        assert_eq!(material.identity().unwrap().path(), "key-service");
    }

    #[test]
    fn server_certificates_carry_the_hosts_asked_for_and_stale_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = DevCa::generate("coffer.test").unwrap();
        let hosts = [
            HostName::Dns("kms.internal".to_owned()),
            HostName::Ip(IpAddr::from([10, 0, 0, 7])),
        ];
        let files = ca
            .issue_files_for(dir.path(), "kms", "key-service", Usage::Service, &hosts)
            .unwrap();
        let pem = std::fs::read_to_string(&files.cert).unwrap();
        let der = crate::tls::first_certificate_der(&pem).unwrap();
        assert_eq!(lacking(&der, Usage::Service, &hosts), None);
        // Asked again with the same names: the files are kept.
        ca.issue_files_for(dir.path(), "kms", "key-service", Usage::Service, &hosts)
            .unwrap();
        assert_eq!(std::fs::read_to_string(&files.cert).unwrap(), pem);
        // With a name it lacks: refused, never silently reused.
        let more = [HostName::Dns("kms.example".to_owned())];
        let err = ca
            .issue_files_for(dir.path(), "kms", "key-service", Usage::Service, &more)
            .unwrap_err();
        assert!(
            err.to_string().contains("without DNS name kms.example"),
            "{err}"
        );
        // A client certificate is not a server certificate.
        ca.issue_files(dir.path(), "app", "app", Usage::Client)
            .unwrap();
        let err = ca
            .issue_files(dir.path(), "app", "app", Usage::Service)
            .unwrap_err();
        assert!(err.to_string().contains("without server usage"), "{err}");
        assert!(matches!(
            ca.issue_for("app", Usage::Client, &hosts),
            Err(Error::HostsOnClient)
        ));
    }

    #[test]
    fn a_key_of_another_certificate_is_named_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let ca = DevCa::load_or_create(dir.path(), "coffer.test").unwrap();
        let one = ca
            .issue_files(dir.path(), "one", "one", Usage::Service)
            .unwrap();
        let two = ca
            .issue_files(dir.path(), "two", "two", Usage::Service)
            .unwrap();
        let swapped = TlsFiles {
            key: two.key.clone(),
            ..one.clone()
        };
        let err = TlsMaterial::load(&swapped).err().unwrap().to_string();
        assert_eq!(
            err,
            format!(
                "{}: does not match the certificate's public key",
                two.key.display()
            )
        );
        TlsMaterial::load(&one).unwrap();
    }

    #[test]
    fn bad_names_are_refused() {
        let ca = DevCa::generate("coffer.test").unwrap();
        assert!(matches!(
            ca.issue("../x", Usage::Client),
            Err(Error::SpiffeId(_))
        ));
    }
}
