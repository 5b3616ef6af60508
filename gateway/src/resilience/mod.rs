//! Deadlines, retries and circuit breaking of the gateway's backend calls.
//!
//! [`Resilient`] sits between a tonic client and its traced channel, one
//! per backend, so each attempt gets its own client span. Every call sends
//! the time left of the request's budget as its gRPC deadline, and fails
//! fast while the backend's circuit is open. A call that failed with
//! `UNAVAILABLE` is retried when it is safe to repeat: a read (`Get*`,
//! `List*`, `BatchGet*`, `HealthCheck`), a write that carries its
//! idempotency key and is marked with [`RetryableWrite`], or any call whose
//! connection could not be opened, since its request never left. Retries
//! wait a jittered, doubling pause and draw on a budget that grows with the
//! calls made, so retries cannot multiply the load on a failing backend.
//! A call that ends without any response, such as one whose backend died
//! while handling it, fails with `UNAVAILABLE`.

mod body;
pub mod breaker;
pub mod deadline;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use lintas_common::metadata::UNAVAILABLE_DEPENDENCY_KEY;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use rand::Rng as _;
use tokio::time::{Duration, Instant};
use tonic::body::Body;
use tower::retry::budget::{Budget as _, TpsBudget};
use tower::{BoxError, Service, ServiceExt as _};

use breaker::{Breaker, BreakerMetrics, Permit};

/// Retry and breaker settings of one backend.
#[derive(Debug, Clone)]
pub struct ResilienceSettings {
    /// Most retries of one call.
    pub retry_max: u32,
    /// Retries allowed as a share of calls, over the last ten seconds.
    pub retry_ratio: f32,
    /// Retries allowed per second even with few calls.
    pub retry_min_per_sec: u32,
    /// Pause before the first retry; each later retry doubles it, and each
    /// pause is drawn at random up to that value.
    pub retry_backoff: Duration,
    /// Consecutive failures that open the circuit.
    pub breaker_failures: u32,
    /// Time the circuit stays open before a probe call.
    pub breaker_cooldown: Duration,
}

impl Default for ResilienceSettings {
    fn default() -> Self {
        Self {
            retry_max: 2,
            retry_ratio: 0.1,
            retry_min_per_sec: 10,
            retry_backoff: Duration::from_millis(25),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(5),
        }
    }
}

/// Marks a write whose request carries an idempotency key, so a retry
/// cannot apply it twice. Insert it into the tonic request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct RetryableWrite;

/// Metric families shared by the backends' [`Resilient`] layers.
#[derive(Clone)]
pub struct ResilienceMetrics {
    breaker: BreakerMetrics,
    retries: IntCounterVec,
    retries_denied: IntCounterVec,
}

impl ResilienceMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            breaker: BreakerMetrics {
                state: IntGaugeVec::new(
                    Opts::new(
                        "backend_circuit_state",
                        "Circuit of each backend: 0 closed, 1 open, 2 half-open.",
                    ),
                    &["backend"],
                )?,
                transitions: IntCounterVec::new(
                    Opts::new(
                        "backend_circuit_transitions_total",
                        "Changes of each backend's circuit, by the state entered.",
                    ),
                    &["backend", "to"],
                )?,
            },
            retries: IntCounterVec::new(
                Opts::new(
                    "backend_retries_total",
                    "Backend calls repeated after UNAVAILABLE.",
                ),
                &["backend"],
            )?,
            retries_denied: IntCounterVec::new(
                Opts::new(
                    "backend_retries_denied_total",
                    "Retries not made, by reason: budget spent or deadline too close.",
                ),
                &["backend", "reason"],
            )?,
        };
        registry.register(Box::new(metrics.breaker.state.clone()))?;
        registry.register(Box::new(metrics.breaker.transitions.clone()))?;
        registry.register(Box::new(metrics.retries.clone()))?;
        registry.register(Box::new(metrics.retries_denied.clone()))?;
        Ok(metrics)
    }
}

