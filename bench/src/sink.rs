//! Telemetry backends that count and discard: an OTLP/gRPC trace receiver
//! and a Loki push endpoint. The test receivers of `lintas-telemetry` keep
//! everything, which a benchmark's millions of spans would not fit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::span_counter::SpanCounter;

/// Counts of what the sink received.
#[derive(Default)]
pub struct Received {
    pub spans: AtomicU64,
    pub log_pushes: AtomicU64,
    pub log_bytes: AtomicU64,
}

pub struct Sink {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` of the binaries.
    pub otlp_endpoint: String,
    /// `LOKI_URL` of the binaries.
    pub loki_url: String,
    pub received: Arc<Received>,
}

async fn push(State(received): State<Arc<Received>>, body: Bytes) -> StatusCode {
    received.log_pushes.fetch_add(1, Ordering::Relaxed);
    received
        .log_bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

impl Sink {
    /// Serves both endpoints on loopback ports until the runtime stops.
    pub async fn start() -> anyhow::Result<Self> {
        let received = Arc::new(Received::default());

        let otlp_listener = TcpListener::bind("127.0.0.1:0").await?;
        let otlp_endpoint = format!("http://{}", otlp_listener.local_addr()?);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(SpanCounter(received.clone()))
                .serve_with_incoming(TcpListenerStream::new(otlp_listener)),
        );

        let loki_listener = TcpListener::bind("127.0.0.1:0").await?;
        let loki_url = format!("http://{}/", loki_listener.local_addr()?);
        let app = axum::Router::new()
            .route("/loki/api/v1/push", axum::routing::post(push))
            .with_state(received.clone());
        tokio::spawn(async move { axum::serve(loki_listener, app).await });

        Ok(Self {
            otlp_endpoint,
            loki_url,
            received,
        })
    }
}
