//! Circuit breaker of the cache store, and the invalidations that wait for
//! the store to come back.
//!
//! After `failure_threshold` consecutive failed operations the breaker
//! opens: requests skip the store for `cooldown` instead of each waiting
//! for a timeout. The first request after the cooldown probes the store.
//! When the probe succeeds the breaker closes and caching resumes.
//!
//! An invalidation that fails, or that arrives while the breaker is open,
//! is kept here and opens the breaker at once. The probe replays every kept
//! invalidation before the breaker closes, so no read is served from the
//! store while it may still hold an entry that a completed write replaced.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::entry::Write;
use crate::metrics::Metrics;

/// Maximum invalidations kept while the store is unreachable. Past it they
/// are dropped and the cache is bypassed until every entry written before
/// has expired, which needs no replay.
const MAX_PENDING: usize = 10_000;

pub(crate) struct Breaker {
    state: Mutex<State>,
    failure_threshold: u32,
    cooldown: Duration,
    /// Maximum lifetime of any entry. The bypass after dropping the kept
    /// invalidations lasts this long.
    max_entry_lifetime: Duration,
    metrics: Metrics,
}

/// Decision on whether a caller may use the store now.
#[derive(Debug, PartialEq)]
pub(crate) enum Admission {
    /// Use the store.
    Pass,
    /// Skip the store.
    Bypass,
    /// Probe the store: apply these kept invalidations, or ping it when
    /// there are none, then report with [`Breaker::probe_succeeded`] or
    /// [`Breaker::probe_failed`].
    Probe(Vec<(String, Write)>),
}

struct State {
    mode: Mode,
    /// Invalidations to replay before the breaker closes, by key. A later
    /// write of a key replaces an earlier one.
    pending: HashMap<String, Write>,
    /// The last store error, for `/readyz`.
    last_error: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// The store is in use. Invariant: nothing is pending.
    Closed { consecutive_failures: u32 },
    /// The store is skipped until `until`.
    Open { until: Instant },
    /// One request is probing the store. Another may probe after `retry_at`
    /// in case the first was cancelled before it reported.
    Probing { retry_at: Instant },
}

impl Breaker {
    pub fn new(
        failure_threshold: u32,
        cooldown: Duration,
        max_entry_lifetime: Duration,
        metrics: Metrics,
    ) -> Self {
        metrics.set_cache_degraded(false);
        Self {
            state: Mutex::new(State {
                mode: Mode::Closed {
                    consecutive_failures: 0,
                },
                pending: HashMap::new(),
                last_error: String::new(),
            }),
            failure_threshold: failure_threshold.max(1),
            cooldown,
            max_entry_lifetime,
            metrics,
        }
    }

    /// Decides whether a read may use the store.
    pub fn admit(&self) -> Admission {
        let mut state = self.lock();
        let now = Instant::now();
        match state.mode {
            Mode::Closed { .. } => Admission::Pass,
            Mode::Open { until } | Mode::Probing { retry_at: until } if now < until => {
                Admission::Bypass
            }
            Mode::Open { .. } | Mode::Probing { .. } => {
                state.mode = Mode::Probing {
                    retry_at: now + self.cooldown,
                };
                let pending = state
                    .pending
                    .iter()
                    .map(|(key, write)| (key.clone(), write.clone()))
                    .collect();
                Admission::Probe(pending)
            }
        }
    }

    /// Tells whether writes may go to the store now; otherwise they must be
    /// handed to [`Breaker::defer`].
    pub fn is_closed(&self) -> bool {
        matches!(self.lock().mode, Mode::Closed { .. })
    }

    /// Returns the reason the store is being skipped, or `None` while it is
    /// in use.
    pub fn bypass_reason(&self) -> Option<String> {
        let state = self.lock();
        match state.mode {
            Mode::Closed { .. } => None,
            Mode::Open { .. } | Mode::Probing { .. } => Some(state.last_error.clone()),
        }
    }