struct Policy {
    backend: &'static str,
    /// Upper bound on one attempt, below the request's own deadline.
    call_timeout: Duration,
    settings: ResilienceSettings,
    breaker: Arc<Breaker>,
    budget: TpsBudget,
    metrics: ResilienceMetrics,
}

/// The tower layer of one backend; see the module documentation.
#[derive(Clone)]
pub struct Resilient<S> {
    inner: S,
    policy: Arc<Policy>,
}

impl<S> Resilient<S> {
    pub fn new(
        inner: S,
        backend: &'static str,
        call_timeout: Duration,
        settings: &ResilienceSettings,
        metrics: &ResilienceMetrics,
    ) -> Self {
        let breaker = Breaker::new(
            backend,
            settings.breaker_failures,
            settings.breaker_cooldown,
            metrics.breaker.clone(),
        );
        let budget = TpsBudget::new(
            Duration::from_secs(10),
            settings.retry_min_per_sec,
            settings.retry_ratio,
        );
        Self {
            inner,
            policy: Arc::new(Policy {
                backend,
                call_timeout,
                settings: settings.clone(),
                breaker: Arc::new(breaker),
                budget,
                metrics: metrics.clone(),
            }),
        }
    }

    /// Returns the backend's circuit breaker, shared by the clones of this
    /// layer.
    pub fn breaker(&self) -> Arc<Breaker> {
        Arc::clone(&self.policy.breaker)
    }
}

impl<S, ResBody> Service<http::Request<Body>> for Resilient<S>
where
    S: Service<http::Request<Body>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(context).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The ready service serves this call; the clone waits for the next.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let policy = self.policy.clone();
        Box::pin(async move {
            let mut response = policy.clone().call(inner, request).await?;
            let status_seen = response.headers().contains_key("grpc-status");
            let pending = response.extensions_mut().remove::<body::PendingPermit>();
            let permit = pending.as_ref().and_then(body::PendingPermit::take);
            Ok(response.map(|inner| {
                Body::new(body::Watched {
                    inner,
                    policy,
                    status_seen,
                    permit,
                    deadline: pending.as_ref().map(|pending| pending.deadline),
                    budget_bound: pending.as_ref().is_some_and(|pending| pending.budget_bound),
                    timer: None,
                })
            }))
        })
    }
}

/// Outcome of one attempt, for the retry rule.
enum Attempt<R> {
    /// Final: a response other than UNAVAILABLE (business errors such as
    /// NOT_FOUND included), a timeout, or a refusal by the open circuit.
    Done(Result<R, BoxError>),
    /// UNAVAILABLE, or no response at all: worth a retry when the call is
    /// safe to repeat.
    Unavailable(Result<R, BoxError>),
    /// The connection could not be opened, so the request never left:
    /// worth a retry whatever the call.
    NotSent(Result<R, BoxError>),
}

impl<R> Attempt<R> {
    fn into_result(self) -> Result<R, BoxError> {
        match self {
            Attempt::Done(result) | Attempt::Unavailable(result) | Attempt::NotSent(result) => {
                result
            }
        }
    }
}

impl Policy {
    async fn call<S, ResBody>(
        self: Arc<Self>,
        mut inner: S,
        request: http::Request<Body>,
    ) -> Result<http::Response<ResBody>, BoxError>
    where
        S: Service<http::Request<Body>, Response = http::Response<ResBody>> + Send,
        S::Future: Send,
        S::Error: Into<BoxError>,
    {
        let deadline = deadline::current();
        let retryable = is_retryable(&request);
        self.budget.deposit();
        // Unary bodies are one small message, so holding it lets any call be
        // sent again after its connection attempt failed.
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map_err(Into::<BoxError>::into)?
            .to_bytes();
        let mut retries = 0;
        loop {
            let request = rebuild(&parts, body.clone());
            let result = match self.attempt(&mut inner, request, deadline).await {
                Attempt::NotSent(result) => result,
                Attempt::Unavailable(result) if retryable => result,
                outcome => return outcome.into_result(),
            };
            if retries >= self.settings.retry_max {
                return result;
            }
            let pause = self.pause(retries);
            if deadline.is_some_and(|deadline| Instant::now() + pause >= deadline) {
                self.denied("deadline");
                return result;
            }
            if !self.budget.withdraw() {
                self.denied("budget");
                return result;
            }
            retries += 1;
            self.metrics
                .retries
                .with_label_values(&[self.backend])
                .inc();
            tokio::time::sleep(pause).await;
        }
    }

