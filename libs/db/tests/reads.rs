//! `connect_reads`: a read-only pool beside a service's own, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)]

use coffer_db::{Config, Migrations, connect, connect_reads};
use coffer_test_support::{Backend, TestDatabase};
use secrecy::SecretString;
use sqlx::migrate::Migrator;

static NO_MIGRATIONS: Migrator = Migrator::DEFAULT;

const SCHEMA: &str = "coffer_reads_test";

fn migrations() -> Migrations {
    Migrations {
        sqlite: &NO_MIGRATIONS,
        postgres: &NO_MIGRATIONS,
        schema: SCHEMA,
        table: "t",
    }
}

/// A pool opened apart reads the service's tables (in its schema) and every committed write,
/// and refuses to write.
async fn reads_beside_the_service(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let config = Config::new(SecretString::from(database.url().to_owned()));
    let service = connect(&config, &migrations()).await.unwrap();
    sqlx::query("CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT NOT NULL)")
        .execute(&service.pool)
        .await
        .unwrap();
    let reads = connect_reads(&config, SCHEMA).await.unwrap();
    for id in 1..=3_i64 {
        sqlx::query("INSERT INTO t (id, v) VALUES ($1, $2)")
            .bind(id)
            .bind(format!("v{id}"))
            .execute(&service.pool)
            .await
            .unwrap();
        let seen: String = sqlx::query_scalar("SELECT v FROM t WHERE id = $1")
            .bind(id)
            .fetch_one(&reads)
            .await
            .unwrap();
        assert_eq!(
            seen,
            format!("v{id}"),
            "{backend:?}: a committed write unseen"
        );
    }
    let write = sqlx::query("INSERT INTO t (id, v) VALUES (9, 'x')")
        .execute(&reads)
        .await;
    assert!(
        write.is_err(),
        "{backend:?}: a write went through the read pool"
    );
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
        .fetch_one(&service.pool)
        .await
        .unwrap();
    assert_eq!(count, 3, "{backend:?}: the refused write left a row");
    reads.close().await;
    service.close().await;
}

#[tokio::test]
async fn a_read_pool_apart_reads_and_cannot_write_on_sqlite() {
    reads_beside_the_service(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_read_pool_apart_reads_and_cannot_write_on_postgres() {
    reads_beside_the_service(Backend::Postgres).await;
}

#[tokio::test]
async fn an_invalid_schema_is_refused_before_connecting() {
    let config = Config::new(SecretString::from("sqlite::memory:".to_owned()));
    let refused = connect_reads(&config, "no; DROP").await;
    assert!(
        matches!(refused, Err(coffer_db::Error::Schema(..))),
        "{refused:?}"
    );
}
