//! Load shedding: a bound on the requests in progress at once.
//!
//! A request past the bound gets 503 `OVERLOADED` with `Retry-After: 1` at
//! once, instead of waiting in a queue, so an overloaded gateway keeps
//! serving the requests it has taken on and a client behind a load balancer
//! can retry elsewhere. Probes and `/metrics` are not counted and never shed.

use std::future::Future;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::error::ApiError;
use crate::metrics::Metrics;

/// Seconds a shed client should wait before it retries.
const RETRY_AFTER_SECONDS: &str = "1";

/// The shared count of requests in progress, as semaphore permits.
#[derive(Clone)]
pub struct InFlightLimit {
    permits: Arc<Semaphore>,
    metrics: Metrics,
}

impl InFlightLimit {
    /// Creates a limit of `max_in_flight` requests in progress.
    ///
    /// # Errors
    ///
    /// Fails when `max_in_flight` is 0, which would shed every request.
    pub fn new(max_in_flight: usize, metrics: Metrics) -> anyhow::Result<Self> {
        anyhow::ensure!(
            (1..=Semaphore::MAX_PERMITS).contains(&max_in_flight),
            "MAX_IN_FLIGHT_REQUESTS must be between 1 and {}, not {max_in_flight}",
            Semaphore::MAX_PERMITS
        );
        Ok(Self {
            permits: Arc::new(Semaphore::new(max_in_flight)),
            metrics,
        })
    }
}

/// Middleware that runs a request while a permit is free and sheds it
/// otherwise. The permit is held until the handler has returned its
/// response. Streaming the body happens after that and is not counted.
pub async fn shed<F>(
    limit: &InFlightLimit,
    request: Request,
    next: impl FnOnce(Request) -> F,
) -> Response
where
    F: Future<Output = Response>,
{
    if super::is_operational(request.uri().path()) {
        return next(request).await;
    }
    let Ok(_permit) = limit.permits.try_acquire() else {
        limit.metrics.record_shed_request();
        return overloaded();
    };
    next(request).await
}

fn overloaded() -> Response {
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "OVERLOADED",
        "the gateway is serving as many requests as it allows at once, retry after 1 second",
    )
    .into_response();
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECONDS),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tokio::sync::Notify;
    use tower::ServiceExt;

    use super::*;

    /// A router whose `/slow` handler waits until `release` is notified.
    fn router(max_in_flight: usize, release: Arc<Notify>) -> (Router, Metrics) {
        let metrics = Metrics::new();
        let limit = InFlightLimit::new(max_in_flight, metrics.clone()).unwrap();
        let router = Router::new()
            .route(
                "/slow",
                get(move || {
                    let release = release.clone();
                    async move { release.notified().await }
                }),
            )
            .route("/healthz", get(|| async {}))
            .layer(axum::middleware::from_fn(
                move |request: Request, next: axum::middleware::Next| {
                    let limit = limit.clone();
                    async move { shed(&limit, request, |request| next.run(request)).await }
                },
            ));
        (router, metrics)
    }

    fn get_request(path: &str) -> Request {
        Request::get(path).body(Body::empty()).unwrap()
    }

    #[test]
    fn zero_limit_is_rejected() {
        let error = InFlightLimit::new(0, Metrics::new()).err().unwrap();
        assert!(
            error.to_string().contains("MAX_IN_FLIGHT_REQUESTS"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn request_past_limit_is_shed() {
        let release = Arc::new(Notify::new());
        let (router, metrics) = router(1, release.clone());
        let first_request = tokio::spawn(router.clone().oneshot(get_request("/slow")));
        // Give the first request time to take the only permit.
        tokio::time::sleep(Duration::from_millis(50)).await;

        let response = router.clone().oneshot(get_request("/slow")).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert!(
            metrics
                .render()
                .unwrap()
                .contains("gateway_requests_shed_total 1")
        );

        release.notify_one();
        let response = first_request.await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn probe_is_served_past_limit() {
        let release = Arc::new(Notify::new());
        let (router, _metrics) = router(1, release.clone());
        let first_request = tokio::spawn(router.clone().oneshot(get_request("/slow")));
        tokio::time::sleep(Duration::from_millis(50)).await;

        let response = router
            .clone()
            .oneshot(get_request("/healthz"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);

        release.notify_one();
        first_request.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn permit_returns_after_response() {
        let release = Arc::new(Notify::new());
        let (router, _metrics) = router(1, release.clone());
        release.notify_one();
        let response = router.clone().oneshot(get_request("/slow")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);

        release.notify_one();
        let response = router.clone().oneshot(get_request("/slow")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
