//! Database plumbing shared by Coffer services.
//!
//! Every service stores its tables through one sqlx `Any` pool, so one code path serves the
//! embedded SQLite default and PostgreSQL in production. The `Any` driver maps only the types
//! both databases share: store flags as 0/1 `BIGINT`, times as unix-seconds `BIGINT`, binary
//! as `BLOB`/`BYTEA`, and write SQL that both accept (`$1` parameters, `ON CONFLICT`,
//! `RETURNING`). [`fresh`] keeps hot rows in memory within a stated staleness bound.

pub mod fresh;

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor as _};

/// The database behind a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// The backend a database URL names, if supported.
    pub fn from_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// A service's migrations, one directory per backend, and the PostgreSQL schema its tables
/// live in unless configured otherwise.
#[derive(Debug)]
pub struct Migrations {
    /// For SQLite.
    pub sqlite: &'static Migrator,
    /// For PostgreSQL.
    pub postgres: &'static Migrator,
    /// The service's default PostgreSQL schema (`coffer_key`, ...): its tables and its
    /// migration history live there, so the services can share one database.
    pub schema: &'static str,
    /// A table only this service has: found in `public` while the schema does not exist yet,
    /// it marks a deployment from before schemas, which must not start empty beside its data.
    pub table: &'static str,
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL names no supported database.
    #[error("database URL must start with sqlite: or postgres://")]
    UnsupportedUrl,
    /// Connecting failed; `at` names the database without credentials (`host:port/db`, or
    /// the SQLite path), the source says why (refused, unknown database, authentication,
    /// timeout).
    #[error("cannot connect to the database at {at}")]
    Connect {
        /// Where.
        at: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// The service's tables exist in schema `public` (a deployment from before schemas) while
    /// the configured schema does not exist: starting would create empty tables beside them.
    #[error(
        "this service's tables are in schema public, not {0}; set DATABASE_SCHEMA=public to \
         keep using them"
    )]
    TablesInPublic(String),
    /// The service's schema could not be created or selected.
    #[error("cannot create or use schema {0}")]
    Schema(String, #[source] sqlx::Error),
    /// A migration failed.
    #[error("database migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// How a service reaches its database, parsed in the service's section:
///
/// | key | default | meaning |
/// |---|---|---|
/// | `DATABASE_URL` | required | `sqlite:PATH` or `postgres://...` (secret: it may hold a password) |
/// | `DATABASE_MAX_CONNECTIONS` | 16 | PostgreSQL pool size (SQLite always uses one connection) |
/// | `DATABASE_SCHEMA` | the service's | PostgreSQL schema of the service's tables |
#[derive(Debug, Clone)]
pub struct Config {
    /// `sqlite:...` or `postgres://...`.
    pub url: SecretString,
    /// PostgreSQL pool size.
    pub max_connections: u32,
    /// PostgreSQL schema; `None` is the service's own ([`Migrations::schema`]). Ignored on
    /// SQLite, where every service has its own file.
    pub schema: Option<String>,
}

/// The PostgreSQL pool size, unless configured.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

impl Config {
    /// `url` with the default pool size.
    pub fn new(url: SecretString) -> Self {
        Self {
            url,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            schema: None,
        }
    }

    /// Parses `DATABASE_URL` and `DATABASE_MAX_CONNECTIONS`; `None` with the problems
    /// recorded in `p`.
    pub fn parse(p: &mut coffer_config::Parser<'_>) -> Option<Self> {
        let url = p.required("DATABASE_URL").and_then(|url| {
            let url = SecretString::from(url);
            if Backend::from_url(url.expose_secret()).is_none() {
                p.error("DATABASE_URL", "must start with sqlite: or postgres://");
                None
            } else if connect_options(&url).is_err() {
                // Checked with the other settings, before anything connects.
                p.error("DATABASE_URL", "not a valid URL");
                None
            } else {
                Some(url)
            }
        });
        let max_connections = p.or("DATABASE_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS, |s| {
            s.parse::<u32>().ok().filter(|n| *n > 0)
        });
        let schema = match p.value("DATABASE_SCHEMA") {
            Some(schema) if is_valid_schema(&schema) => Some(Some(schema)),
            Some(_) => {
                p.error("DATABASE_SCHEMA", "must match [a-z_][a-z0-9_]{0,62}");
                None
            }
            None => Some(None),
        };
        Some(Self {
            url: url?,
            max_connections: max_connections?,
            schema: schema?,
        })
    }
}

