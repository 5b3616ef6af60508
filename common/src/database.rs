//! Database connections shared by both services: one code path for SQLite
//! (the embedded default) and PostgreSQL (production), chosen by the URL.
//!
//! Services talk to the database through `sqlx::Any` with `$1`-style
//! placeholders, which both drivers accept, so every query runs unchanged
//! on either backend. Each backend has its own migration folder because DDL
//! differs (collations, byte types).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migrate, Migrator};
use sqlx::query::{Query, QueryAs};
use sqlx::{Any, AnyPool, Executor, FromRow};

/// Kind of database server behind a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Detects the backend from a `sqlite:` or `postgres:` URL.
    pub fn from_url(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Self::Postgres)
        } else {
            bail!("invalid DATABASE_URL: expected sqlite://PATH or postgres://USER@HOST/DATABASE");
        }
    }
}

/// Connection pool settings.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Most connections the pool opens. SQLite serialises writers anyway, so
    /// a larger pool mainly helps PostgreSQL.
    pub max_connections: u32,
    /// How long a query waits for a free connection before failing.
    pub acquire_timeout: Duration,
    /// Maximum time a single statement may run on PostgreSQL before the server
    /// cancels it. SQLite has no statement timeout.
    pub statement_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

/// Migration sets of one service, one per backend.
pub struct Migrations {
    pub sqlite: &'static Migrator,
    pub postgres: &'static Migrator,
}

/// Migration behaviour at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MigrationMode {
    /// Apply pending migrations.
    #[default]
    Apply,
    /// Fail unless every migration is already applied; change nothing.
    Check,
}

/// An open pool and the backend behind it.
#[derive(Clone, Debug)]
pub struct Database {
    pub pool: AnyPool,
    pub backend: Backend,
}

impl Database {
    /// Opens a pool for `url`. A SQLite file and its folder are created when
    /// missing.
    pub async fn connect(url: &str, settings: &PoolSettings) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(url)?,
            Backend::Postgres => url.to_owned(),
        };

        let statement_timeout_ms = settings.statement_timeout.as_millis();
        let pool = AnyPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    let statements: Vec<String> = match backend {
                        // WAL lets readers run beside the one writer; the busy
                        // timeout makes a second writer wait instead of failing.
                        Backend::Sqlite => vec![
                            "PRAGMA journal_mode = WAL".into(),
                            "PRAGMA busy_timeout = 5000".into(),
                            "PRAGMA foreign_keys = ON".into(),
                        ],
                        Backend::Postgres => {
                            vec![format!("SET statement_timeout = {statement_timeout_ms}")]
                        }
                    };
                    for statement in statements {
                        connection.execute(statement.as_str()).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .with_context(|| format!("failed to connect to {}", redact(&url)))?;
        Ok(Self { pool, backend })
    }

    /// Opens a pool for `url` to serve `mode`. A schema check never creates
    /// a SQLite file: a missing one fails instead.
    pub async fn connect_for(
        url: &str,
        settings: &PoolSettings,
        mode: MigrationMode,
    ) -> anyhow::Result<Self> {
        if matches!(mode, MigrationMode::Check)
            && Backend::from_url(url)? == Backend::Sqlite
            && let Some(path) = sqlite_path(url)
        {
            anyhow::ensure!(
                Path::new(path).exists(),
                "SQLite file {path} does not exist, so there is no schema to check"
            );
        }
        Self::connect(url, settings).await
    }

    /// Applies or checks the migrations that match this backend.
    pub async fn migrate(
        &self,
        migrations: &Migrations,
        mode: MigrationMode,
    ) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => migrations.sqlite,
            Backend::Postgres => migrations.postgres,
        };
        match mode {
            MigrationMode::Apply => migrator
                .run(&self.pool)
                .await
                .context("failed to apply migrations"),
            MigrationMode::Check => check_current(&self.pool, migrator).await,
        }
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so two writers queue on the busy timeout instead
    /// of one failing when it upgrades a read snapshot that went stale.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Returns the OpenTelemetry `db.system.name` of the backend.
    pub fn system_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        }
    }

    /// Registers `db_pool_connections{state="idle|in_use"}` and
    /// `db_pool_max_connections` in `registry`, refreshed every five seconds
    /// until the pool closes.
    pub fn export_pool_metrics(
        &self,
        registry: &prometheus::Registry,
        max_connections: u32,
    ) -> prometheus::Result<()> {
        let connections = prometheus::IntGaugeVec::new(
            prometheus::Opts::new("db_pool_connections", "Open database connections by state."),
            &["state"],
        )?;
        let maximum = prometheus::IntGauge::new(
            "db_pool_max_connections",
            "Largest number of pooled connections.",
        )?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(maximum.clone()))?;
        maximum.set(i64::from(max_connections));

        let pool = self.pool.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(5));
            while !pool.is_closed() {
                ticker.tick().await;
                let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
                let size = i64::from(pool.size());
                connections.with_label_values(&["idle"]).set(idle);
                connections.with_label_values(&["in_use"]).set(size - idle);
            }
        });
        Ok(())
    }

    /// Checks that the database responds.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
    }
}

