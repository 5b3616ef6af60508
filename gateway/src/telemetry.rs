//! Tracing at the edge: one server span per HTTP request, continuing a
//! valid incoming W3C `traceparent` and starting a new trace otherwise, the
//! trace context in every response, and one access-log line per request.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::HeaderValue;
use axum::response::Response;
use lintas_telemetry::propagation;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::audit;
use crate::auth::Caller;
use crate::edge::client_address::client_address;
use crate::request_id::RequestId;

/// Response header with the plain trace id, for clients and support tickets.
pub const TRACE_ID_HEADER: &str = "x-trace-id";

/// Middleware that runs each request inside its server span.
/// `trusted_proxy_hops` says which `X-Forwarded-For` entry is the client,
/// as the rate limiter reads it.
pub async fn trace_request<F>(
    trusted_proxy_hops: usize,
    request: Request,
    next: impl FnOnce(Request) -> F,
) -> Response
where
    F: Future<Output = Response>,
{
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default();
    let path = request.uri().path().to_owned();
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| client_address(info.0.ip(), request.headers(), trusted_proxy_hops));

    let span = tracing::info_span!(
        "http.server",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        request_id = %request_id,
        trace_id = tracing::field::Empty,
        enduser.id = tracing::field::Empty,
    );
    let _ = span.set_parent(propagation::extract(request.headers()));
    // The span's trace id is fixed from here on.
    let trace_id = propagation::record_trace_id(&span);

    let mut response = next(request).instrument(span.clone()).await;

    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if let Some(Caller::Authenticated(identity)) = response.extensions().get::<Caller>() {
        span.record("enduser.id", identity.subject.as_str());
    }
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    propagation::inject(&span, response.headers_mut());
    if let Ok(value) = HeaderValue::from_str(&trace_id) {
        response.headers_mut().insert(TRACE_ID_HEADER, value);
    }

    tracing::info!(
        target: "access",
        parent: &span,
        method = %method,
        route = %route,
        status = status.as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        %trace_id,
        %request_id,
        "request served"
    );
    audit::record(&audit::Served {
        method: &method,
        route: &route,
        path: &path,
        status,
        response_headers: response.headers(),
        graphql: response.extensions().get::<audit::GraphqlOperation>(),
        caller: response.extensions().get::<Caller>(),
        client,
        trace_id: &trace_id,
        request_id: &request_id,
    });
    response
}