    /// Records a store operation that succeeded while the breaker was closed.
    pub fn record_success(&self) {
        if let Mode::Closed {
            consecutive_failures,
        } = &mut self.lock().mode
        {
            *consecutive_failures = 0;
        }
    }

    /// Records a failed store operation; opens the breaker at the threshold.
    pub fn record_failure(&self, error: &str) {
        let mut state = self.lock();
        state.last_error = error.to_owned();
        if let Mode::Closed {
            consecutive_failures,
        } = state.mode
        {
            let failures = consecutive_failures + 1;
            if failures >= self.failure_threshold {
                self.open(&mut state, self.cooldown);
            } else {
                state.mode = Mode::Closed {
                    consecutive_failures: failures,
                };
            }
        }
    }

    /// Keeps an invalidation for replay and opens the breaker, because the
    /// store may still hold the entry it replaces. `error` is the failure
    /// that prevented it, if it was tried.
    pub fn defer(&self, key: String, write: Write, error: Option<&str>) {
        let mut state = self.lock();
        if let Some(error) = error {
            state.last_error = error.to_owned();
        }
        if let Mode::Closed { .. } = state.mode {
            self.open(&mut state, self.cooldown);
        }
        if state.pending.len() >= MAX_PENDING && !state.pending.contains_key(&key) {
            tracing::warn!(
                kept = MAX_PENDING,
                bypass_secs = self.max_entry_lifetime.as_secs(),
                "too many cache invalidations waiting for the store, \
                 bypassing the cache until every entry has expired"
            );
            state.pending.clear();
            state.mode = Mode::Open {
                until: Instant::now() + self.max_entry_lifetime,
            };
            return;
        }
        state.pending.insert(key, write);
    }

    /// Records a successful probe that applied `replayed`. Closes the
    /// breaker and returns true when nothing else is pending; otherwise
    /// leaves it open for an immediate new probe and returns false.
    pub fn probe_succeeded(&self, replayed: &[(String, Write)]) -> bool {
        let mut state = self.lock();
        if !matches!(state.mode, Mode::Probing { .. }) {
            return false;
        }
        for (key, write) in replayed {
            // A write deferred during the probe replaced this one and still
            // needs to be applied.
            if state.pending.get(key) == Some(write) {
                state.pending.remove(key);
            }
        }
        if !state.pending.is_empty() {
            state.mode = Mode::Open {
                until: Instant::now(),
            };
            return false;
        }
        state.mode = Mode::Closed {
            consecutive_failures: 0,
        };
        self.metrics.set_cache_degraded(false);
        tracing::info!("cache store responds again, caching resumed");
        true
    }

    /// Records a failed probe: the store is skipped for another cooldown.
    pub fn probe_failed(&self, error: &str) {
        let mut state = self.lock();
        state.last_error = error.to_owned();
        if matches!(state.mode, Mode::Probing { .. }) {
            state.mode = Mode::Open {
                until: Instant::now() + self.cooldown,
            };
        }
    }

