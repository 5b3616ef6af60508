//! Prometheus metrics of the gateway, served at `/metrics`.
//!
//! Labels are low-cardinality by construction: HTTP requests are labelled by
//! route template (never the raw path) and status class, backend calls by
//! RPC method name, cache lookups by result.

use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Route label of requests that matched no route.
const UNMATCHED_ROUTE: &str = "unmatched";

/// The gateway's metric families, registered in one registry. Cloning it
/// copies one pointer: every route and middleware keeps a clone, and axum
/// clones those per request.
#[derive(Clone)]
pub struct Metrics(Arc<Families>);

impl Deref for Metrics {
    type Target = Families;

    fn deref(&self) -> &Families {
        &self.0
    }
}

/// The metric families behind [`Metrics`].
pub struct Families {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    backend_calls: IntCounterVec,
    cache_requests: IntCounterVec,
    cache_invalidations: IntCounter,
    cache_lookup_duration: Histogram,
    cache_degraded: IntGauge,
    requests_shed: IntCounter,
    requests_rate_limited: IntCounter,
    near_cache_requests: IntCounterVec,
    near_cache_invalidations: IntCounterVec,
    near_cache_connected: IntGauge,
}

/// Result of looking up one key in the user cache.
#[derive(Debug, Clone, Copy)]
pub enum CacheResult {
    /// The key contained an entry: a user, or a cached NOT_FOUND. Includes
    /// entries served by the near cache.
    Hit,
    /// The key was empty, so the user service was called.
    Miss,
    /// The store failed or timed out, so the user service was called.
    Error,
    /// The store was skipped while the circuit breaker was open.
    Bypass,
}

impl CacheResult {
    const ALL: [Self; 4] = [Self::Hit, Self::Miss, Self::Error, Self::Bypass];

    fn label(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Error => "error",
            Self::Bypass => "bypass",
        }
    }
}

/// Result of looking up one key in the near cache.
#[derive(Debug, Clone, Copy)]
pub enum NearCacheResult {
    /// The near cache contained the entry, so Redis was not read.
    Hit,
    /// The near cache did not contain the entry, so Redis was read.
    Miss,
    /// The invalidation connection was down, so the near cache was skipped.
    Bypass,
}

impl NearCacheResult {
    const ALL: [Self; 3] = [Self::Hit, Self::Miss, Self::Bypass];

    fn label(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
        }
    }
}

/// Scope of one invalidation message from Redis: one key or the whole near cache.
#[derive(Debug, Clone, Copy)]
pub enum InvalidationScope {
    /// One key, counted once per key the message names.
    Key,
    /// Every key, after Redis dropped all tracked keys (`FLUSHALL`).
    All,
}

impl InvalidationScope {
    const ALL: [Self; 2] = [Self::Key, Self::All];

