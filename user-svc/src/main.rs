//! The `user-svc` binary: reads its configuration and calls [`user_svc::serve`].

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use lintas_common::database::{MigrationMode, PoolSettings};
use lintas_telemetry::{LogFormat, TelemetryConfig};

/// gRPC user service (user.v1.UserService).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address and port to serve gRPC on.
    #[arg(long, env = "USER_SVC_LISTEN", default_value = "0.0.0.0:50051")]
    listen: SocketAddr,

    /// Database URL: sqlite://PATH (created when missing) or postgres://USER:PASSWORD@HOST/DATABASE.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/users.db",
        hide_env_values = true
    )]
    database_url: String,

    /// Most database connections in the pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    database_max_connections: u32,

    /// How long a query waits for a free connection, in milliseconds.
    #[arg(long, env = "DATABASE_ACQUIRE_TIMEOUT_MS", default_value_t = 5000)]
    database_acquire_timeout_ms: u64,

    /// Maximum time a statement may run on PostgreSQL, in milliseconds.
    #[arg(long, env = "DATABASE_STATEMENT_TIMEOUT_MS", default_value_t = 10000)]
    database_statement_timeout_ms: u64,

    /// How long idempotency keys are honoured, in seconds.
    #[arg(long, env = "IDEMPOTENCY_TTL_SECS", default_value_t = 86400)]
    idempotency_ttl_secs: u64,

    /// Apply pending migrations, then exit without serving.
    #[arg(long, env = "MIGRATE_ONLY", conflicts_with = "migrate_only_check")]
    migrate_only: bool,

    /// Check that every migration is applied, change nothing, and exit: 0 when current, 1 otherwise.
    #[arg(long, env = "MIGRATE_CHECK_ONLY")]
    migrate_only_check: bool,

    /// Secret that signs page tokens; replicas must share it. Random per process when unset.
    #[arg(long, env = "PAGE_TOKEN_SECRET", hide_env_values = true)]
    page_token_secret: Option<String>,

    /// Address and port of the Prometheus metrics endpoint (GET /metrics).
    #[arg(long, env = "METRICS_LISTEN", default_value = "0.0.0.0:9464")]
    metrics_listen: SocketAddr,

    /// Log line format: json or pretty.
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    log_format: LogFormat,
}

// glibc's allocator took a fifth of the gateway's CPU under load, with
// contention between threads; mimalloc keeps per-thread heaps.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let telemetry =
        lintas_telemetry::init(&TelemetryConfig::from_env("user-svc", args.log_format)?)?;

    let settings = user_svc::Settings {
        database_url: args.database_url,
        page_token_secret: args.page_token_secret,
        pool: PoolSettings {
            max_connections: args.database_max_connections,
            acquire_timeout: Duration::from_millis(args.database_acquire_timeout_ms),
            statement_timeout: Duration::from_millis(args.database_statement_timeout_ms),
        },
        idempotency_ttl: Duration::from_secs(args.idempotency_ttl_secs),
        registry: prometheus::Registry::new(),
    };
    if args.migrate_only || args.migrate_only_check {
        let mode = if args.migrate_only {
            MigrationMode::Apply
        } else {
            MigrationMode::Check
        };
        let result = user_svc::open_database(&settings, mode).await.map(drop);
        if result.is_ok() {
            tracing::info!(?mode, "user database schema is current");
        }
        telemetry.shutdown().await;
        return result;
    }

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to bind {}", args.listen))?;
    let metrics_listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("failed to bind {}", args.metrics_listen))?;

    let result = lintas_common::process::serve_with_metrics(
        metrics_listener,
        settings.registry.clone(),
        |shutdown| user_svc::serve(listener, settings, shutdown),
    )
    .await;
    telemetry.shutdown().await;
    result
}
