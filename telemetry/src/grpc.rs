//! Tracing and metrics for gRPC: a tower layer for tonic servers and a
//! channel wrapper for tonic clients.
//!
//! Servers continue the caller's trace from the request metadata and open
//! one `SERVER` span per call; clients open a `CLIENT` span and send its
//! context in the metadata. Both record the OpenTelemetry RPC attributes
//! (`rpc.system`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code`) and
//! count calls by service, method and status code.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::propagation;

/// Metadata key naming whom the gateway serves: the subject of the
/// caller's verified token. Absent when authentication is off.
///
/// NOTE: a service trusts it as far as it trusts its peer; only mutual TLS
/// ensures the peer is the gateway.
pub const CALLER_SUBJECT_KEY: &str = "x-caller-subject";

/// Metadata key with the caller's role: `admin` or `user`.
pub const CALLER_ROLE_KEY: &str = "x-caller-role";

/// Longest caller subject recorded on a span.
const MAX_SUBJECT_LEN: usize = 255;

/// Records the caller the gateway named in the metadata on the server
/// span, as OpenTelemetry's `enduser.id` and `enduser.role`.
fn record_caller(span: &tracing::Span, headers: &http::HeaderMap) {
    let visible = |name: &str, max: usize| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .filter(|text| !text.is_empty() && text.len() <= max)
            .filter(|text| text.bytes().all(|byte| byte.is_ascii_graphic()))
            .map(str::to_owned)
    };
    if let Some(subject) = visible(CALLER_SUBJECT_KEY, MAX_SUBJECT_LEN) {
        span.record("enduser.id", subject);
    }
    if let Some(role) = visible(CALLER_ROLE_KEY, 16) {
        span.record("enduser.role", role);
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Latency buckets in seconds, from 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Label of any service outside the known set, which keeps label values
/// bounded whatever paths clients send.
const UNKNOWN: &str = "unknown";

/// Call counters and latency histograms of one side (server or client).
#[derive(Clone)]
pub struct RpcMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl RpcMetrics {
    /// Registers `grpc_{side}_requests_total` and
    /// `grpc_{side}_request_duration_seconds`, where side is "server" or "client".
    pub fn register(registry: &Registry, side: &str) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                format!("grpc_{side}_requests_total"),
                format!("gRPC calls handled as {side}, by status code."),
            ),
            &["service", "method", "code"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                format!("grpc_{side}_request_duration_seconds"),
                format!("Duration of gRPC calls as {side}."),
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["service", "method"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Self { requests, duration })
    }

    fn record(&self, service: &str, method: &str, code: i32, started: Instant) {
        self.requests
            .with_label_values(&[service, method, code_name(code)])
            .inc();
        self.duration
            .with_label_values(&[service, method])
            .observe(started.elapsed().as_secs_f64());
    }
}

/// Tower layer that traces and counts every call a tonic server handles.
#[derive(Clone)]
pub struct ServerLayer {
    metrics: RpcMetrics,
    known_services: Arc<Vec<String>>,
}

impl ServerLayer {
    /// `known_services` are the fully qualified names this server serves;
    /// calls to anything else are labelled "unknown".
    pub fn new(metrics: RpcMetrics, known_services: &[&str]) -> Self {
        Self {
            metrics,
            known_services: Arc::new(
                known_services
                    .iter()
                    .map(|name| (*name).to_owned())
                    .collect(),
            ),
        }
    }
}

impl<S> Layer<S> for ServerLayer {
    type Service = Server<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Server {
            inner,
            layer: self.clone(),
        }
    }
}

/// Service produced by [`ServerLayer`].
#[derive(Clone)]
pub struct Server<S> {
    inner: S,
    layer: ServerLayer,
}

