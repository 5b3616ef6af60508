//! Liveness (`/healthz`) and readiness (`/readyz`) endpoints.
//!
//! Readiness queries each backend's standard `grpc.health.v1` service, with a
//! short timeout, so a load balancer stops sending traffic while either
//! service cannot respond. A backend whose circuit is open counts as not
//! serving until its cooldown ends, since this replica then rejects the
//! calls that another replica, with its own circuit, may still make.
//!
//! Readiness also reports the user cache, which never makes the gateway
//! unready: without it, lookups go to the user service.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use lintas_common::balance::BackendChannel;
use serde::Serialize;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::backend::Backends;
use crate::cache::UserCache;
use crate::resilience::breaker::Breaker;

/// Upper bound on each backend health check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Dependencies that `/readyz` checks.
#[derive(Clone)]
pub struct ReadinessState {
    pub backends: Backends,
    pub cache: UserCache,
}

#[derive(Debug, Serialize)]
pub struct Readiness {
    /// "ready" when both backends serve, otherwise "not_ready".
    pub status: &'static str,
    /// Result per backend, "serving" or why it is not, and of the cache.
    pub checks: Checks,
}

#[derive(Debug, Serialize)]
pub struct Checks {
    pub user_service: String,
    pub order_service: String,
    /// "serving", "disabled", or "degraded: " and the reason.
    pub cache: String,
}

/// Returns 200 while the process runs.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Returns 200 when both backends report SERVING and neither circuit is
/// open, 503 otherwise, whatever the state of the cache.
pub async fn readyz(State(state): State<ReadinessState>) -> (StatusCode, Json<Readiness>) {
    let backends = &state.backends;
    let (user_service, order_service, cache) = tokio::join!(
        check(backends.user_channel.clone(), "user.v1.UserService"),
        check(backends.order_channel.clone(), "order.v1.OrderService"),
        state.cache.readiness(),
    );
    let user_service = user_service.and_then(|()| circuit_closed(&backends.user_breaker));
    let order_service = order_service.and_then(|()| circuit_closed(&backends.order_breaker));
    let ready = user_service.is_ok() && order_service.is_ok();
    let describe =
        |result: Result<(), String>| result.map_or_else(|error| error, |()| "serving".to_owned());
    let readiness = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        checks: Checks {
            user_service: describe(user_service),
            order_service: describe(order_service),
            cache,
        },
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness))
}

async fn check(channel: BackendChannel, service: &str) -> Result<(), String> {
    let mut client = HealthClient::new(channel);
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    let response = tokio::time::timeout(CHECK_TIMEOUT, client.check(request))
        .await
        .map_err(|_| format!("timed out after {} ms", CHECK_TIMEOUT.as_millis()))?
        .map_err(|status| format!("failed: {}", lintas_common::errors::status_text(&status)))?;
    match response.into_inner().status() {
        ServingStatus::Serving => Ok(()),
        other => Err(format!("not serving: {}", other.as_str_name())),
    }
}

/// Fails while `breaker` makes calls fail fast. Once the cooldown ends the
/// next call probes the backend, so readiness returns without traffic.
fn circuit_closed(breaker: &Breaker) -> Result<(), String> {
    match breaker.refusing_for() {
        Some(left) => Err(format!(
            "serving, but its circuit is open: calls fail fast for another {} ms",
            left.as_millis()
        )),
        None => Ok(()),
    }
}
