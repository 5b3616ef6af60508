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
use lintas_common::page_token::{DEFAULT_MAX_AGE, PageTokenCodec};
use lintas_proto::user::v1::user_service_server::UserServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

pub use service::UserApi;
pub use store::SqliteUserStore;

/// Settings that [`serve`] needs; the binary fills them from flags and the
/// environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// SQLite URL, for example `sqlite://data/users.db`. The file is created
    /// when missing.
    pub database_url: String,
    /// Secret that signs page tokens. Replicas must share it; without one a
    /// random secret is used and tokens do not survive a restart.
    pub page_token_secret: Option<String>,
}

/// Opens the database, applies migrations and serves gRPC on `listener`
/// until `shutdown` completes, then drains in-flight calls.
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = SqliteUserStore::connect(&settings.database_url)
        .await
        .with_context(|| format!("failed to open user database {}", settings.database_url))?;

    let page_tokens = match &settings.page_token_secret {
        Some(secret) => PageTokenCodec::new(secret.as_bytes(), DEFAULT_MAX_AGE),
        None => PageTokenCodec::with_random_secret(),
    };
    let api = UserApi::new(store, page_tokens);

    let mut server = tonic::transport::Server::builder().timeout(Duration::from_secs(30));
    let (health_reporter, router) = lintas_common::grpc::router_with_standard_services(&mut server);
    health_reporter
        .set_serving::<UserServiceServer<UserApi>>()
        .await;

    let address = listener.local_addr()?;
    tracing::info!(%address, "user service listening");
    router
        .add_service(UserServiceServer::new(api))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
        .context("user service failed")?;
    tracing::info!("user service stopped");
    Ok(())
}