async fn check_current(pool: &AnyPool, migrator: &Migrator) -> anyhow::Result<()> {
    let mut connection = pool.acquire().await?;
    let applied = connection
        .list_applied_migrations()
        .await
        .context("failed to read applied migrations; has the schema been created?")?;
    for migration in migrator.iter() {
        if migration.migration_type.is_down_migration() {
            continue;
        }
        match applied
            .iter()
            .find(|done| done.version == migration.version)
        {
            None => bail!(
                "schema is not current: migration {} ({}) is not applied",
                migration.version,
                migration.description
            ),
            Some(done) if done.checksum != migration.checksum => bail!(
                "schema differs from this binary: migration {} was changed after it was applied",
                migration.version
            ),
            Some(_) => {}
        }
    }
    Ok(())
}

/// Returns the file path of a SQLite URL; `None` for an in-memory database.
fn sqlite_path(url: &str) -> Option<&str> {
    let path = url
        .trim_start_matches("sqlite:")
        .trim_start_matches("//")
        .split('?')
        .next()
        .unwrap_or_default();
    (path != ":memory:" && !path.is_empty()).then_some(path)
}

/// Makes sure the SQLite file's folder exists and that the driver may
/// create the file.
fn prepare_sqlite_url(url: &str) -> anyhow::Result<String> {
    let parent = sqlite_path(url)
        .and_then(|path| Path::new(path).parent())
        .filter(|parent| !parent.as_os_str().is_empty());
    if let Some(parent) = parent {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("failed to create folder {}", parent.display()))?;
    }
    if url.contains("mode=") {
        return Ok(url.to_owned());
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{separator}mode=rwc"))
}

/// Hides the password of a URL, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A value bound to a `$n` placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Integer(i64),
    Text(String),
    Bytes(Vec<u8>),
}

/// Builds SQL with numbered `$n` placeholders, which SQLite and PostgreSQL
/// both accept, and binds the values in order.
#[derive(Debug, Default)]
pub struct SqlBuilder {
    sql: String,
    params: Vec<Param>,
}

impl SqlBuilder {
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            params: Vec::new(),
        }
    }

    /// Appends SQL text.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder for `param`.
    pub fn bind(&mut self, param: Param) -> &mut Self {
        self.params.push(param);
        self.sql.push('$');
        self.sql.push_str(&self.params.len().to_string());
        self
    }

    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Builds a query returning rows mapped to `T`.
    pub fn query_as<'a, T>(&'a self) -> QueryAs<'a, Any, T, AnyArguments<'a>>
    where
        T: for<'r> FromRow<'r, AnyRow>,
    {
        self.params
            .iter()
            .fold(sqlx::query_as(&self.sql), |query, param| match param {
                Param::Integer(value) => query.bind(*value),
                Param::Text(value) => query.bind(value.as_str()),
                Param::Bytes(value) => query.bind(value.as_slice()),
            })
    }

    /// Builds a query whose rows are not mapped.
    pub fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        self.params
            .iter()
            .fold(sqlx::query(&self.sql), |query, param| match param {
                Param::Integer(value) => query.bind(*value),
                Param::Text(value) => query.bind(value.as_str()),
                Param::Bytes(value) => query.bind(value.as_slice()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_schema_check_does_not_create_a_missing_sqlite_file() {
        let folder = std::env::temp_dir().join(format!("lintas-check-{}", uuid::Uuid::new_v4()));
        let file = folder.join("users.db");
        let url = format!("sqlite://{}", file.display());
        let settings = PoolSettings::default();
        let error = Database::connect_for(&url, &settings, MigrationMode::Check)
            .await
            .err()
            .expect("a check of a missing file fails");
        assert!(error.to_string().contains("does not exist"), "{error:#}");
        assert!(!file.exists());

        Database::connect_for(&url, &settings, MigrationMode::Apply)
            .await
            .unwrap();
        assert!(file.exists());
        std::fs::remove_dir_all(&folder).unwrap();
    }

    #[test]
    fn backend_from_url() {
        assert_eq!(
            Backend::from_url("sqlite://data/x.db").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::from_url("postgres://u@h/d").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/d").unwrap(),
            Backend::Postgres
        );
        assert!(Backend::from_url("mysql://u@h/d").is_err());
    }

    #[test]
    fn redact_hides_password_only() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/users"),
            "postgres://app:***@db:5432/users"
        );
        assert_eq!(redact("postgres://app@db/users"), "postgres://app@db/users");
        assert_eq!(redact("sqlite://data/users.db"), "sqlite://data/users.db");
    }

    #[test]
    fn builder_numbers_placeholders() {
        let mut sql = SqlBuilder::new("SELECT 1 WHERE a = ");
        sql.bind(Param::Integer(1))
            .push(" AND b = ")
            .bind(Param::Text("x".into()));
        assert_eq!(sql.sql(), "SELECT 1 WHERE a = $1 AND b = $2");
    }

    #[test]
    fn sqlite_url_gets_create_mode() {
        let folder = std::env::temp_dir().join("lintas-url-test");
        let url = format!("sqlite://{}/x.db", folder.display());
        assert!(prepare_sqlite_url(&url).unwrap().ends_with("x.db?mode=rwc"));
        assert!(folder.exists());
        assert_eq!(
            prepare_sqlite_url("sqlite::memory:?mode=memory").unwrap(),
            "sqlite::memory:?mode=memory"
        );
    }
}
