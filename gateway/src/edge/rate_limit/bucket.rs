//! The token bucket, and the buckets of every client in the gateway's memory.

use std::time::{Duration, Instant};

/// Upper bound on the clients whose buckets the gateway keeps in memory.
/// At an estimated 200 bytes per bucket that is 20 MB at most. Past it the
/// least recently used bucket is dropped, and that client starts again with
/// a full bucket.
const MAX_LOCAL_BUCKETS: u64 = 100_000;

/// The rule of every bucket: its capacity and how fast it refills.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    /// Tokens added per second; the sustained rate of requests. Positive.
    pub per_second: f64,
    /// Capacity: the requests a client may send at once after being idle.
    /// At least 1.
    pub burst: f64,
}

impl Quota {
    /// Time an empty bucket takes to fill up. A bucket untouched for that
    /// long is full, so forgetting it changes nothing.
    pub fn refill_time(&self) -> Duration {
        Duration::try_from_secs_f64(self.burst / self.per_second).unwrap_or(Duration::MAX)
    }
}

/// Result of taking one token from a client's bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    Allowed,
    /// The bucket was empty; a token is available after `retry_after`.
    Limited {
        retry_after: Duration,
    },
}

/// One client's bucket: the tokens left at the time of the last request.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    pub fn full(quota: &Quota, now: Instant) -> Self {
        Self {
            tokens: quota.burst,
            updated: now,
        }
    }

    /// Adds the tokens earned since the last request, up to the capacity,
    /// then takes one if there is one. A limited request takes nothing.
    pub fn take(&mut self, quota: &Quota, now: Instant) -> Decision {
        let elapsed = now.saturating_duration_since(self.updated);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * quota.per_second).min(quota.burst);
        self.updated = self.updated.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Decision::Allowed;
        }
        let missing = 1.0 - self.tokens;
        Decision::Limited {
            retry_after: Duration::from_secs_f64(missing / quota.per_second),
        }
    }
}

/// The buckets of every client, in this gateway's memory only. A bucket is
/// dropped once it has been idle for its refill time, when it is full again.
pub struct LocalBuckets {
    quota: Quota,
    buckets: moka::sync::Cache<String, Bucket>,
}

impl LocalBuckets {
    pub fn new(quota: Quota) -> Self {
        // A bucket of a very slow rate is dropped after a day even when it
        // is not full yet, which gives that client a few tokens early.
        let idle_time = quota
            .refill_time()
            .clamp(Duration::from_secs(1), Duration::from_secs(24 * 3600));
        let buckets = moka::sync::Cache::builder()
            .max_capacity(MAX_LOCAL_BUCKETS)
            .time_to_idle(idle_time)
            .build();
        Self { quota, buckets }
    }

    /// Takes one token from the bucket of `client`. Concurrent requests of
    /// one client take their tokens one after another.
    pub fn take(&self, client: &str) -> Decision {
        let now = Instant::now();
        let mut decision = Decision::Allowed;
        self.buckets.entry_by_ref(client).and_upsert_with(|entry| {
            let mut bucket =
                entry.map_or_else(|| Bucket::full(&self.quota, now), moka::Entry::into_value);
            decision = bucket.take(&self.quota, now);
            bucket
        });
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUOTA: Quota = Quota {
        per_second: 2.0,
        burst: 3.0,
    };

    fn limited_for(decision: Decision) -> Duration {
        match decision {
            Decision::Limited { retry_after } => retry_after,
            Decision::Allowed => panic!("expected a limited request"),
        }
    }

    #[test]
    fn full_bucket_allows_burst_then_limits() {
        let start = Instant::now();
        let mut bucket = Bucket::full(&QUOTA, start);
        for request in 0..3 {
            assert_eq!(bucket.take(&QUOTA, start), Decision::Allowed, "{request}");
        }
        let retry_after = limited_for(bucket.take(&QUOTA, start));
        assert_eq!(retry_after, Duration::from_millis(500));
    }

    #[test]
    fn retry_after_counts_partial_tokens() {
        let start = Instant::now();
        let mut bucket = Bucket::full(&QUOTA, start);
        for _ in 0..3 {
            bucket.take(&QUOTA, start);
        }
        // 0.2 s earns 0.4 tokens, so 0.6 tokens are missing: 0.3 s more.
        let retry_after = limited_for(bucket.take(&QUOTA, start + Duration::from_millis(200)));
        assert!(
            retry_after.abs_diff(Duration::from_millis(300)) < Duration::from_micros(1),
            "{retry_after:?}"
        );
    }

    #[test]
    fn bucket_refills_at_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::full(&QUOTA, start);
        for _ in 0..3 {
            bucket.take(&QUOTA, start);
        }
        let later = start + Duration::from_millis(500);
        assert_eq!(bucket.take(&QUOTA, later), Decision::Allowed);
        assert!(matches!(
            bucket.take(&QUOTA, later),
            Decision::Limited { .. }
        ));
    }

    #[test]
    fn bucket_never_exceeds_burst() {
        let start = Instant::now();
        let mut bucket = Bucket::full(&QUOTA, start);
        let much_later = start + Duration::from_secs(3600);
        for request in 0..3 {
            assert_eq!(
                bucket.take(&QUOTA, much_later),
                Decision::Allowed,
                "{request}"
            );
        }
        assert!(matches!(
            bucket.take(&QUOTA, much_later),
            Decision::Limited { .. }
        ));
    }

    #[test]
    fn earlier_time_earns_nothing() {
        let start = Instant::now();
        let mut bucket = Bucket::full(&QUOTA, start + Duration::from_secs(1));
        for _ in 0..3 {
            bucket.take(&QUOTA, start);
        }
        assert!(matches!(
            bucket.take(&QUOTA, start),
            Decision::Limited { .. }
        ));
    }

    #[test]
    fn refill_time_is_burst_over_rate() {
        assert_eq!(QUOTA.refill_time(), Duration::from_millis(1500));
    }

    #[test]
    fn local_buckets_are_per_client() {
        let buckets = LocalBuckets::new(QUOTA);
        for request in 0..3 {
            assert_eq!(buckets.take("203.0.113.7"), Decision::Allowed, "{request}");
        }
        assert!(matches!(
            buckets.take("203.0.113.7"),
            Decision::Limited { .. }
        ));
        assert_eq!(buckets.take("203.0.113.8"), Decision::Allowed);
    }
}
