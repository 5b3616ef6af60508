//! The order service: `order.v1.OrderService` over gRPC, with the standard
//! health and reflection services beside it.
//!
//! [`serve`] runs the service on a listener the caller bound, so the binary,
//! the one-process quickstart and the tests all start it the same way.
//! Request validation lives in `validate`, the status state machine in
//! `lifecycle`, storage on SQLite or PostgreSQL in `store`, the user-service
//! client in `users`, the built-in test payment provider in `provider`, and
//! the RPC handlers that join them in `service`.

mod business_metrics;
mod lifecycle;
mod provider;
mod service;
mod store;
mod users;
mod validate;

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use lintas_common::database::{Database, MigrationMode, Migrations, PoolSettings, redact};
use lintas_common::page_token::{DEFAULT_MAX_AGE, PageTokenCodec};
use lintas_proto::order::v1::order_service_server::OrderServiceServer;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

pub use service::OrderApi;
pub use store::OrderStore;

/// Fully qualified name of the gRPC service.
pub const SERVICE_NAME: &str = "order.v1.OrderService";

/// How often expired idempotency keys are deleted.
const KEY_PURGE_INTERVAL: Duration = Duration::from_secs(10 * 60);

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Default bound on one call to the user service, connect included. A
/// lookup by primary key normally takes a few milliseconds, so two seconds
/// runs out mostly when the user service is stuck or unreachable.
pub const DEFAULT_USER_SERVICE_TIMEOUT: Duration = Duration::from_secs(2);

/// Default lifetime of idempotency keys: a day covers any client's retry
/// policy, and expired keys are deleted, so the table stays small.
pub const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Settings that [`serve`] needs; the binary fills them from flags and the
/// environment. [`Settings::new`] fills in the defaults.
#[derive(Clone)]
pub struct Settings {
    /// `sqlite://PATH` (the file is created when missing) or
    /// `postgres://USER:PASSWORD@HOST/DATABASE`.
    pub database_url: String,
    /// Connection pool size and timeouts.
    pub pool: PoolSettings,
    /// How long a retry with the same idempotency key gets the first
    /// response. Older keys count as unused, so a retry after that writes
    /// again.
    pub idempotency_ttl: Duration,
    /// Secret that signs page tokens. Replicas must share it; without one a
    /// random secret is used and tokens do not survive a restart.
    pub page_token_secret: Option<String>,
    /// gRPC URL of the user service, for example `http://127.0.0.1:50051`.
    /// CreateOrder checks every order's user there.
    pub user_service_url: String,
    /// Bound on one call to the user service, including the TCP connect.
    pub user_service_timeout: Duration,
    /// Registry that receives the service's metrics; the binary serves it
    /// on its metrics port.
    pub registry: prometheus::Registry,
}

impl Settings {
    /// Settings for the given database and user service, with the defaults
    /// for everything else: [`PoolSettings::default`],
    /// [`DEFAULT_IDEMPOTENCY_TTL`], a random page token secret and
    /// [`DEFAULT_USER_SERVICE_TIMEOUT`].
    pub fn new(database_url: impl Into<String>, user_service_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            pool: PoolSettings::default(),
            idempotency_ttl: DEFAULT_IDEMPOTENCY_TTL,
            page_token_secret: None,
            user_service_url: user_service_url.into(),
            user_service_timeout: DEFAULT_USER_SERVICE_TIMEOUT,
            registry: prometheus::Registry::new(),
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Settings")
            .field("database_url", &redact(&self.database_url))
            .field("pool", &self.pool)
            .field("idempotency_ttl", &self.idempotency_ttl)
            .field(
                "page_token_secret",
                &self.page_token_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("user_service_url", &self.user_service_url)
            .field("user_service_timeout", &self.user_service_timeout)
            .finish()
    }
}

/// Migrations of the order database, one set per backend.
pub fn migrations() -> Migrations {
    Migrations {
        sqlite: &SQLITE_MIGRATIONS,
        postgres: &POSTGRES_MIGRATIONS,
    }
}

/// Connects to the order database and applies or checks its migrations.
/// [`MigrationMode::Check`] fails unless every migration is applied and
/// changes nothing.
pub async fn open_database(settings: &Settings, mode: MigrationMode) -> anyhow::Result<Database> {
    let url = redact(&settings.database_url);
    let database = Database::connect_for(&settings.database_url, &settings.pool, mode)
        .await
        .with_context(|| format!("failed to open order database {url}"))?;
    database
        .migrate(&migrations(), mode)
        .await
        .with_context(|| match mode {
            MigrationMode::Apply => format!("failed to migrate order database {url}"),
            MigrationMode::Check => format!("schema check of order database {url} failed"),
        })?;
    Ok(database)
}

/// Opens the database, applies migrations and serves gRPC on `listener`
/// until `shutdown` completes, then drains in-flight calls. The user
/// service is connected on first use, so it need not be up yet.
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let database = open_database(&settings, MigrationMode::Apply).await?;
    database.export_pool_metrics(&settings.registry, settings.pool.max_connections)?;
    lintas_common::idempotency::spawn_purge(
        database.pool.clone(),
        settings.idempotency_ttl,
        KEY_PURGE_INTERVAL,
    );
    let store = OrderStore::new(database, settings.idempotency_ttl);
    let client_metrics =
        lintas_telemetry::grpc::RpcMetrics::register(&settings.registry, "client")?;
    let users = users::UserDirectory::connect_lazy(
        &settings.user_service_url,
        settings.user_service_timeout,
        client_metrics,
    )
    .with_context(|| format!("invalid user service URL {}", settings.user_service_url))?;

    let page_tokens = match &settings.page_token_secret {
        Some(secret) => PageTokenCodec::new(secret.as_bytes(), DEFAULT_MAX_AGE),
        None => PageTokenCodec::with_random_secret(),
    };
    let business = business_metrics::BusinessMetrics::register(&settings.registry)?;
    let api = OrderApi::new(store, users, page_tokens, business);

    let rpc_metrics = lintas_telemetry::grpc::RpcMetrics::register(&settings.registry, "server")?;
    let known_services: Vec<&str> = [SERVICE_NAME]
        .into_iter()
        .chain(lintas_common::grpc::STANDARD_SERVICES.iter().copied())
        .collect();
    let mut server = tonic::transport::Server::builder()
        .timeout(Duration::from_secs(30))
        .layer(lintas_telemetry::grpc::ServerLayer::new(
            rpc_metrics,
            &known_services,
        ));
    let (health_reporter, router) =
        lintas_common::grpc::router_with_standard_services(&mut server, SERVICE_NAME);
    health_reporter
        .set_serving::<OrderServiceServer<OrderApi>>()
        .await;

    let address = listener.local_addr()?;
    tracing::info!(%address, user_service = %settings.user_service_url, "order service listening");
    router
        .add_service(OrderServiceServer::new(api))
        .serve_with_incoming_shutdown(lintas_common::grpc::incoming(listener), shutdown)
        .await
        .context("order service failed")?;
    tracing::info!("order service stopped");
    Ok(())
}
