//! The `user-svc` binary: reads its configuration and calls [`user_svc::serve`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use clap::builder::BoolishValueParser;
use lintas_common::database::{MigrationMode, PoolSettings};
use lintas_common::grpc::ServiceListeners;
use lintas_common::tls::ServerTlsSettings;
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

    /// PEM certificate chain of the gRPC port, certificate first; turns
    /// TLS on. Re-read every minute.
    #[arg(long, env = "TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// PEM private key of TLS_CERT.
    #[arg(long, env = "TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// PEM CA certificates that sign client certificates. When set, a
    /// caller without a certificate that they signed is rejected.
    #[arg(long, env = "TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,

    /// Serve plaintext gRPC on an address other than loopback: on or off.
    /// Off, the service stops at startup there without TLS_CERT.
    #[arg(long, env = "ALLOW_PLAINTEXT", default_value = "off", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, hide_possible_values = true)]
    allow_plaintext: bool,

    /// Address and port of a plaintext port that serves only
    /// grpc.health.v1.Health, for probes that cannot use TLS. Unset: none.
    #[arg(long, env = "HEALTH_LISTEN")]
    health_listen: Option<SocketAddr>,

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
    lintas_common::memory::apply_process_settings();

    let tls = server_tls(&args);
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
        tls,
        allow_plaintext: args.allow_plaintext,
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

    // Checked before binding, so that a rejected address is never opened.
    if settings.tls.is_none() {
        lintas_common::tls::plaintext::check_listener(args.listen, args.allow_plaintext)?;
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to bind {}", args.listen))?;
    let health_listener = match args.health_listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("failed to bind {address}"))?,
        ),
        None => None,
    };
    let listeners = ServiceListeners {
        grpc: listener,
        health: health_listener,
    };
    let metrics_listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("failed to bind {}", args.metrics_listen))?;

    let result = lintas_common::process::serve_with_metrics(
        metrics_listener,
        settings.registry.clone(),
        |shutdown| user_svc::serve(listeners, settings, shutdown),
    )
    .await;
    telemetry.shutdown().await;
    result
}

/// TLS settings of the gRPC port, when TLS_CERT and TLS_KEY are set.
fn server_tls(args: &Args) -> Option<ServerTlsSettings> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return None;
    };
    Some(ServerTlsSettings {
        client_ca: args.tls_client_ca.clone(),
        ..ServerTlsSettings::new(cert, key)
    })
}