impl<S, B, R> Service<http::Request<B>> for Server<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Send,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (service, method) = split_path(request.uri().path());
        let known = self.layer.known_services.iter().any(|name| name == service);
        let (service, method) = if known {
            (service.to_owned(), method.to_owned())
        } else {
            (UNKNOWN.to_owned(), UNKNOWN.to_owned())
        };

        // Balanced clients check every address each second, so health
        // checks get no span. They are still counted.
        let span = if service == HEALTH_SERVICE {
            tracing::Span::none()
        } else {
            server_span(&service, &method)
        };
        let _ = span.set_parent(propagation::extract(request.headers()));
        let _ = propagation::record_trace_id(&span);
        record_caller(&span, request.headers());

        let started = Instant::now();
        let metrics = self.layer.metrics.clone();
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        let recorded = span.clone();
        Box::pin(
            async move {
                let result = future.await;
                let code = match &result {
                    Ok(response) => status_code(response.headers()),
                    Err(_) => tonic::Code::Unknown as i32,
                };
                recorded.record("rpc.grpc.status_code", code);
                if is_server_error(code) {
                    recorded.record("otel.status_code", "ERROR");
                }
                metrics.record(&service, &method, code, started);
                result
            }
            .instrument(span),
        )
    }
}

/// A tonic channel (or any gRPC transport) that traces and counts each call
/// and propagates the trace context to the server.
#[derive(Clone)]
pub struct TracedChannel<S> {
    inner: S,
    metrics: Option<RpcMetrics>,
}

impl<S> TracedChannel<S> {
    pub fn new(inner: S, metrics: Option<RpcMetrics>) -> Self {
        Self { inner, metrics }
    }
}

impl<S, B, R> Service<http::Request<B>> for TracedChannel<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Send,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let (service, method) = split_path(request.uri().path());
        let (service, method) = (service.to_owned(), method.to_owned());
        let span = tracing::info_span!(
            "grpc.client",
            otel.name = %format!("{service}/{method}"),
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        propagation::inject(&span, request.headers_mut());

        let started = Instant::now();
        let metrics = self.metrics.clone();
        let future = self.inner.call(request);
        let recorded = span.clone();
        Box::pin(
            async move {
                let result = future.await;
                let code = match &result {
                    Ok(response) => status_code(response.headers()),
                    Err(_) => tonic::Code::Unavailable as i32,
                };
                recorded.record("rpc.grpc.status_code", code);
                if code != 0 {
                    recorded.record("otel.status_code", "ERROR");
                }
                if let Some(metrics) = metrics {
                    metrics.record(&service, &method, code, started);
                }
                result
            }
            .instrument(span),
        )
    }
}

/// Splits `/package.Service/Method` into its service and method.
fn split_path(path: &str) -> (&str, &str) {
    path.trim_start_matches('/')
        .split_once('/')
        .unwrap_or((UNKNOWN, UNKNOWN))
}

/// Reads `grpc-status` from response headers. tonic sends it there for
/// errors ("trailers-only" responses); a successful unary call carries it in
/// the trailers instead, so a missing header means OK.
fn status_code(headers: &http::HeaderMap) -> i32 {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}

/// Codes that mean the server failed, per the OpenTelemetry gRPC
/// conventions; client mistakes such as NOT_FOUND do not mark a server span.
fn is_server_error(code: i32) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

/// Returns the canonical name of a gRPC status code.
pub fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

/// Name of the standard gRPC health service.
const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// Creates the server span of one call of `service`/`method`.
fn server_span(service: &str, method: &str) -> tracing::Span {
    tracing::info_span!(
        "grpc.server",
        otel.name = %format!("{service}/{method}"),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        rpc.grpc.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        enduser.id = tracing::field::Empty,
        enduser.role = tracing::field::Empty,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_splits_into_service_and_method() {
        assert_eq!(
            split_path("/user.v1.UserService/GetUser"),
            ("user.v1.UserService", "GetUser")
        );
        assert_eq!(split_path("/nonsense"), (UNKNOWN, UNKNOWN));
    }

    #[test]
    fn missing_status_header_means_ok() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(status_code(&headers), 0);
        headers.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(status_code(&headers), 5);
        assert_eq!(code_name(5), "NOT_FOUND");
    }

    #[test]
    fn only_server_faults_mark_server_spans() {
        assert!(is_server_error(13));
        assert!(is_server_error(14));
        assert!(!is_server_error(5));
        assert!(!is_server_error(3));
    }
}
