//! Protections at the HTTP edge, applied around every route before a
//! handler runs: CORS (`cors`), security headers on every response
//! (`security_headers`), and a bound on the requests in progress
//! (`load_shed`).
//!
//! The health probes and `/metrics` are exempt from the bound, so the
//! orchestrator and Prometheus still reach a gateway that sheds load.

pub mod cors;
pub mod load_shed;
pub mod security_headers;

/// Paths of the liveness and readiness probes and the metrics endpoint.
const OPERATIONAL_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Returns true for the path of a probe or of the metrics endpoint, which
/// load shedding never rejects.
fn is_operational(path: &str) -> bool {
    OPERATIONAL_PATHS.contains(&path)
}
