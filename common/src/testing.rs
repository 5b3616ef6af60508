//! Helpers for integration tests that run against either database backend.
//!
//! `LINTAS_TEST_BACKEND` picks the backend (`sqlite`, the default, or
//! `postgres`); `scripts/test.sh` runs the suites once with each. On
//! PostgreSQL every call creates its own database on the server named by
//! `LINTAS_TEST_POSTGRES_URL`, so tests run in parallel without sharing
//! state.

use std::path::Path;

use sqlx::Connection;

use crate::database::Backend;

/// Server used when `LINTAS_TEST_POSTGRES_URL` is unset.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/postgres";

/// Prefix of every database the tests create; `scripts/test.sh` drops them.
pub const TEST_DATABASE_PREFIX: &str = "lintas_test_";

/// Returns the backend that `LINTAS_TEST_BACKEND` selects.
pub fn test_backend() -> Backend {
    match std::env::var("LINTAS_TEST_BACKEND").as_deref() {
        Ok("postgres") => Backend::Postgres,
        Ok("sqlite") | Err(_) => Backend::Sqlite,
        Ok(other) => panic!("invalid LINTAS_TEST_BACKEND {other:?}, expected sqlite or postgres"),
    }
}

/// Returns the URL of a new, empty database on the selected backend. A
/// SQLite file named `name` is placed in `folder`.
pub async fn fresh_database_url(folder: &Path, name: &str) -> String {
    match test_backend() {
        Backend::Sqlite => format!("sqlite://{}", folder.join(format!("{name}.db")).display()),
        Backend::Postgres => create_postgres_database().await,
    }
}

async fn create_postgres_database() -> String {
    sqlx::any::install_default_drivers();
    let server = std::env::var("LINTAS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    let database = format!("{TEST_DATABASE_PREFIX}{}", uuid::Uuid::new_v4().simple());
    let mut connection = sqlx::AnyConnection::connect(&server)
        .await
        .unwrap_or_else(|error| {
            panic!("failed to connect to test PostgreSQL at {server}: {error}")
        });
    sqlx::query(&format!("CREATE DATABASE {database}"))
        .execute(&mut connection)
        .await
        .unwrap_or_else(|error| panic!("failed to create test database {database}: {error}"));
    let _ = connection.close().await;

    let base = server
        .rsplit_once('/')
        .map_or(server.as_str(), |(base, _)| base);
    format!("{base}/{database}")
}
