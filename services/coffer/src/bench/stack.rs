//! The stack under test: a `coffer up` child process (so load generator and services never
//! share a runtime, and the stack's memory is its own), on SQLite files or on a fresh
//! PostgreSQL database dropped afterwards; or a stack someone else started.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use coffer_transport::{TlsFiles, TlsMaterial};
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::ConnectOptions as _;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tonic::transport::{Channel, Endpoint};

/// How long a child stack may take to start (PostgreSQL migrations included).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the stack keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// SQLite files in the data directory.
    Sqlite,
    /// A fresh database on the PostgreSQL server of this URL (its database part is replaced).
    Postgres(String),
}

impl Backend {
    /// `sqlite` or `postgres`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// A running stack's addresses, its operator files and, for a child, its process id.
pub struct Stack {
    /// key-service.
    pub key_service: SocketAddr,
    /// auth-service.
    pub auth_service: SocketAddr,
    /// credential-service.
    pub credential_service: SocketAddr,
    /// The REST gateway.
    pub gateway: SocketAddr,
    /// Its data directory (the operator certificate, the bootstrap admin key).
    pub data_dir: PathBuf,
    child: Option<Child>,
}

struct Child {
    process: tokio::process::Child,
    /// A data directory of our own, removed at the end.
    owned_dir: PathBuf,
    database: Option<Database>,
}

/// A PostgreSQL database created for one run.
struct Database {
    admin: sqlx::postgres::PgConnectOptions,
    name: String,
}

impl Stack {
    /// Starts `coffer up` (this executable) on `backend` in a new data directory, on free
    /// loopback ports, and waits until it has printed its addresses.
    ///
    /// # Errors
    /// If the database cannot be created or the stack does not start in time (with the tail of
    /// its log).
    pub async fn spawn(
        backend: &Backend,
        record_cache_ttl: Option<Duration>,
    ) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "coffer-bench-{}-{}",
            std::process::id(),
            backend.name()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres(url) => Some(Database::create(url).await?),
        };
        let log = dir.join("stack.log");
        let mut command = tokio::process::Command::new(
            std::env::current_exe().context("locating the coffer executable")?,
        );
        command
            .arg("up")
            .arg("--data-dir")
            .arg(&dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(["--auth-listen", "127.0.0.1:0"])
            .args(["--credential-listen", "127.0.0.1:0"])
            .args(["--gateway-listen", "127.0.0.1:0"])
            // The load comes from one address; the limit would measure itself.
            .args(["--gateway-rate-limit", "0"])
            .args(["--gateway-key-rate-limit", "0"])
            .args(["--oauth-resource", super::rows::OAUTH_RESOURCE])
            .args(["--shutdown-grace", "5"])
            .env_remove("COFFER_UP_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).context("creating the stack log")?)
            .kill_on_drop(true);
        if let Some(ttl) = record_cache_ttl {
            command.arg(format!("--record-cache-ttl={}ms", ttl.as_millis()));
        }
        if let Some(database) = &database {
            // Through the environment, not argv: a URL may carry a password.
            command.env("COFFER_UP_DATABASE_URL", database.url().expose_secret());
        }
        let mut process = match command.spawn() {
            Ok(process) => process,
            Err(error) => {
                clean_up(&dir, database).await;
                return Err(error).context("starting coffer up");
            }
        };
        let stdout = process.stdout.take().context("coffer up's stdout")?;
        let addresses = tokio::time::timeout(START_TIMEOUT, addresses(stdout)).await;
        let mut child = Child {
            process,
            owned_dir: dir.clone(),
            database,
        };
        match addresses {
            Ok(Ok([key_service, auth_service, credential_service, gateway])) => Ok(Self {
                key_service,
                auth_service,
                credential_service,
                gateway,
                data_dir: dir,
                child: Some(child),
            }),
            failed => {
                let _ = child.process.start_kill();
                let _ = child.process.wait().await;
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(15).collect();
                let why = match failed {
                    Ok(Err(error)) => format!("{error:#}"),
                    _ => format!("not ready within {START_TIMEOUT:?}"),
                };
                child.remove().await;
                anyhow::bail!(
                    "coffer up did not start ({why}); its log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            }
        }
    }

    /// A stack started apart (a `coffer up` with data directory `data_dir`).
    pub fn running(
        data_dir: PathBuf,
        key_service: SocketAddr,
        auth_service: SocketAddr,
        credential_service: SocketAddr,
        gateway: SocketAddr,
    ) -> Self {
        Self {
            key_service,
            auth_service,
            credential_service,
            gateway,
            data_dir,
            child: None,
        }
    }

    /// Where credential-service keeps its rows: the child's PostgreSQL database, or the
    /// SQLite file in the data directory (`None` for a stack started apart on PostgreSQL,
    /// whose data directory holds the SQLite files only as the empty placeholders `coffer up`
    /// creates with their permissions).
    pub fn credential_database(&self) -> Option<SecretString> {
        if let Some(database) = self.child.as_ref().and_then(|c| c.database.as_ref()) {
            return Some(database.url());
        }
        let file = self.data_dir.join(crate::layout::CREDENTIAL_SERVICE_DB);
        let in_use = std::fs::metadata(&file).is_ok_and(|meta| meta.len() > 0);
        in_use.then(|| SecretString::from(format!("sqlite://{}", file.display())))
    }

    /// A database of the child's own, beside its data, for the in-process write baseline:
    /// `bench-scratch.db` in its data directory, or its PostgreSQL database (the rows go in a
    /// schema of their own). `None` for a stack started apart: the bench writes nothing there.
    pub fn scratch_database(&self) -> Option<SecretString> {
        let child = self.child.as_ref()?;
        Some(match &child.database {
            Some(database) => database.url(),
            None => SecretString::from(format!(
                "sqlite://{}?mode=rwc",
                child.owned_dir.join("bench-scratch.db").display()
            )),
        })
    }

    /// The operator's certificate files.
    pub fn operator(&self) -> TlsFiles {
        crate::layout::operator_files(&self.data_dir)
    }

    /// `count` separate HTTP/2 connections to `addr` as the operator.
    ///
    /// # Errors
    /// If the certificate cannot be read or a connection fails.
    pub async fn channels(&self, addr: SocketAddr, count: usize) -> anyhow::Result<Vec<Channel>> {
        let material = TlsMaterial::load(&self.operator()).context("the operator certificate")?;
        let mut channels = Vec::new();
        for _ in 0..count.max(1) {
            channels.push(
                Endpoint::from_shared(format!("https://{addr}"))?
                    .tls_config(material.client_config(&addr.ip().to_string()))?
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .with_context(|| format!("cannot reach {addr}"))?,
            );
        }
        Ok(channels)
    }

    /// The child's memory now and at its peak, if it is our child.
    pub fn memory(&self) -> Option<Memory> {
        let pid = self.child.as_ref()?.process.id()?;
        Memory::of(pid)
    }

    /// Stops a child stack (SIGTERM, then a kill after 10 s), removes its data directory and
    /// drops its database; a stack started apart is left running.
    ///
    /// # Errors
    /// If the child could not be stopped.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.process.id() {
            // No signal API in std: `kill -TERM`, as an operator would.
            let _ = tokio::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(10), child.process.wait())
            .await
            .is_err()
        {
            child.process.kill().await.context("killing coffer up")?;
        }
        child.remove().await;
        Ok(())
    }
}

impl Child {
    async fn remove(self) {
        clean_up(&self.owned_dir, self.database).await;
    }
}

/// Removes a child's data directory and drops its database.
async fn clean_up(dir: &Path, database: Option<Database>) {
    let _ = std::fs::remove_dir_all(dir);
    if let Some(database) = database {
        database.drop().await;
    }
}

impl Database {
    async fn create(url: &str) -> anyhow::Result<Self> {
        let admin: sqlx::postgres::PgConnectOptions = url.parse().context("the PostgreSQL URL")?;
        let name = format!("coffer_bench_{}", std::process::id());
        let mut connection = admin
            .connect()
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {}", host(&admin)))?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut connection)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut connection)
            .await
            .context("creating the bench database")?;
        Ok(Self { admin, name })
    }

