//! The `order-svc` binary: reads its configuration and calls [`order_svc::serve`],
//! or only migrates the database with `--migrate-only` or `--migrate-only-check`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use clap::builder::BoolishValueParser;
use lintas_common::balance::Balance;
use lintas_common::database::{MigrationMode, PoolSettings};
use lintas_common::grpc::ServiceListeners;
use lintas_common::tls::{ClientTlsSettings, IdentityFiles, ServerTlsSettings};
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

    /// gRPC URL of the user service, where CreateOrder checks that the user exists and is active:
    /// https://HOST:PORT with USER_SERVICE_TLS_CA, http://HOST:PORT without.
    #[arg(
        long,
        env = "USER_SERVICE_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    user_service_url: String,

    /// How calls spread over the user service's servers. `single` keeps one HTTP/2 connection to
    /// the URL's host. `dns` resolves the host, such as a Kubernetes headless Service, every
    /// USER_SERVICE_RESOLVE_INTERVAL_MS and sends calls to each of its addresses in turn.
    #[arg(long, env = "USER_SERVICE_BALANCE", default_value = "single", value_parser = ["single", "dns"])]
    user_service_balance: String,

    /// Interval between lookups of the user service's host name with USER_SERVICE_BALANCE=dns, in
    /// milliseconds.
    #[arg(long, env = "USER_SERVICE_RESOLVE_INTERVAL_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..))]
    user_service_resolve_interval_ms: u64,

    /// Bound on one call to the user service, connect included, in milliseconds.
    #[arg(long, env = "USER_SERVICE_TIMEOUT_MS", default_value_t = DEFAULT_USER_SERVICE_TIMEOUT_MS)]
    user_service_timeout_ms: u64,

    /// PEM CA certificates that sign the user service's certificate; turns
    /// TLS on for calls to it. The system's CA store is not used.
    #[arg(long, env = "USER_SERVICE_TLS_CA")]
    user_service_tls_ca: Option<PathBuf>,

    /// PEM client certificate chain presented to the user service.
    #[arg(long, env = "USER_SERVICE_TLS_CERT", requires_all = ["user_service_tls_key", "user_service_tls_ca"])]
    user_service_tls_cert: Option<PathBuf>,

    /// PEM private key of USER_SERVICE_TLS_CERT.
    #[arg(long, env = "USER_SERVICE_TLS_KEY", requires = "user_service_tls_cert")]
    user_service_tls_key: Option<PathBuf>,

    /// Name that the user service's certificate must carry. Default: the
    /// host of USER_SERVICE_URL.
    #[arg(
        long,
        env = "USER_SERVICE_TLS_SERVER_NAME",
        requires = "user_service_tls_ca"
    )]
    user_service_tls_server_name: Option<String>,

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

    /// Serve plaintext gRPC on an address other than loopback, and call a
    /// user service outside loopback in plaintext: on or off. Off, the
    /// service stops at startup in either case.
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
        lintas_telemetry::init(&TelemetryConfig::from_env("order-svc", args.log_format)?)?;
    lintas_common::memory::apply_process_settings();

    let tls = server_tls(&args);
    let user_service_tls = user_service_tls(&args);
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
        user_service_tls,
        user_service_balance: Balance::from_mode(
            &args.user_service_balance,
            Duration::from_millis(args.user_service_resolve_interval_ms),
        )?,
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
        |shutdown| order_svc::serve(listeners, settings, shutdown),
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

/// TLS settings of the calls to the user service, when USER_SERVICE_TLS_CA
/// is set.
fn user_service_tls(args: &Args) -> Option<ClientTlsSettings> {
    let ca = args.user_service_tls_ca.as_ref()?;
    let identity = match (&args.user_service_tls_cert, &args.user_service_tls_key) {
        (Some(cert), Some(key)) => Some(IdentityFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    Some(ClientTlsSettings {
        identity,
        server_name: args.user_service_tls_server_name.clone(),
        ..ClientTlsSettings::new(ca)
    })
}
