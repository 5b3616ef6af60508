//! Circuit breaker of one backend.
//!
//! After `failure_threshold` consecutive failures the breaker opens and
//! calls fail at once for `cooldown`. Then one probe call goes through
//! while the others still fail fast: its success closes the breaker, its
//! failure opens it for another cooldown. State changes are logged and
//! exported as `backend_circuit_state` and
//! `backend_circuit_transitions_total`.

use std::sync::{Arc, Mutex};

use prometheus::{IntCounterVec, IntGaugeVec};
use tokio::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub fn label(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    fn gauge_value(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
}

/// Gauges and counters of every backend's breaker.
#[derive(Clone)]
pub struct BreakerMetrics {
    pub state: IntGaugeVec,
    pub transitions: IntCounterVec,
}

struct Inner {
    state: State,
    consecutive_failures: u32,
    open_until: Instant,
    probe_in_flight: bool,
}

pub struct Breaker {
    backend: &'static str,
    failure_threshold: u32,
    cooldown: Duration,
    inner: Mutex<Inner>,
    metrics: BreakerMetrics,
}

/// Permission to make one call; report its outcome with
/// [`Permit::succeeded`] or [`Permit::failed`]. A permit dropped without a
/// report, such as a call cancelled by its caller, counts as neither, but a
/// dropped probe opens the breaker again.
pub struct Permit {
    breaker: Arc<Breaker>,
    probe: bool,
    reported: bool,
}

impl Breaker {
    pub fn new(
        backend: &'static str,
        failure_threshold: u32,
        cooldown: Duration,
        metrics: BreakerMetrics,
    ) -> Self {
        metrics
            .state
            .with_label_values(&[backend])
            .set(State::Closed.gauge_value());
        Self {
            backend,
            failure_threshold: failure_threshold.max(1),
            cooldown,
            inner: Mutex::new(Inner {
                state: State::Closed,
                consecutive_failures: 0,
                open_until: Instant::now(),
                probe_in_flight: false,
            }),
            metrics,
        }
    }

    #[cfg(test)]
    pub fn state(&self) -> State {
        self.inner.lock().expect("breaker lock").state
    }

    /// Time for which calls still fail fast, while the circuit is open and
    /// its cooldown runs. Once the cooldown is over, it moves the circuit to
    /// half-open, where the next call probes the backend. Without that, an
    /// idle replica's state gauge read open long after the cooldown.
    pub fn refusing_for(&self) -> Option<Duration> {
        let mut inner = self.inner.lock().expect("breaker lock");
        if inner.state != State::Open {
            return None;
        }
        let left = inner.open_until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            self.transition(&mut inner, State::HalfOpen);
            return None;
        }
        Some(left)
    }

    /// Returns a permit, or `None` when the call must fail fast.
    pub fn admit(self: &Arc<Self>) -> Option<Permit> {
        let mut inner = self.inner.lock().expect("breaker lock");
        let probe = match inner.state {
            State::Closed => false,
            State::Open if Instant::now() < inner.open_until => return None,
            State::Open => {
                self.transition(&mut inner, State::HalfOpen);
                inner.probe_in_flight = true;
                true
            }
            State::HalfOpen if inner.probe_in_flight => return None,
            State::HalfOpen => {
                inner.probe_in_flight = true;
                true
            }
        };
        Some(Permit {
            breaker: self.clone(),
            probe,
            reported: false,
        })
    }

    fn record(&self, probe: bool, success: bool) {
        let mut inner = self.inner.lock().expect("breaker lock");
        if probe {
            inner.probe_in_flight = false;
        }
        if success {
            inner.consecutive_failures = 0;
            if inner.state != State::Closed {
                self.transition(&mut inner, State::Closed);
            }
            return;
        }
        inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
        let trips = match inner.state {
            State::Closed => inner.consecutive_failures >= self.failure_threshold,
            State::HalfOpen => probe,
            State::Open => false,
        };
        if trips {
            inner.open_until = Instant::now() + self.cooldown;
            self.transition(&mut inner, State::Open);
        }
    }

    fn transition(&self, inner: &mut Inner, to: State) {
        let from = inner.state;
        inner.state = to;
        self.metrics
            .state
            .with_label_values(&[self.backend])
            .set(to.gauge_value());
        self.metrics
            .transitions
            .with_label_values(&[self.backend, to.label()])
            .inc();
        match to {
            State::Open => tracing::warn!(
                backend = self.backend,
                from = from.label(),
                failures = inner.consecutive_failures,
                cooldown_ms = self.cooldown.as_millis() as u64,
                "backend circuit opened: calls fail fast until a probe succeeds"
            ),
            State::HalfOpen => tracing::info!(
                backend = self.backend,
                "backend circuit half-open: probing the backend"
            ),
            State::Closed => tracing::info!(
                backend = self.backend,
                from = from.label(),
                "backend circuit closed: the backend answers again"
            ),
        }
    }
}