/// An open, migrated database: the pool and which backend it talks to. Cheap to clone (the
/// pool is shared). Every service's store holds one.
#[derive(Debug, Clone)]
pub struct Database {
    /// The connection pool: every write and every transaction.
    pub pool: AnyPool,
    /// Single reads outside a transaction, on the hot paths. On a SQLite file, a pool of its
    /// own ([`SQLITE_READERS`] connections, `query_only`, so a write through it fails): WAL
    /// lets readers run beside the one writer, and they see every committed write. Elsewhere
    /// (PostgreSQL, an in-memory SQLite database) a handle on `pool`.
    pub reads: AnyPool,
    /// SQLite or PostgreSQL, for the few statements that differ (e.g. `pg_notify`).
    pub backend: Backend,
}

impl Database {
    /// SQLite or PostgreSQL, for the few statements that differ.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Tells every replica listening on `channel` (see [`listen`]) about a change, with
    /// PostgreSQL NOTIFY; nothing on SQLite (one process). Best effort: a lost notification
    /// is covered by each cache's own staleness bound, so a failure is logged, not returned.
    pub async fn notify(&self, channel: &'static str, payload: &str) {
        if self.backend != Backend::Postgres {
            return;
        }
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&self.pool)
            .await;
        if let Err(error) = sent {
            tracing::warn!(%error, channel, "change notification failed; replicas rely on their cache bounds");
        }
    }

    /// Closes the pool, waiting for connections to be returned (at shutdown).
    pub async fn close(&self) {
        self.reads.close().await;
        self.pool.close().await;
    }
}