    fn open(&self, state: &mut State, duration: Duration) {
        state.mode = Mode::Open {
            until: Instant::now() + duration,
        };
        self.metrics.set_cache_degraded(true);
        tracing::warn!(
            error = %state.last_error,
            cooldown_ms = duration.as_millis(),
            "cache store failing, bypassing the cache"
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent: every
        // update above is a single assignment.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(5);
    const LIFETIME: Duration = Duration::from_secs(60);

    fn breaker() -> Breaker {
        Breaker::new(3, COOLDOWN, LIFETIME, Metrics::new())
    }

    fn tombstone() -> Write {
        Write::Tombstone {
            ttl: Duration::from_secs(60),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_failures() {
        let breaker = breaker();
        breaker.record_failure("refused");
        breaker.record_failure("refused");
        assert_eq!(breaker.admit(), Admission::Pass);

        breaker.record_failure("refused");
        assert_eq!(breaker.admit(), Admission::Bypass);
        assert_eq!(breaker.bypass_reason().as_deref(), Some("refused"));
    }

    #[tokio::test(start_paused = true)]
    async fn success_resets_failure_count() {
        let breaker = breaker();
        breaker.record_failure("refused");
        breaker.record_failure("refused");
        breaker.record_success();
        breaker.record_failure("refused");
        breaker.record_failure("refused");
        assert_eq!(breaker.admit(), Admission::Pass);
    }

    #[tokio::test(start_paused = true)]
    async fn probe_after_cooldown_closes() {
        let breaker = breaker();
        for _ in 0..3 {
            breaker.record_failure("refused");
        }
        tokio::time::advance(COOLDOWN).await;

        assert_eq!(breaker.admit(), Admission::Probe(Vec::new()));
        // Only one request probes at a time.
        assert_eq!(breaker.admit(), Admission::Bypass);
        assert!(breaker.probe_succeeded(&[]));
        assert_eq!(breaker.admit(), Admission::Pass);
        assert!(breaker.bypass_reason().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probe_waits_another_cooldown() {
        let breaker = breaker();
        for _ in 0..3 {
            breaker.record_failure("refused");
        }
        tokio::time::advance(COOLDOWN).await;
        assert_eq!(breaker.admit(), Admission::Probe(Vec::new()));
        breaker.probe_failed("still refused");

        assert_eq!(breaker.admit(), Admission::Bypass);
        tokio::time::advance(COOLDOWN).await;
        assert_eq!(breaker.admit(), Admission::Probe(Vec::new()));
    }

    #[tokio::test(start_paused = true)]
    async fn lost_probe_is_retried_after_cooldown() {
        let breaker = breaker();
        for _ in 0..3 {
            breaker.record_failure("refused");
        }
        tokio::time::advance(COOLDOWN).await;
        assert_eq!(breaker.admit(), Admission::Probe(Vec::new()));

        tokio::time::advance(COOLDOWN).await;
        assert_eq!(breaker.admit(), Admission::Probe(Vec::new()));
    }

    #[tokio::test(start_paused = true)]
    async fn failed_invalidation_opens_at_once_and_is_replayed() {
        let breaker = breaker();
        breaker.defer("k".to_owned(), tombstone(), Some("timed out"));
        assert_eq!(breaker.admit(), Admission::Bypass);
        assert!(!breaker.is_closed());

        tokio::time::advance(COOLDOWN).await;
        let replay = vec![("k".to_owned(), tombstone())];
        assert_eq!(breaker.admit(), Admission::Probe(replay.clone()));
        assert!(breaker.probe_succeeded(&replay));
        assert!(breaker.is_closed());
    }

    #[tokio::test(start_paused = true)]
    async fn write_deferred_during_probe_keeps_breaker_open() {
        let breaker = breaker();
        breaker.defer("a".to_owned(), tombstone(), Some("timed out"));
        tokio::time::advance(COOLDOWN).await;
        let Admission::Probe(replay) = breaker.admit() else {
            panic!("expected a probe");
        };
        breaker.defer("b".to_owned(), Write::Remove, None);

        assert!(!breaker.probe_succeeded(&replay));
        let remaining = vec![("b".to_owned(), Write::Remove)];
        assert_eq!(breaker.admit(), Admission::Probe(remaining.clone()));
        assert!(breaker.probe_succeeded(&remaining));
    }

    #[tokio::test(start_paused = true)]
    async fn too_many_pending_bypasses_for_entry_lifetime() {
        let breaker = breaker();
        for index in 0..=MAX_PENDING {
            breaker.defer(format!("k{index}"), Write::Remove, Some("timed out"));
        }
        tokio::time::advance(COOLDOWN).await;
        assert_eq!(breaker.admit(), Admission::Bypass);

        tokio::time::advance(LIFETIME - COOLDOWN).await;
        assert_eq!(breaker.admit(), Admission::Probe(Vec::new()));
    }
}
