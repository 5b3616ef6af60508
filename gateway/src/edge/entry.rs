//! The layers that every request passes before the edge protections, run
//! as one middleware: request id, server span and access log, problem
//! bodies for bare errors, the time budget, and the HTTP metrics.
//!
//! Each of them as an axum middleware of its own would box the request's
//! future and clone the inner service once per layer. Nested here, the
//! request pays for one box, which keeps the memory of many concurrent
//! requests down.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics::{self, Metrics};
use crate::resilience::deadline;
use crate::{error, request_id, telemetry};

/// State of the entry middleware.
#[derive(Clone)]
pub struct Entry {
    pub metrics: Metrics,
    /// Total time budget of one request.
    pub request_timeout: Duration,
    /// Reverse proxies whose `X-Forwarded-For` entries are trusted.
    pub trusted_proxy_hops: usize,
}

/// Runs the request through the entry layers, outermost first, then `next`.
pub async fn run(State(entry): State<Entry>, request: Request, next: Next) -> Response {
    request_id::assign(request, |request| {
        telemetry::trace_request(entry.trusted_proxy_hops, request, |request| {
            error::problem_for_bare_errors(request, |request| {
                deadline::limit(entry.request_timeout, request, |request| {
                    metrics::track_http(&entry.metrics, request, |request| next.run(request))
                })
            })
        })
    })
    .await
}