/// Whether `schema` is a PostgreSQL schema name Coffer accepts: `[a-z_][a-z0-9_]{0,62}`, so it
/// needs no quoting and never holds SQL.
pub fn is_valid_schema(schema: &str) -> bool {
    let mut bytes = schema.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && schema.len() <= 63
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Connects and applies pending migrations.
///
/// SQLite gets WAL journaling, foreign keys, `secure_delete` (deleted secrets are overwritten,
/// not left in free pages) and a single writing connection (one writer, no busy errors), plus
/// a read pool for a file (see [`Database::reads`]). PostgreSQL
/// gets a pool of `max_connections`, every connection using the service's schema (created if
/// missing), so the three services can share one database: each has its own tables and its
/// own migration history.
///
/// # Errors
/// [`Error`] saying which step failed.
pub async fn connect(config: &Config, migrations: &Migrations) -> Result<Database, Error> {
    let (url, max_connections) = (&config.url, config.max_connections);
    let schema = config
        .schema
        .clone()
        .unwrap_or_else(|| migrations.schema.to_owned());
    if !is_valid_schema(&schema) {
        return Err(Error::Schema(
            schema,
            sqlx::Error::Configuration("invalid schema name".into()),
        ));
    }
    sqlx::any::install_default_drivers();
    let backend = Backend::from_url(url.expose_secret()).ok_or(Error::UnsupportedUrl)?;
    let options = match backend {
        Backend::Sqlite => sqlite_pool(1, SQLITE_WRITER_PRAGMAS),
        Backend::Postgres => {
            create_schema(url, &schema, migrations.table).await?;
            postgres_pool(max_connections, &schema, false)
        }
    };
    let pool = open_pool(options, url).await?;
    let migrator = match backend {
        Backend::Sqlite => migrations.sqlite,
        Backend::Postgres => migrations.postgres,
    };
    migrator.run(&pool).await.map_err(Error::Migrate)?;
    let reads = match backend {
        Backend::Sqlite if !is_in_memory(url) => {
            open_pool(sqlite_pool(SQLITE_READERS, SQLITE_READER_PRAGMAS), url).await?
        }
        _ => pool.clone(),
    };
    Ok(Database {
        pool,
        reads,
        backend,
    })
}

/// A read-only pool on a database that a running service has created and migrated, set up as
/// that service's [`Database::reads`] is: on a SQLite file [`SQLITE_READERS`] `query_only`
/// connections, on PostgreSQL `max_connections` in `schema`, in read-only transactions. For
/// tools that read beside a service (`coffer bench` measures one indexed read with it); a
/// service itself opens its database with [`connect`].
///
/// # Errors
/// [`Error`] saying which step failed.
pub async fn connect_reads(config: &Config, schema: &str) -> Result<AnyPool, Error> {
    if !is_valid_schema(schema) {
        return Err(Error::Schema(
            schema.to_owned(),
            sqlx::Error::Configuration("invalid schema name".into()),
        ));
    }
    sqlx::any::install_default_drivers();
    let options = match Backend::from_url(config.url.expose_secret()) {
        Some(Backend::Sqlite) => sqlite_pool(SQLITE_READERS, SQLITE_READER_PRAGMAS),
        Some(Backend::Postgres) => postgres_pool(config.max_connections, schema, true),
        None => return Err(Error::UnsupportedUrl),
    };
    open_pool(options, &config.url).await
}

/// A PostgreSQL pool of `connections` whose tables are those of `schema` (a valid name: see
/// [`is_valid_schema`]), read-only if `read_only`.
fn postgres_pool(connections: u32, schema: &str, read_only: bool) -> AnyPoolOptions {
    let mut setup = format!("SET search_path TO {schema}");
    if read_only {
        setup.push_str("; SET default_transaction_read_only = on");
    }
    AnyPoolOptions::new()
        .max_connections(connections)
        .after_connect(move |conn, _| {
            let setup = setup.clone();
            Box::pin(async move {
                conn.execute(sqlx::AssertSqlSafe(setup)).await?;
                Ok(())
            })
        })
}

/// Connections of a SQLite file's read pool (see [`Database::reads`]).
pub const SQLITE_READERS: u32 = 4;

/// An in-memory SQLite database exists once per connection: it cannot have readers apart.
fn is_in_memory(url: &SecretString) -> bool {
    let url = url.expose_secret();
    url.contains(":memory:") || url.contains("mode=memory")
}

/// The most memory each SQLite connection's page cache may hold, in KiB (SQLite's own default,
/// set here so the bound is Coffer's): a service's file keeps at most
/// `(1 + SQLITE_READERS) * SQLITE_PAGE_CACHE_KIB` of its pages in memory, and the cache grows
/// towards that as the file does. The pragmas below spell the same number.
pub const SQLITE_PAGE_CACHE_KIB: u32 = 2000;

/// The writer's settings: WAL (so readers run beside it), foreign keys, deleted secrets
/// overwritten, a wait instead of a busy error, a bounded page cache.
const SQLITE_WRITER_PRAGMAS: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA secure_delete = ON",
    "PRAGMA busy_timeout = 5000",
    "PRAGMA cache_size = -2000",
];

/// The readers' settings, opened after the writer has run the migrations (so the file and its
/// WAL mode exist): no write goes through them.
const SQLITE_READER_PRAGMAS: &[&str] = &[
    "PRAGMA busy_timeout = 5000",
    "PRAGMA foreign_keys = ON",
    "PRAGMA query_only = ON",
    "PRAGMA cache_size = -2000",
];

