//! Prometheus endpoints: the text encoding of a registry, and a small HTTP
//! server for binaries whose main port speaks gRPC.

use std::future::Future;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::net::TcpListener;

/// Renders every metric of `registry` in the Prometheus text format.
pub fn render(registry: &Registry) -> Result<String, prometheus::Error> {
    let mut buffer = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut buffer)?;
    Ok(String::from_utf8_lossy(&buffer).into_owned())
}

/// Serves a scrape of `registry`.
pub async fn scrape(State(registry): State<Registry>) -> Response {
    match render(&registry) {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "failed to encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    registry: Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let address = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(registry);
    tracing::info!(%address, "metrics endpoint listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("metrics endpoint failed")
}
