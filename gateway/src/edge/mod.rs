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

/// Paths of the liveness and readiness probes and the metrics endpoint.
const OPERATIONAL_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Returns true for the path of a probe or of the metrics endpoint, which
/// load shedding and rate limits never reject.
fn is_operational(path: &str) -> bool {
    OPERATIONAL_PATHS.contains(&path)
}
