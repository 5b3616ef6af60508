//! Telemetry backends that count and discard: an OTLP/gRPC trace receiver
//! and a Loki push endpoint. The test receivers of `lintas-telemetry` keep
//! everything, which a benchmark's millions of spans would not fit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

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

#[derive(Clone)]
struct Counter(Arc<Received>);

#[tonic::async_trait]
impl TraceService for Counter {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .map(|scope| scope.spans.len())
            .sum();
        self.0.spans.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
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
        let service = TraceServiceServer::new(Counter(received.clone()))
            .max_decoding_message_size(64 * 1024 * 1024);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
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
