//! Protections at the HTTP edge, applied around every route before a
//! handler runs. They are CORS (`cors`), security headers on every response
//! (`security_headers`), a bound on the requests in progress (`load_shed`),
//! and a per-client rate limit (`rate_limit`). The rate limit keys a client
//! by its address (`client_address`). The layers that every request
//! passes before them run as one middleware (`entry`).
//!
//! The health probes and `/metrics` are exempt from both limits, so the
//! orchestrator and Prometheus still reach a gateway that sheds load.

pub mod client_address;
pub mod cors;
pub mod entry;
pub mod load_shed;
pub mod rate_limit;
pub mod security_headers;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::{self, Authenticator};
use load_shed::InFlightLimit;
use rate_limit::RateLimiter;

/// State of the protections middleware.
#[derive(Clone)]
pub struct Protections {
    pub in_flight: InFlightLimit,
    pub authenticator: Authenticator,
    /// Absent when no rate limit is configured.
    pub rate_limiter: Option<Arc<RateLimiter>>,
}

/// Runs load shedding, then the token check, then the rate limit, as one
/// middleware. A shed request costs no token check, and the rate limit
/// keys a request with a valid token by its subject.
pub async fn protect(
    State(protections): State<Protections>,
    request: Request,
    next: Next,
) -> Response {
    load_shed::shed(&protections.in_flight, request, |request| {
        auth::identify(&protections.authenticator, request, |request| async {
            match &protections.rate_limiter {
                Some(limiter) => {
                    rate_limit::limit(limiter, request, |request| next.run(request)).await
                }
                None => next.run(request).await,
            }
        })
    })
    .await
}

/// Paths of the liveness and readiness probes and the metrics endpoint.
const OPERATIONAL_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Returns true for the path of a probe or of the metrics endpoint, which
/// load shedding and rate limits never reject.
fn is_operational(path: &str) -> bool {
    OPERATIONAL_PATHS.contains(&path)
}