    fn url(&self) -> SecretString {
        SecretString::from(
            self.admin
                .clone()
                .database(&self.name)
                .to_url_lossy()
                .to_string(),
        )
    }

    async fn drop(self) {
        if let Ok(mut connection) = self.admin.connect().await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut connection)
            .await;
        }
    }
}

fn host(options: &sqlx::postgres::PgConnectOptions) -> String {
    format!("{}:{}", options.get_host(), options.get_port())
}

/// Reads `coffer up`'s stdout until it has named the three services' and the gateway's
/// addresses, then keeps draining it in the background (so the child never blocks on a full
/// pipe).
async fn addresses(stdout: tokio::process::ChildStdout) -> anyhow::Result<[SocketAddr; 4]> {
    let mut lines = BufReader::new(stdout).lines();
    let mut found: [Option<SocketAddr>; 4] = [None; 4];
    let prefixes = [
        "key-service listening on ",
        "auth-service listening on ",
        "credential-service listening on ",
        "gateway listening on http://",
    ];
    while found.iter().any(Option::is_none) {
        let line = lines
            .next_line()
            .await?
            .context("coffer up exited before it was ready")?;
        for (slot, prefix) in found.iter_mut().zip(prefixes) {
            if let Some(addr) = line.strip_prefix(prefix) {
                *slot = Some(
                    addr.trim()
                        .parse()
                        .context("an address coffer up printed")?,
                );
            }
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(found.map(|addr| addr.unwrap_or_else(|| unreachable!("every address was found"))))
}

/// Resident memory of a process, from `/proc/{pid}/status` (Linux).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size now, in KiB (`VmRSS`).
    pub rss_kib: u64,
    /// The highest resident set size so far, in KiB (`VmHWM`).
    pub peak_kib: u64,
}

impl Memory {
    fn of(pid: u32) -> Option<Self> {
        Self::parse(
            &std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))
                .ok()?,
        )
    }

    fn parse(status: &str) -> Option<Self> {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        };
        Some(Self {
            rss_kib: field("VmRSS:")?,
            peak_kib: field("VmHWM:")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_read_from_proc_status() {
        let status = "Name:\tcoffer\nVmHWM:\t  91234 kB\nVmRSS:\t   40960 kB\nThreads:\t7\n";
        assert_eq!(
            Memory::parse(status),
            Some(Memory {
                rss_kib: 40960,
                peak_kib: 91234
            })
        );
        assert_eq!(Memory::parse("Name:\tcoffer\n"), None);
        assert!(Memory::of(std::process::id()).is_some_and(|m| m.rss_kib > 0));
    }
}