/// A SQLite pool of `connections`, each set up with `pragmas`.
fn sqlite_pool(connections: u32, pragmas: &'static [&'static str]) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(connections)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                for pragma in pragmas {
                    conn.execute(*pragma).await?;
                }
                Ok(())
            })
        })
}

/// Opens a pool of `options` on `url`.
async fn open_pool(options: AnyPoolOptions, url: &SecretString) -> Result<AnyPool, Error> {
    options
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(connect_options(url)?)
        .await
        .map_err(|source| Error::Connect {
            at: where_is(url),
            source,
        })
}

/// Where `url` points, without user, password or parameters: `host:port/database` for
/// PostgreSQL, the path for SQLite. Safe for logs.
pub fn where_is(url: &SecretString) -> String {
    let url = url.expose_secret();
    let rest = url.split_once("://").map_or_else(
        || url.strip_prefix("sqlite:").unwrap_or(url),
        |(_, rest)| rest,
    );
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split(['?', '#']).next().unwrap_or_default().to_owned()
}

/// The connection options of `url`, with sqlx's statement logging off: it would write SQL
/// text to the log (at DEBUG, and slow statements at WARN), and no Coffer log carries SQL.
///
/// # Errors
/// [`Error::Connect`] for a URL sqlx cannot parse.
pub fn connect_options(url: &SecretString) -> Result<sqlx::any::AnyConnectOptions, Error> {
    use sqlx::ConnectOptions as _;
    let options: sqlx::any::AnyConnectOptions =
        url.expose_secret()
            .parse()
            .map_err(|source| Error::Connect {
                at: where_is(url),
                source,
            })?;
    Ok(options
        .log_statements(log::LevelFilter::Off)
        .log_slow_statements(log::LevelFilter::Off, Duration::from_secs(1)))
}

/// Creates `schema` unless it exists (checked first, so a role without CREATE on the database
/// can use a schema its administrator made). Refuses when the schema is missing but the
/// service's `table` is in `public`.
async fn create_schema(url: &SecretString, schema: &str, table: &str) -> Result<(), Error> {
    use sqlx::Connection as _;
    let mut conn = sqlx::AnyConnection::connect_with(&connect_options(url)?)
        .await
        .map_err(|source| Error::Connect {
            at: where_is(url),
            source,
        })?;
    let schema_error = |e| Error::Schema(schema.to_owned(), e);
    let exists = sqlx::query("SELECT 1 FROM pg_namespace WHERE nspname = $1")
        .bind(schema)
        .fetch_optional(&mut conn)
        .await
        .map_err(schema_error)?
        .is_some();
    if !exists {
        let in_public = sqlx::query(
            "SELECT 1 FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_name = $1",
        )
        .bind(table)
        .fetch_optional(&mut conn)
        .await
        .map_err(schema_error)?
        .is_some();
        if in_public {
            return Err(Error::TablesInPublic(schema.to_owned()));
        }
        // Valid names need no quoting (`is_valid_schema`). Two replicas creating it at once
        // can collide in the catalog even with IF NOT EXISTS: the loser finds it made.
        let created = conn
            .execute(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}"
            )))
            .await;
        match created {
            Ok(_) => {}
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("23505" | "42P06")) => {}
            Err(e) => return Err(schema_error(e)),
        }
    }
    let _ = conn.close().await;
    Ok(())
}

/// On PostgreSQL, runs until aborted: LISTENs on `channel` and calls `apply` with every
/// payload another replica (or this one) NOTIFYs. After every (re)connect, `connected` runs
/// first, so a cache can drop what it may have missed while disconnected. A failed connection
/// is retried after a second.
pub async fn listen<C, F, Fut>(
    url: SecretString,
    channel: &'static str,
    mut connected: C,
    mut apply: F,
) where
    C: FnMut(),
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        let Err(error) = listen_once(&url, channel, &mut connected, &mut apply).await;
        tracing::warn!(%error, channel, "change listener failed; retrying in a second");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen_once<C, F, Fut>(
    url: &SecretString,
    channel: &'static str,
    connected: &mut C,
    apply: &mut F,
) -> Result<std::convert::Infallible, sqlx::Error>
where
    C: FnMut(),
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use sqlx::ConnectOptions as _;
    // Statement logging off, as on every Coffer connection: no log carries SQL.
    let options = url
        .expose_secret()
        .parse::<sqlx::postgres::PgConnectOptions>()?
        .log_statements(log::LevelFilter::Off);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
    listener.listen(channel).await?;
    connected();
    loop {
        let notification = listener.recv().await?;
        apply(notification.payload().to_owned()).await;
    }
}

