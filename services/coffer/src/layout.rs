//! The data directory of `coffer up`, created on first use and reused afterwards:
//!
//! ```text
//! DIR/                    0700  (every file below 0600, enforced at every start)
//!   root-keys                   dev root keyring ({version}:{base64} lines)
//!   admin-api-key               the bootstrap org_admin API key of tenant `default`
//!   key-service.db              SQLite database of the key-service
//!   auth-service.db             SQLite database of the auth-service
//!   credential-service.db       SQLite database of the credential-service
//!   certs/                0700
//!     ca.pem, ca-key.pem        dev CA
//!     operator.pem, operator-key.pem        spiffe://coffer.local/operator/admin
//!     key-service.pem, key-service-key.pem    spiffe://coffer.local/key-service
//!     auth-service.pem, auth-service-key.pem  spiffe://coffer.local/auth-service
//!     credential-service.pem, ...-key.pem     spiffe://coffer.local/credential-service
//!     gateway.pem, gateway-key.pem            spiffe://coffer.local/gateway
//!     NAME.pem, NAME-key.pem    `coffer certs issue --name NAME` (`/` in NAME written `+`)
//! ```
//!
//! `coffer certs init` makes only `certs/` (CA, operator, the three service and the gateway
//! certificates, those also valid for the host names given), for services run as separate processes.
//!
//! ```text
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use coffer_crypto::RootKeyring;
use coffer_transport::dev_ca::{HostName, Usage};
use coffer_transport::{DevCa, TlsFiles};
use secrecy::{ExposeSecret as _, SecretString};

/// The file `coffer up` saves the bootstrap admin API key in (0600).
pub const ADMIN_API_KEY_FILE: &str = "admin-api-key";
/// The tenant `coffer up` bootstraps.
pub const BOOTSTRAP_TENANT: &str = "default";
/// The `org_admin` service account `coffer up` bootstraps.
pub const ADMIN_PRINCIPAL: &str = "admin";

/// Trust domain of every dev certificate.
pub const TRUST_DOMAIN: &str = "coffer.local";
/// SPIFFE path of the operator certificate `coffer up` issues.
pub const OPERATOR_NAME: &str = "operator/admin";

/// credential-service's SQLite file in a data directory.
pub const CREDENTIAL_SERVICE_DB: &str = "credential-service.db";

/// The files of a prepared data directory.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Its `certs/` subdirectory.
    pub certs_dir: PathBuf,
    /// The operator's client certificate.
    pub operator: TlsFiles,
    /// The key-service's certificate.
    pub key_service: TlsFiles,
    /// The auth-service's certificate.
    pub auth_service: TlsFiles,
    /// The credential-service's certificate.
    pub credential_service: TlsFiles,
    /// The REST gateway's certificate (it calls the services with it).
    pub gateway: TlsFiles,
    /// The dev root keyring file.
    pub root_keys: PathBuf,
    /// The key-service's SQLite file.
    pub key_service_db: PathBuf,
    /// The auth-service's SQLite file.
    pub auth_service_db: PathBuf,
    /// The credential-service's SQLite file.
    pub credential_service_db: PathBuf,
}

/// What [`prepare`] found or made.
#[derive(Debug)]
pub struct Prepared {
    /// The paths.
    pub layout: Layout,
    /// The root keyring.
    pub keyring: RootKeyring,
    /// Whether the root keyring was generated just now.
    pub generated_root_key: bool,
}

/// Creates whatever is missing in `data_dir` and returns the layout.
///
/// # Errors
/// If the directory or a file cannot be created or read, or an existing file is unusable.
pub fn prepare(data_dir: &Path) -> anyhow::Result<Prepared> {
    create_private_dir(data_dir)?;
    let data_dir = data_dir
        .canonicalize()
        .with_context(|| format!("resolving {}", data_dir.display()))?;
    let Certificates {
        certs_dir,
        operator,
        key_service,
        auth_service,
        credential_service,
        gateway,
    } = stack_certificates(&data_dir, &[])?;

    let root_keys = data_dir.join("root-keys");
    let (keyring, generated_root_key) = if root_keys.exists() {
        let text = SecretString::from(
            std::fs::read_to_string(&root_keys)
                .with_context(|| format!("reading {}", root_keys.display()))?,
        );
        let keyring = RootKeyring::parse(&text)
            .with_context(|| format!("parsing {}", root_keys.display()))?;
        (keyring, false)
    } else {
        let keyring = RootKeyring::generate()?;
        write_private(&root_keys, keyring.to_text().expose_secret())?;
        (keyring, true)
    };

    let layout = Layout {
        key_service_db: data_dir.join("key-service.db"),
        auth_service_db: data_dir.join("auth-service.db"),
        credential_service_db: data_dir.join(CREDENTIAL_SERVICE_DB),
        data_dir,
        certs_dir,
        operator,
        key_service,
        auth_service,
        credential_service,
        gateway,
        root_keys,
    };
    lock_down(&layout)?;
    Ok(Prepared {
        layout,
        keyring,
        generated_root_key,
    })
}

