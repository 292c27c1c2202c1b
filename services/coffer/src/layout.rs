//! The data directory of `coffer up`, created on first use and reused afterwards:
//!
//! ```text
//! DIR/                    0700
//!   root-keys             0600  dev root keyring ({version}:{base64} lines)
//!   admin-api-key         0600  the bootstrap org_admin API key of tenant `default`
//!   key-service.db              SQLite database of the key-service
//!   auth-service.db             SQLite database of the auth-service
//!   credential-service.db       SQLite database of the credential-service
//!   certs/
//!     ca.pem, ca-key.pem        dev CA (key 0600)
//!     operator.pem, operator-key.pem        spiffe://coffer.local/operator/admin
//!     key-service.pem, key-service-key.pem    spiffe://coffer.local/key-service
//!     auth-service.pem, auth-service-key.pem  spiffe://coffer.local/auth-service
//!     credential-service.pem, ...-key.pem     spiffe://coffer.local/credential-service
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use coffer_key_service::keyring::RootKeyring;
use coffer_transport::dev_ca::Usage;
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
    let certs_dir = data_dir.join("certs");
    create_private_dir(&certs_dir)?;
    let ca = DevCa::load_or_create(&certs_dir, TRUST_DOMAIN)?;
    let operator = ca.issue_files(&certs_dir, "operator", OPERATOR_NAME, Usage::Client)?;
    let key_service = ca.issue_files(&certs_dir, "key-service", "key-service", Usage::Service)?;
    let auth_service =
        ca.issue_files(&certs_dir, "auth-service", "auth-service", Usage::Service)?;
    let credential_service = ca.issue_files(
        &certs_dir,
        "credential-service",
        "credential-service",
        Usage::Service,
    )?;

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
        credential_service_db: data_dir.join("credential-service.db"),
        data_dir,
        certs_dir,
        operator,
        key_service,
        auth_service,
        credential_service,
        root_keys,
    };
    Ok(Prepared {
        layout,
        keyring,
        generated_root_key,
    })
}

/// Issues a client certificate for `spiffe://coffer.local/{name}` from the data directory's
/// dev CA into `certs/{stem}.pem` and `certs/{stem}-key.pem`, where `stem` is `name` with `/`
/// replaced by `-`. Existing files are kept.
///
/// # Errors
/// If the CA cannot be loaded, the name is not a valid SPIFFE path, or files cannot be written.
pub fn issue_client_certificate(data_dir: &Path, name: &str) -> anyhow::Result<TlsFiles> {
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
    let stem = name.replace('/', "-");
    Ok(ca.issue_files(&certs_dir, &stem, name, Usage::Client)?)
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