/// Whether a database failure means "down or overloaded" (answer UNAVAILABLE) rather than a
/// bug (INTERNAL).
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLite busy/locked; PostgreSQL connection exceptions (08xxx), shutdown (57P0x),
        // too many connections (53300).
        sqlx::Error::Database(e) => {
            let code = e.code();
            matches!(
                code.as_deref(),
                Some("5" | "6" | "517" | "57P01" | "57P02" | "57P03" | "53300")
            ) || code.is_some_and(|c| c.starts_with("08"))
        }
        _ => false,
    }
}

/// Whether a failure is a unique-constraint violation (SQLite 2067/1555, PostgreSQL 23505).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e)
        if matches!(e.code().as_deref(), Some("2067" | "1555" | "23505")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_follow_the_url_scheme() {
        assert_eq!(
            Backend::from_url("sqlite://x.db?mode=rwc"),
            Some(Backend::Sqlite)
        );
        assert_eq!(Backend::from_url("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(
            Backend::from_url("postgres://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::from_url("mysql://u@h/db"), None);
    }

    static NO_MIGRATIONS: Migrator = Migrator::DEFAULT;

    fn config(url: String) -> Config {
        Config {
            url: SecretString::from(url),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            schema: None,
        }
    }

    fn migrations() -> Migrations {
        Migrations {
            sqlite: &NO_MIGRATIONS,
            postgres: &NO_MIGRATIONS,
            schema: "coffer_test",
            table: "t",
        }
    }

    /// A SQLite file's read pool sees every committed write at once and refuses to write.
    #[tokio::test]
    async fn sqlite_readers_see_commits_and_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = connect(&config(url), &migrations()).await.unwrap();
        sqlx::query("CREATE TABLE t (v INTEGER)")
            .execute(&db.pool)
            .await
            .unwrap();
        for v in 1..=3_i64 {
            sqlx::query("INSERT INTO t (v) VALUES ($1)")
                .bind(v)
                .execute(&db.pool)
                .await
                .unwrap();
            let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
                .fetch_one(&db.reads)
                .await
                .unwrap();
            assert_eq!(seen, v, "a reader missed a committed write");
        }
        let write = sqlx::query("INSERT INTO t (v) VALUES (9)")
            .execute(&db.reads)
            .await;
        assert!(write.is_err(), "a write went through the read pool");
        // Negative: a size in KiB, not in pages.
        let bound = -i64::from(SQLITE_PAGE_CACHE_KIB);
        for pool in [&db.pool, &db.reads] {
            let cache: i64 = sqlx::query_scalar("PRAGMA cache_size")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(cache, bound, "each connection's page cache is bounded");
        }
        db.close().await;
    }

    #[tokio::test]
    async fn an_in_memory_database_reads_through_its_one_pool() {
        let db = connect(&config("sqlite::memory:".into()), &migrations())
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (v INTEGER)")
            .execute(&db.pool)
            .await
            .unwrap();
        let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&db.reads)
            .await
            .unwrap();
        assert_eq!(seen, 0, "the table exists for the readers too");
    }

    #[test]
    fn pool_exhaustion_is_unavailable_and_protocol_errors_are_not() {
        assert!(is_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(!is_unavailable(&sqlx::Error::Protocol("bad".into())));
    }
}