    /// Makes one call through the breaker, within the deadline.
    async fn attempt<S, ResBody>(
        &self,
        inner: &mut S,
        mut request: http::Request<Body>,
        deadline: Option<Instant>,
    ) -> Attempt<http::Response<ResBody>>
    where
        S: Service<http::Request<Body>, Response = http::Response<ResBody>> + Send,
        S::Future: Send,
        S::Error: Into<BoxError>,
    {
        let budget = deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
        if budget.is_some_and(|budget| budget.is_zero()) {
            return Attempt::Done(Err(deadline_error()));
        }
        // A call left less than half its timeout by the request's budget,
        // which a slow client can spend, shows nothing about the backend, so
        // its timeout does not count against the breaker. Half still counts
        // when REQUEST_TIMEOUT_MS is not above BACKEND_TIMEOUT_MS.
        let budget_bound = budget.is_some_and(|budget| budget < self.call_timeout / 2);
        let timed_out = |permit: Permit| {
            if budget_bound {
                permit.inconclusive();
            } else {
                permit.failed();
            }
        };
        let remaining = budget.map_or(self.call_timeout, |budget| budget.min(self.call_timeout));
        let started = Instant::now();
        let Some(permit) = self.breaker.admit() else {
            return Attempt::Done(Err(status_error(tonic::Status::unavailable(format!(
                "{} backend is failing; its circuit is open",
                self.backend
            )))));
        };
        if let Ok(value) = http::HeaderValue::from_str(&grpc_timeout(remaining)) {
            request.headers_mut().insert("grpc-timeout", value);
        }
        let call = async {
            inner.ready().await.map_err(Into::into)?;
            inner.call(request).await.map_err(Into::into)
        };
        let result = match tokio::time::timeout(remaining, call).await {
            Ok(result) => result,
            Err(_) => {
                timed_out(permit);
                return Attempt::Done(Err(deadline_error()));
            }
        };
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                // The channel's own timer, set from `grpc-timeout`, can fire
                // before the one above.
                if error_chain(&*error).any(|error| error.is::<tonic::TimeoutExpired>()) {
                    timed_out(permit);
                    return Attempt::Done(Err(deadline_error()));
                }
                permit.failed();
                let not_sent = connection_failed(&*error);
                let result = Err(self.no_response(error));
                return if not_sent {
                    Attempt::NotSent(result)
                } else {
                    Attempt::Unavailable(result)
                };
            }
        };
        let mut response = response;
        match grpc_status(response.headers()) {
            // The backend works but a service that it calls does not. That is
            // no sign of this backend's health, and a retry would meet the
            // same outage.
            Some(tonic::Code::Unavailable)
                if response.headers().contains_key(UNAVAILABLE_DEPENDENCY_KEY) =>
            {
                permit.succeeded();
                Attempt::Done(Ok(response))
            }
            Some(tonic::Code::Unavailable) => {
                permit.failed();
                Attempt::Unavailable(Ok(response))
            }
            Some(tonic::Code::DeadlineExceeded) => {
                timed_out(permit);
                Attempt::Done(Ok(response))
            }
            Some(_) => {
                permit.succeeded();
                Attempt::Done(Ok(response))
            }
            // The status comes in the trailers, so the body reports the
            // outcome once it has read them.
            None => {
                let pending = body::PendingPermit::new(permit, started + remaining, budget_bound);
                response.extensions_mut().insert(pending);
                Attempt::Done(Ok(response))
            }
        }
    }

    /// Reports the outcome of a call whose status arrived in the trailers.
    /// A DEADLINE_EXCEEDED counts as a failure unless the request's budget
    /// left the call less than half its timeout, as in [`Policy::attempt`].
    fn settle(permit: Option<Permit>, code: Option<tonic::Code>, budget_bound: bool) {
        let Some(permit) = permit else {
            return;
        };
        match code {
            Some(tonic::Code::DeadlineExceeded) if budget_bound => permit.inconclusive(),
            Some(tonic::Code::Unavailable | tonic::Code::DeadlineExceeded) | None => {
                permit.failed();
            }
            Some(_) => permit.succeeded(),
        }
    }

    /// Turns the error of a call that got no response into UNAVAILABLE,
    /// which the client maps to 503, unless it already is a gRPC status.
    /// Without this, tonic reports a broken connection as UNKNOWN.
    fn no_response(&self, error: BoxError) -> BoxError {
        if error.is::<tonic::Status>() {
            return error;
        }
        status_error(tonic::Status::unavailable(format!(
            "the {} backend call failed without a response: {}",
            self.backend,
            lintas_common::errors::with_sources(&*error)
        )))
    }

    /// Describes a response that broke off or ended without a gRPC status
    /// as UNAVAILABLE, where tonic would report UNKNOWN. The channel below
    /// has already turned a read error into a status, whose message is kept.
    fn broken_response(&self, error: &BoxError) -> BoxError {
        let reason = match error.downcast_ref::<tonic::Status>() {
            Some(status) => status.message().to_owned(),
            None => lintas_common::errors::with_sources(&**error),
        };
        status_error(tonic::Status::unavailable(format!(
            "the {} backend's response broke off: {reason}",
            self.backend
        )))
    }

    fn pause(&self, retries: u32) -> Duration {
        let ceiling = self.settings.retry_backoff * 2u32.saturating_pow(retries);
        let millis = u64::try_from(ceiling.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        Duration::from_millis(rand::rng().random_range(1..=millis))
    }

    fn denied(&self, reason: &str) {
        self.metrics
            .retries_denied
            .with_label_values(&[self.backend, reason])
            .inc();
    }
}