impl Permit {
    pub fn succeeded(mut self) {
        self.reported = true;
        self.breaker.record(self.probe, true);
    }

    pub fn failed(mut self) {
        self.reported = true;
        self.breaker.record(self.probe, false);
    }

    /// Ends the call without a verdict, as for a timeout that the request's
    /// own short budget caused. A probe hands its turn to the next call, and
    /// the circuit stays half-open.
    pub fn inconclusive(mut self) {
        self.reported = true;
        if self.probe {
            self.breaker
                .inner
                .lock()
                .expect("breaker lock")
                .probe_in_flight = false;
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.reported && self.probe {
            self.breaker.record(true, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use prometheus::Opts;

    use super::*;

    fn breaker(threshold: u32, cooldown_ms: u64) -> Arc<Breaker> {
        let metrics = BreakerMetrics {
            state: IntGaugeVec::new(Opts::new("state", "state"), &["backend"]).unwrap(),
            transitions: IntCounterVec::new(Opts::new("transitions", "t"), &["backend", "to"])
                .unwrap(),
        };
        Arc::new(Breaker::new(
            "users",
            threshold,
            Duration::from_millis(cooldown_ms),
            metrics,
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_failures() {
        let breaker = breaker(3, 1000);
        for _ in 0..2 {
            breaker.admit().unwrap().failed();
        }
        assert_eq!(breaker.state(), State::Closed);
        breaker.admit().unwrap().failed();
        assert_eq!(breaker.state(), State::Open);
        assert!(breaker.admit().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn success_resets_the_failure_count() {
        let breaker = breaker(2, 1000);
        breaker.admit().unwrap().failed();
        breaker.admit().unwrap().succeeded();
        breaker.admit().unwrap().failed();
        assert_eq!(breaker.state(), State::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn one_probe_after_cooldown_closes_on_success() {
        let breaker = breaker(1, 1000);
        breaker.admit().unwrap().failed();
        tokio::time::advance(Duration::from_millis(1001)).await;
        let probe = breaker.admit().unwrap();
        assert_eq!(breaker.state(), State::HalfOpen);
        assert!(
            breaker.admit().is_none(),
            "a second caller during the probe"
        );
        probe.succeeded();
        assert_eq!(breaker.state(), State::Closed);
        assert!(breaker.admit().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_check_after_cooldown_half_opens() {
        let breaker = breaker(1, 1000);
        breaker.admit().unwrap().failed();
        assert!(breaker.refusing_for().is_some());
        let gauge = breaker.metrics.state.with_label_values(&["users"]);
        assert_eq!(gauge.get(), 1);

        tokio::time::advance(Duration::from_millis(1001)).await;
        assert_eq!(breaker.refusing_for(), None);
        assert_eq!(breaker.state(), State::HalfOpen);
        assert_eq!(gauge.get(), 2);
        let probe = breaker.admit().unwrap();
        assert!(
            breaker.admit().is_none(),
            "a second caller during the probe"
        );
        probe.succeeded();
        assert_eq!(breaker.state(), State::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probe_opens_for_another_cooldown() {
        let breaker = breaker(1, 1000);
        breaker.admit().unwrap().failed();
        tokio::time::advance(Duration::from_millis(1001)).await;
        breaker.admit().unwrap().failed();
        assert_eq!(breaker.state(), State::Open);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(breaker.admit().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn inconclusive_probe_stays_half_open() {
        let breaker = breaker(1, 1000);
        breaker.admit().unwrap().failed();
        tokio::time::advance(Duration::from_millis(1001)).await;
        breaker.admit().unwrap().inconclusive();
        assert_eq!(breaker.state(), State::HalfOpen);
        let probe = breaker.admit().expect("the next call probes");
        assert!(
            breaker.admit().is_none(),
            "a second caller during the probe"
        );
        probe.succeeded();
        assert_eq!(breaker.state(), State::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_probe_opens_again() {
        let breaker = breaker(1, 1000);
        breaker.admit().unwrap().failed();
        tokio::time::advance(Duration::from_millis(1001)).await;
        drop(breaker.admit().unwrap());
        assert_eq!(breaker.state(), State::Open);
    }
}