    fn label(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::All => "all",
        }
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_server_requests_total",
                "HTTP requests served by the gateway.",
            ),
            &["method", "route", "status_class"],
        )
        .expect("metric definition is valid");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_server_request_duration_seconds",
                "Time from receiving an HTTP request to sending its response headers.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["method", "route"],
        )
        .expect("metric definition is valid");
        let backend_calls = IntCounterVec::new(
            Opts::new(
                "gateway_backend_calls_total",
                "gRPC calls from the gateway to a backend, by RPC method.",
            ),
            &["method"],
        )
        .expect("metric definition is valid");
        let cache_requests = IntCounterVec::new(
            Opts::new(
                "cache_requests_total",
                "User cache lookups by result, one per key. A key served by the \
                 near cache counts as a hit. Callers that share another caller's \
                 lookup of the same key are not counted.",
            ),
            &["result"],
        )
        .expect("metric definition is valid");
        for result in CacheResult::ALL {
            cache_requests.with_label_values(&[result.label()]);
        }
        let cache_invalidations = IntCounter::new(
            "cache_invalidations_total",
            "User cache entries replaced or removed by writes through the gateway.",
        )
        .expect("metric definition is valid");
        let cache_lookup_duration = Histogram::with_opts(
            HistogramOpts::new(
                "cache_lookup_duration_seconds",
                "Time of one user cache store read, including timeouts.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
            ]),
        )
        .expect("metric definition is valid");
        let cache_degraded = IntGauge::new(
            "cache_degraded",
            "1 while the user cache store is bypassed after failures, otherwise 0.",
        )
        .expect("metric definition is valid");
        let requests_shed = IntCounter::new(
            "gateway_requests_shed_total",
            "HTTP requests rejected with 503 OVERLOADED because MAX_IN_FLIGHT_REQUESTS \
             requests were in progress.",
        )
        .expect("metric definition is valid");
        let requests_rate_limited = IntCounter::new(
            "gateway_requests_rate_limited_total",
            "HTTP requests rejected with 429 RATE_LIMITED because their client had no \
             token left.",
        )
        .expect("metric definition is valid");
        let near_cache_requests = IntCounterVec::new(
            Opts::new(
                "near_cache_requests_total",
                "Lookups of the in-process near cache in front of Redis by result, \
                 one per key and caller.",
            ),
            &["result"],
        )
        .expect("metric definition is valid");
        for result in NearCacheResult::ALL {
            near_cache_requests.with_label_values(&[result.label()]);
        }
        let near_cache_invalidations = IntCounterVec::new(
            Opts::new(
                "near_cache_invalidations_total",
                "Invalidations received from Redis for the near cache: scope=key \
                 counts keys, scope=all counts messages that drop every key.",
            ),
            &["scope"],
        )
        .expect("metric definition is valid");
        for scope in InvalidationScope::ALL {
            near_cache_invalidations.with_label_values(&[scope.label()]);
        }
        let near_cache_connected = IntGauge::new(
            "near_cache_connected",
            "1 while the near cache receives invalidations from Redis. 0 while it \
             is bypassed, and when it is off.",
        )
        .expect("metric definition is valid");
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(backend_calls.clone()),
            Box::new(cache_requests.clone()),
            Box::new(cache_invalidations.clone()),
            Box::new(cache_lookup_duration.clone()),
            Box::new(cache_degraded.clone()),
            Box::new(requests_shed.clone()),
            Box::new(requests_rate_limited.clone()),
            Box::new(near_cache_requests.clone()),
            Box::new(near_cache_invalidations.clone()),
            Box::new(near_cache_connected.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        lintas_telemetry::register_metrics(&registry).expect("metric names are unique");
        Self(Arc::new(Families {
            registry,
            http_requests,
            http_duration,
            backend_calls,
            cache_requests,
            cache_invalidations,
            cache_lookup_duration,
            cache_degraded,
            requests_shed,
            requests_rate_limited,
            near_cache_requests,
            near_cache_invalidations,
            near_cache_connected,
        }))
    }

    /// Returns the registry, for metric families defined elsewhere.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Counts one gRPC call to a backend. `method` is a fixed RPC name such
    /// as "user.v1.UserService/GetUser".
    pub fn record_backend_call(&self, method: &'static str) {
        self.backend_calls.with_label_values(&[method]).inc();
    }

    /// Counts `count` keys looked up in the user cache with `result`.
    pub fn record_cache_requests(&self, result: CacheResult, count: usize) {
        self.cache_requests
            .with_label_values(&[result.label()])
            .inc_by(count as u64);
    }

    pub fn record_cache_invalidation(&self) {
        self.cache_invalidations.inc();
    }

    pub fn observe_cache_lookup(&self, duration: Duration) {
        self.cache_lookup_duration.observe(duration.as_secs_f64());
    }

    pub fn set_cache_degraded(&self, degraded: bool) {
        self.cache_degraded.set(i64::from(degraded));
    }

    pub fn record_shed_request(&self) {
        self.requests_shed.inc();
    }

    pub fn record_rate_limited_request(&self) {
        self.requests_rate_limited.inc();
    }

    /// Counts `count` keys looked up in the near cache with `result`.
    pub fn record_near_cache_requests(&self, result: NearCacheResult, count: usize) {
        self.near_cache_requests
            .with_label_values(&[result.label()])
            .inc_by(count as u64);
    }

    /// Counts invalidations received for the near cache; `count` is the
    /// number of keys for [`InvalidationScope::Key`].
    pub fn record_near_cache_invalidations(&self, scope: InvalidationScope, count: usize) {
        self.near_cache_invalidations
            .with_label_values(&[scope.label()])
            .inc_by(count as u64);
    }

    pub fn set_near_cache_connected(&self, connected: bool) {
        self.near_cache_connected.set(i64::from(connected));
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        Ok(String::from_utf8_lossy(&buffer).into_owned())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Middleware that records the count and duration of every HTTP request.
pub async fn track_http<F>(
    metrics: &Metrics,
    request: Request,
    next: impl FnOnce(Request) -> F,
) -> Response
where
    F: Future<Output = Response>,
{
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE.to_owned(), |path| path.as_str().to_owned());

    let response = next(request).await;

    let status_class = format!("{}xx", response.status().as_u16() / 100);
    metrics
        .http_requests
        .with_label_values(&[method, &route, &status_class])
        .inc();
    metrics
        .http_duration
        .with_label_values(&[method, &route])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Keeps the method label bounded: any non-standard method is "other".
fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// Serves `/metrics`.
pub async fn serve_metrics(State(metrics): State<Metrics>) -> Response {
    match metrics.render() {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "failed to encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