fn is_retryable(request: &http::Request<Body>) -> bool {
    let method = request.uri().path().rsplit('/').next().unwrap_or_default();
    let read = ["Get", "List", "BatchGet", "HealthCheck"]
        .iter()
        .any(|prefix| method.starts_with(prefix));
    read || request.extensions().get::<RetryableWrite>().is_some()
}

/// Checks whether `error` arose while opening the connection, before the
/// request was written.
fn connection_failed(error: &(dyn std::error::Error + 'static)) -> bool {
    error_chain(error).any(|error| error.is::<tonic::ConnectError>())
}

/// Iterates over `error` and its sources.
fn error_chain<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |error| error.source())
}

fn rebuild(parts: &http::request::Parts, body: Bytes) -> http::Request<Body> {
    let mut request = http::Request::new(Body::new(http_body_util::Full::new(body)));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    *request.extensions_mut() = parts.extensions.clone();
    request
}

/// Reads the status of a response that carries it in its headers, which
/// is how a server reports an error without a message.
fn grpc_status(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .map(tonic::Code::from_i32)
}

/// Formats `remaining` as a `grpc-timeout` header value in milliseconds,
/// at least one.
fn grpc_timeout(remaining: Duration) -> String {
    format!("{}m", remaining.as_millis().clamp(1, 99_999_999))
}

fn status_error(status: tonic::Status) -> BoxError {
    Box::new(status)
}

fn deadline_error() -> BoxError {
    status_error(tonic::Status::deadline_exceeded(
        "the backend did not respond within the call timeout or the request's time budget",
    ))
}

#[cfg(test)]
mod tests;