/// Makes the data directory private whatever existed before: 0700 on the directories, 0600
/// on every file in them (keys, certificates, keyring, API key, databases and their SQLite
/// journals). The databases are created here, empty and 0600, before SQLite opens them, so
/// they (and the `-wal`/`-shm` files SQLite gives the same mode) are never readable by others.
///
/// # Errors
/// If a mode cannot be set or a database file cannot be created.
#[cfg(unix)]
fn lock_down(layout: &Layout) -> anyhow::Result<()> {
    for database in [
        &layout.key_service_db,
        &layout.auth_service_db,
        &layout.credential_service_db,
    ] {
        let mut options = std::fs::OpenOptions::new();
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options
            .write(true)
            .create(true)
            .truncate(false)
            .open(database)
            .with_context(|| format!("creating {}", database.display()))?;
    }
    for dir in [&layout.data_dir, &layout.certs_dir] {
        lock_down_dir(dir)?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn lock_down(_layout: &Layout) -> anyhow::Result<()> {
    Ok(())
}

/// 0700 on `dir`, 0600 on every file in it.
///
/// # Errors
/// If a mode cannot be set or the directory cannot be read.
#[cfg(unix)]
fn lock_down_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let set = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting mode {mode:o} on {}", path.display()))
    };
    set(dir, 0o700)?;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_file() {
            set(&path, 0o600)?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn lock_down_dir(_dir: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// The CA and the certificates of a whole stack, in `certs/` of a data directory.
#[derive(Debug, Clone)]
pub struct Certificates {
    /// `DIR/certs`, holding `ca.pem` too.
    pub certs_dir: PathBuf,
    /// The operator's client certificate (`spiffe://coffer.local/operator/admin`).
    pub operator: TlsFiles,
    /// The key-service's.
    pub key_service: TlsFiles,
    /// The auth-service's.
    pub auth_service: TlsFiles,
    /// The credential-service's.
    pub credential_service: TlsFiles,
    /// The REST gateway's (`spiffe://coffer.local/gateway`).
    pub gateway: TlsFiles,
}

/// Creates (or reuses) the dev CA in `data_dir/certs` and the operator's, the three
/// services' and the gateway's certificates, the services' and the gateway's also valid for `hosts` (besides `localhost`,
/// `127.0.0.1` and `::1`).
///
/// # Errors
/// If a directory or file cannot be created or read, or an existing certificate holds another
/// identity or lacks a host asked for.
pub fn stack_certificates(data_dir: &Path, hosts: &[HostName]) -> anyhow::Result<Certificates> {
    let certs_dir = data_dir.join("certs");
    create_private_dir(data_dir)?;
    create_private_dir(&certs_dir)?;
    let ca = DevCa::load_or_create(&certs_dir, TRUST_DOMAIN)?;
    let service = |name: &str| ca.issue_files_for(&certs_dir, name, name, Usage::Service, hosts);
    let certificates = Certificates {
        operator: ca.issue_files(&certs_dir, "operator", OPERATOR_NAME, Usage::Client)?,
        key_service: service("key-service")?,
        auth_service: service("auth-service")?,
        credential_service: service("credential-service")?,
        gateway: service("gateway")?,
        certs_dir: certs_dir.clone(),
    };
    lock_down_dir(&certs_dir)?;
    Ok(certificates)
}

/// Issues a certificate for `spiffe://coffer.local/{name}` from the data directory's dev CA
/// into `certs/{stem}.pem` and `certs/{stem}-key.pem`, where `stem` is `name` with `/`
/// replaced by `+` (a character SPIFFE paths never hold, so distinct names never share
/// files): a client certificate, or with [`Usage::Service`] a server one also valid for
/// `hosts`. Existing files are kept when they hold that identity with that usage and those
/// hosts, and refused otherwise.
///
/// # Errors
/// If the CA cannot be loaded, the name is not a valid SPIFFE path, files cannot be written,
/// or existing files hold another identity or lack the usage or a host.
pub fn issue_certificate(
    data_dir: &Path,
    name: &str,
    usage: Usage,
    hosts: &[HostName],
) -> anyhow::Result<TlsFiles> {
    let certs_dir = data_dir.join("certs");
    anyhow::ensure!(
        certs_dir
            .join(coffer_transport::dev_ca::CA_CERT_FILE)
            .exists(),
        "no dev CA in {}: run `coffer up --data-dir {}` first",
        certs_dir.display(),
        data_dir.display()
    );
    let ca = DevCa::load_or_create(&certs_dir, TRUST_DOMAIN)?;
    Ok(ca.issue_files_for(&certs_dir, &certificate_stem(name), name, usage, hosts)?)
}

/// The operator certificate, key and CA in `data_dir/certs` (from `coffer up` or `coffer certs
/// init`).
pub fn operator_files(data_dir: &Path) -> TlsFiles {
    let certs = data_dir.join("certs");
    TlsFiles {
        cert: certs.join("operator.pem"),
        key: certs.join("operator-key.pem"),
        ca: certs.join(coffer_transport::dev_ca::CA_CERT_FILE),
    }
}

/// The file stem of `name`'s certificate: injective, since `+` is never in a SPIFFE path.
pub fn certificate_stem(name: &str) -> String {
    name.replace('/', "+")
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Creates `path` with mode 0600 (it must not exist yet) and writes `contents`.
///
/// # Errors
/// If the file exists or cannot be written.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity_of(files: &TlsFiles) -> String {
        let material = coffer_transport::TlsMaterial::load(files).unwrap();
        material.identity().unwrap().to_string()
    }

    #[cfg(unix)]
    #[test]
    fn a_world_readable_data_dir_is_locked_down_at_start() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        prepare(&data_dir).unwrap();
        // Someone (or an old version) opened everything up.
        let open = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        open(&data_dir, 0o755);
        open(&data_dir.join("certs"), 0o755);
        for file in [
            "root-keys",
            "key-service.db",
            "certs/ca-key.pem",
            "certs/operator.pem",
        ] {
            open(&data_dir.join(file), 0o644);
        }
        std::fs::write(data_dir.join("auth-service.db-wal"), b"").unwrap();
        open(&data_dir.join("auth-service.db-wal"), 0o666);

        let prepared = prepare(&data_dir).unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&prepared.layout.data_dir), 0o700);
        assert_eq!(mode(&prepared.layout.certs_dir), 0o700);
        for entry in std::fs::read_dir(&prepared.layout.data_dir)
            .unwrap()
            .chain(std::fs::read_dir(&prepared.layout.certs_dir).unwrap())
        {
            let path = entry.unwrap().path();
            if path.is_file() {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
            }
        }
        assert!(prepared.layout.credential_service_db.exists());
    }

    #[test]
    fn certificate_names_never_share_files_or_hand_out_another_identity() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        prepare(&data_dir).unwrap();
        let slash_dash = issue_certificate(&data_dir, "operator-x/y", Usage::Client, &[]).unwrap();
        let dash_slash = issue_certificate(&data_dir, "operator/x-y", Usage::Client, &[]).unwrap();
        let dashes = issue_certificate(&data_dir, "operator-x-y", Usage::Client, &[]).unwrap();
        assert_ne!(slash_dash.cert, dash_slash.cert);
        assert_ne!(slash_dash.cert, dashes.cert);
        assert_eq!(
            identity_of(&slash_dash),
            "spiffe://coffer.local/operator-x/y"
        );
        assert_eq!(
            identity_of(&dash_slash),
            "spiffe://coffer.local/operator/x-y"
        );
        assert_eq!(identity_of(&dashes), "spiffe://coffer.local/operator-x-y");
        // Asking again hands back the same files.
        assert_eq!(
            issue_certificate(&data_dir, "operator/x-y", Usage::Client, &[])
                .unwrap()
                .cert,
            dash_slash.cert
        );
        // `operator.pem` is the bootstrap operator's (operator/admin): never handed out as
        // the certificate of `operator`.
        let error = issue_certificate(&data_dir, "operator", Usage::Client, &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("already holds the certificate of spiffe://coffer.local/operator/admin"),
            "{error}"
        );
    }
}
