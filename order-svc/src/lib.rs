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
use lintas_common::balance::Balance;
use lintas_common::database::{Database, MigrationMode, Migrations, PoolSettings, redact};
use lintas_common::grpc::ServiceListeners;
use lintas_common::page_token::{DEFAULT_MAX_AGE, PageTokenCodec};
use lintas_common::tls::{ClientTlsSettings, ServerTls, ServerTlsSettings, TlsIncoming};
use lintas_proto::order::v1::order_service_server::OrderServiceServer;
use sqlx::migrate::Migrator;

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
    /// gRPC URL of the user service, for example `http://127.0.0.1:50051`,
    /// or an https URL with `user_service_tls`. CreateOrder checks every
    /// order's user there.
    pub user_service_url: String,
    /// Bound on one call to the user service, including the TCP connect
    /// and the TLS handshake.
    pub user_service_timeout: Duration,
    /// TLS of the calls to the user service: the CA that signs its
    /// certificate, and the certificate to present to it.
    pub user_service_tls: Option<ClientTlsSettings>,
    /// One connection to the user service's host, or one per address of
    /// its name.
    pub user_service_balance: Balance,
    /// Registry that receives the service's metrics; the binary serves it
    /// on its metrics port.
    pub registry: prometheus::Registry,
    /// TLS of the gRPC port. With a client CA, every caller must present a
    /// certificate that the CA signed.
    pub tls: Option<ServerTlsSettings>,
    /// Serve plaintext gRPC on an address other than loopback, and call a
    /// user service that is not on loopback in plaintext. Without it,
    /// `lintas_common::tls::plaintext` rejects both.
    pub allow_plaintext: bool,
}

impl Settings {
    /// Settings for the given database and user service, with the defaults
    /// for everything else: [`PoolSettings::default`],
    /// [`DEFAULT_IDEMPOTENCY_TTL`], a random page token secret,
    /// [`DEFAULT_USER_SERVICE_TIMEOUT`], and no TLS, so plaintext on
    /// loopback only.
    pub fn new(database_url: impl Into<String>, user_service_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            pool: PoolSettings::default(),
            idempotency_ttl: DEFAULT_IDEMPOTENCY_TTL,
            page_token_secret: None,
            user_service_url: user_service_url.into(),
            user_service_timeout: DEFAULT_USER_SERVICE_TIMEOUT,
            user_service_tls: None,
            user_service_balance: Balance::Single,
            registry: prometheus::Registry::new(),
            tls: None,
            allow_plaintext: false,
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
            .field("user_service_tls", &self.user_service_tls)
            .field("user_service_balance", &self.user_service_balance)
            .field("tls", &self.tls)
            .field("allow_plaintext", &self.allow_plaintext)
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

/// Opens the database, applies migrations and serves gRPC on `listeners`
/// until `shutdown` completes, then drains in-flight calls. The user
/// service is connected on first use, so it need not be up yet.
///
/// Fails before serving when the TLS files are invalid, or when plaintext
/// would be served on, or sent to, an address other than loopback without
/// `allow_plaintext`.
pub async fn serve(
    listeners: impl Into<ServiceListeners>,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listeners = listeners.into();
    let address = listeners.grpc.local_addr()?;
    let tls = server_tls(&settings, address)?;

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
        settings.user_service_tls.as_ref(),
        settings.allow_plaintext,
        settings.user_service_balance,
        settings.user_service_timeout,
        client_metrics,
        &settings.registry,
    )
    .context(
        "invalid user service client settings (USER_SERVICE_URL, USER_SERVICE_BALANCE, USER_SERVICE_TLS_CA, \
         USER_SERVICE_TLS_CERT, USER_SERVICE_TLS_KEY, USER_SERVICE_TLS_SERVER_NAME)",
    )?;

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
    let (health_reporter, health, router) =
        lintas_common::grpc::router_with_standard_services(&mut server, SERVICE_NAME);
    health_reporter
        .set_serving::<OrderServiceServer<OrderApi>>()
        .await;
    let shutdown = lintas_common::grpc::start_health_port(listeners.health, health, shutdown)?;

    let router = router.add_service(OrderServiceServer::new(api));
    tracing::info!(
        %address,
        user_service = %settings.user_service_url,
        tls = tls.is_some(),
        client_certificates = tls.as_ref().is_some_and(ServerTls::requires_client_certificate),
        "order service listening"
    );
    let served = match tls {
        Some(tls) => {
            let incoming = TlsIncoming::new(listeners.grpc, tls)?;
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        None => {
            let incoming = lintas_common::grpc::incoming(listeners.grpc);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    };
    served.context("order service failed")?;
    tracing::info!("order service stopped");
    Ok(())
}

/// Loads the TLS files, or checks that plaintext is allowed on `address`.
fn server_tls(
    settings: &Settings,
    address: std::net::SocketAddr,
) -> anyhow::Result<Option<ServerTls>> {
    match &settings.tls {
        Some(tls) => ServerTls::load(tls, &[lintas_common::tls::ALPN_H2])
            .map(Some)
            .context("invalid TLS settings (TLS_CERT, TLS_KEY, TLS_CLIENT_CA)"),
        None => {
            lintas_common::tls::plaintext::check_listener(address, settings.allow_plaintext)?;
            Ok(None)
        }
    }
}
