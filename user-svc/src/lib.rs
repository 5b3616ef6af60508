//! The user service: `user.v1.UserService` over gRPC, with the standard
//! health and reflection services beside it.
//!
//! [`serve`] runs the service on a listener the caller bound, so the binary,
//! the one-process quickstart and the tests all start it the same way.
//! Request validation lives in `validate`, storage in `store`, and the RPC
//! handlers that join them in `service`.

mod service;
mod store;
mod validate;

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use lintas_common::database::{Database, MigrationMode, Migrations, PoolSettings, redact};
use lintas_common::grpc::ServiceListeners;
use lintas_common::page_token::{DEFAULT_MAX_AGE, PageTokenCodec};
use lintas_common::tls::{ServerTls, ServerTlsSettings, TlsIncoming};
use lintas_proto::user::v1::user_service_server::UserServiceServer;
use sqlx::migrate::Migrator;

pub use service::UserApi;
pub use store::SqlUserStore;

/// Fully qualified name of the gRPC service.
pub const SERVICE_NAME: &str = "user.v1.UserService";

/// How often expired idempotency keys are deleted.
const KEY_PURGE_INTERVAL: Duration = Duration::from_secs(10 * 60);

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Default lifetime of idempotency keys: long enough for any client's retry
/// policy, short enough that the table stays small.
pub const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Settings that [`serve`] needs; the binary fills them from flags and the
/// environment.
#[derive(Clone)]
pub struct Settings {
    /// `sqlite://PATH` (the file is created when missing) or
    /// `postgres://USER:PASSWORD@HOST/DATABASE`.
    pub database_url: String,
    /// Secret that signs page tokens. Replicas must share it; without one a
    /// random secret is used and tokens do not survive a restart.
    pub page_token_secret: Option<String>,
    pub pool: PoolSettings,
    /// How long a retry with the same idempotency key returns the first result.
    pub idempotency_ttl: Duration,
    /// Registry that receives the service's metrics; the binary serves it
    /// on its metrics port.
    pub registry: prometheus::Registry,
    /// TLS of the gRPC port. With a client CA, every caller must present a
    /// certificate that the CA signed.
    pub tls: Option<ServerTlsSettings>,
    /// Serve plaintext gRPC on an address other than loopback, which
    /// `lintas_common::tls::plaintext` rejects otherwise.
    pub allow_plaintext: bool,
}

impl Settings {
    /// Settings with the documented defaults for `database_url`: no TLS,
    /// so plaintext on loopback only.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            page_token_secret: None,
            pool: PoolSettings::default(),
            idempotency_ttl: DEFAULT_IDEMPOTENCY_TTL,
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
            .field(
                "page_token_secret",
                &self.page_token_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("pool", &self.pool)
            .field("idempotency_ttl", &self.idempotency_ttl)
            .field("tls", &self.tls)
            .field("allow_plaintext", &self.allow_plaintext)
            .finish()
    }
}

/// Migrations of the user database, one set per backend.
pub fn migrations() -> Migrations {
    Migrations {
        sqlite: &SQLITE_MIGRATIONS,
        postgres: &POSTGRES_MIGRATIONS,
    }
}

/// Connects to the database and applies or checks its migrations.
pub async fn open_database(settings: &Settings, mode: MigrationMode) -> anyhow::Result<Database> {
    let database = Database::connect_for(&settings.database_url, &settings.pool, mode)
        .await
        .with_context(|| {
            format!(
                "failed to open user database {}",
                redact(&settings.database_url)
            )
        })?;
    database.migrate(&migrations(), mode).await?;
    Ok(database)
}

/// Opens the database, applies migrations and serves gRPC on `listeners`
/// until `shutdown` completes, then drains in-flight calls.
///
/// Fails before serving when the TLS files are invalid, or when the gRPC
/// port would serve plaintext on an address other than loopback without
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
    let store = SqlUserStore::new(database, settings.idempotency_ttl);
    let business = service::BusinessMetrics::register(&settings.registry)?;

    let page_tokens = match &settings.page_token_secret {
        Some(secret) => PageTokenCodec::new(secret.as_bytes(), DEFAULT_MAX_AGE),
        None => PageTokenCodec::with_random_secret(),
    };
    let api = UserApi::new(store, page_tokens, business);

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
        .set_serving::<UserServiceServer<UserApi>>()
        .await;
    let shutdown = lintas_common::grpc::start_health_port(listeners.health, health, shutdown)?;

    let router = router.add_service(UserServiceServer::new(api));
    tracing::info!(
        %address,
        database = %redact(&settings.database_url),
        tls = tls.is_some(),
        client_certificates = tls.as_ref().is_some_and(ServerTls::requires_client_certificate),
        "user service listening"
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
    served.context("user service failed")?;
    tracing::info!("user service stopped");
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
