//! The `order-svc` binary: reads its configuration and calls [`order_svc::serve`],
//! or only migrates the database with `--migrate-only` or `--migrate-only-check`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use lintas_common::database::{MigrationMode, PoolSettings};
use lintas_telemetry::{LogFormat, TelemetryConfig};

const DEFAULT_USER_SERVICE_TIMEOUT_MS: u64 =
    order_svc::DEFAULT_USER_SERVICE_TIMEOUT.as_millis() as u64;
const DEFAULT_IDEMPOTENCY_TTL_SECS: u64 = order_svc::DEFAULT_IDEMPOTENCY_TTL.as_secs();

/// gRPC order service (order.v1.OrderService).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address and port to serve gRPC on.
    #[arg(long, env = "ORDER_SVC_LISTEN", default_value = "0.0.0.0:50052")]
    listen: SocketAddr,

    /// Database URL: sqlite://PATH (created when missing) or postgres://USER:PASSWORD@HOST/DATABASE.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/orders.db",
        hide_env_values = true
    )]
    database_url: String,

    /// Maximum number of database connections in the pool.
    #[arg(
        long,
        env = "DATABASE_MAX_CONNECTIONS",
        default_value_t = PoolSettings::default().max_connections,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    database_max_connections: u32,

    /// How long a query waits for a free connection, in milliseconds.
    #[arg(
        long,
        env = "DATABASE_ACQUIRE_TIMEOUT_MS",
        default_value_t = PoolSettings::default().acquire_timeout.as_millis() as u64
    )]
    database_acquire_timeout_ms: u64,

    /// Maximum time a statement may run on PostgreSQL before the server cancels it, in
    /// milliseconds. SQLite ignores it.
    #[arg(
        long,
        env = "DATABASE_STATEMENT_TIMEOUT_MS",
        default_value_t = PoolSettings::default().statement_timeout.as_millis() as u64
    )]
    database_statement_timeout_ms: u64,

    /// How long a retry with the same idempotency key gets the first response, in seconds.
    #[arg(long, env = "IDEMPOTENCY_TTL_SECS", default_value_t = DEFAULT_IDEMPOTENCY_TTL_SECS)]
    idempotency_ttl_secs: u64,

    /// Apply pending migrations, then exit without serving.
    #[arg(long, env = "MIGRATE_ONLY", conflicts_with = "migrate_only_check")]
    migrate_only: bool,

    /// Check that every migration is applied, change nothing, and exit: 0 when current, 1 otherwise.
    #[arg(long, env = "MIGRATE_CHECK_ONLY")]
    migrate_only_check: bool,

    /// gRPC URL of the user service, where CreateOrder checks that the user exists and is active.
    #[arg(
        long,
        env = "USER_SERVICE_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    user_service_url: String,

    /// Bound on one call to the user service, connect included, in milliseconds.
    #[arg(long, env = "USER_SERVICE_TIMEOUT_MS", default_value_t = DEFAULT_USER_SERVICE_TIMEOUT_MS)]
    user_service_timeout_ms: u64,

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
        lintas_telemetry::init(&TelemetryConfig::from_env("order-svc", args.log_format)?)?;

    let settings = order_svc::Settings {
        database_url: args.database_url,
        pool: PoolSettings {
            max_connections: args.database_max_connections,
            acquire_timeout: Duration::from_millis(args.database_acquire_timeout_ms),
            statement_timeout: Duration::from_millis(args.database_statement_timeout_ms),
        },
        idempotency_ttl: Duration::from_secs(args.idempotency_ttl_secs),
        page_token_secret: args.page_token_secret,
        user_service_url: args.user_service_url,
        user_service_timeout: Duration::from_millis(args.user_service_timeout_ms),
        registry: prometheus::Registry::new(),
    };
    if args.migrate_only || args.migrate_only_check {
        let mode = if args.migrate_only {
            MigrationMode::Apply
        } else {
            MigrationMode::Check
        };
        let result = match order_svc::open_database(&settings, mode).await {
            Ok(database) => {
                database.pool.close().await;
                tracing::info!(?mode, "order database schema is current");
                Ok(())
            }
            Err(error) => Err(error),
        };
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
        |shutdown| order_svc::serve(listener, settings, shutdown),
    )
    .await;
    telemetry.shutdown().await;
    result
}
