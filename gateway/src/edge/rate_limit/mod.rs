//! Per-client rate limits: one token bucket per client.
//!
//! A client may send `burst` requests at once and `per_second` requests per
//! second sustained. A request that finds its client's bucket empty gets 429
//! `RATE_LIMITED` with `Retry-After`, the whole seconds until the bucket has
//! a token again. The client is the subject of a valid bearer token, else
//! its address (`client_address`). An IPv6
//! client is keyed by its /64 network, because one host commonly has a
//! whole /64 to pick addresses from.
//!
//! With a Redis URL the buckets live in Redis, shared by every replica
//! (`redis_buckets`). When a Redis call fails or times out, the gateway logs
//! it once and takes tokens from buckets in its own memory (`bucket`), then
//! tries Redis again after a cooldown. During a Redis outage each replica
//! limits on its own, so a client whose requests are spread over N replicas
//! gets up to N times the rate.

mod bucket;
mod redis_buckets;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use self::bucket::{Decision, LocalBuckets, Quota};
use self::redis_buckets::RedisBuckets;
use super::client_address::client_address;
use crate::auth::Identified;
use crate::cache::CacheSettings;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Key of the one bucket shared by requests whose peer address is unknown.
/// `serve` always provides the address; a router served without
/// `into_make_service_with_connect_info` has none.
const UNKNOWN_CLIENT: &str = "unknown";

/// Settings of the per-client rate limit. [`Default`] turns it off.
#[derive(Debug, Clone, Copy, Default)]
pub struct RateLimitSettings {
    /// Tokens added to each client's bucket per second: the sustained rate
    /// of requests. 0 turns rate limiting off.
    pub per_second: f64,
    /// Capacity of each bucket: the requests a client may send at once
    /// after being idle. 0 means one second's worth, at least 1.
    pub burst: u32,
}

impl RateLimitSettings {
    /// Returns the rule of every bucket, or `None` when limiting is off.
    fn quota(&self) -> anyhow::Result<Option<Quota>> {
        anyhow::ensure!(
            self.per_second.is_finite() && self.per_second >= 0.0,
            "RATE_LIMIT_PER_SECOND must be a number of at least 0, not {}",
            self.per_second
        );
        if self.per_second == 0.0 {
            return Ok(None);
        }
        let burst = if self.burst == 0 {
            self.per_second.ceil().max(1.0)
        } else {
            f64::from(self.burst)
        };
        Ok(Some(Quota {
            per_second: self.per_second,
            burst,
        }))
    }
}

/// The per-client rate limiter: the buckets of every client, in Redis or
/// in memory.
pub struct RateLimiter {
    quota: Quota,
    local: LocalBuckets,
    shared: Option<SharedBuckets>,
    trusted_proxy_hops: usize,
    metrics: Metrics,
}

/// Buckets in Redis, skipped for a cooldown after a failure.
struct SharedBuckets {
    redis: RedisBuckets,
    cooldown: Duration,
    started: Instant,
    /// Milliseconds after `started` until which Redis is skipped, or 0
    /// while Redis works.
    skip_until_ms: AtomicU64,
}

impl RateLimiter {
    /// Creates the limiter, or returns `None` when `settings` turn it off.
    /// It shares the user cache's Redis, key prefix, operation timeout and
    /// cooldown after failures, whether or not caching is enabled.
    ///
    /// # Errors
    ///
    /// Fails on a rate that is negative or not a number, and on an invalid
    /// Redis URL.
    pub fn new(
        settings: &RateLimitSettings,
        cache: &CacheSettings,
        trusted_proxy_hops: usize,
        metrics: Metrics,
    ) -> anyhow::Result<Option<Arc<Self>>> {
        let Some(quota) = settings.quota()? else {
            return Ok(None);
        };
        let shared = match &cache.redis_url {
            Some(url) => Some(SharedBuckets::new(
                RedisBuckets::new(url, &cache.key_prefix, cache.redis_timeout, quota)?,
                cache.cooldown,
            )),
            None => None,
        };
        Ok(Some(Arc::new(Self {
            quota,
            local: LocalBuckets::new(quota),
            shared,
            trusted_proxy_hops,
            metrics,
        })))
    }

    /// Takes one token from the bucket of `client`: in Redis when it is
    /// configured and working, otherwise in memory.
    async fn take(&self, client: &str) -> Decision {
        if let Some(shared) = &self.shared
            && let Some(decision) = shared.take(client).await
        {
            return decision;
        }
        self.local.take(client)
    }

    fn too_many_requests(&self, retry_after: Duration) -> Response {
        let seconds = retry_after_seconds(retry_after);
        let detail = format!(
            "too many requests from this client: the limit is {} per second with bursts of {}, \
             retry after {seconds} s",
            self.quota.per_second, self.quota.burst
        );
        let mut response =
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", detail).into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        response
    }
}

impl SharedBuckets {
    fn new(redis: RedisBuckets, cooldown: Duration) -> Self {
        Self {
            redis,
            cooldown,
            started: Instant::now(),
            skip_until_ms: AtomicU64::new(0),
        }
    }

    /// Takes a token in Redis, or returns `None` when Redis is skipped or
    /// failed, so that the caller decides in memory.
    async fn take(&self, client: &str) -> Option<Decision> {
        if self.is_skipped() {
            return None;
        }
        match self.redis.take(client).await {
            Ok(decision) => {
                if self.record_success() {
                    tracing::info!("rate limit store recovered, taking tokens in Redis again");
                }
                Some(decision)
            }
            Err(error) => {
                // Logged once per outage: later failures only extend it.
                if self.record_failure() {
                    tracing::warn!(%error, cooldown_ms = self.cooldown.as_millis(),
                        "rate limit store failed, taking tokens in memory until Redis responds");
                }
                None
            }
        }
    }

    /// Returns true while Redis is skipped after a failure.
    fn is_skipped(&self) -> bool {
        let skip_until = self.skip_until_ms.load(Ordering::Relaxed);
        skip_until != 0 && self.now_ms() < skip_until
    }

    /// Milliseconds since `started`, at least 1, so that 0 means "working".
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Records a successful Redis call. Returns true when it ends an outage.
    fn record_success(&self) -> bool {
        // Loading first keeps the common case free of writes to shared memory.
        self.skip_until_ms.load(Ordering::Relaxed) != 0
            && self.skip_until_ms.swap(0, Ordering::Relaxed) != 0
    }

    /// Records a failed Redis call, which skips Redis for the cooldown.
    /// Returns true when it starts an outage.
    fn record_failure(&self) -> bool {
        let cooldown_ms = u64::try_from(self.cooldown.as_millis()).unwrap_or(u64::MAX);
        let skip_until = self.now_ms().saturating_add(cooldown_ms.max(1));
        self.skip_until_ms.swap(skip_until, Ordering::Relaxed) == 0
    }
}

/// Middleware that takes a token for each request, and rejects the request
/// with 429 when there is none. Probes and `/metrics` take no token.
pub async fn limit<F>(
    limiter: &RateLimiter,
    request: Request,
    next: impl FnOnce(Request) -> F,
) -> Response
where
    F: std::future::Future<Output = Response>,
{
    if super::is_operational(request.uri().path()) {
        return next(request).await;
    }
    let client = client_key(&request, limiter.trusted_proxy_hops);
    match limiter.take(&client).await {
        Decision::Allowed => next(request).await,
        Decision::Limited { retry_after } => {
            limiter.metrics.record_rate_limited_request();
            limiter.too_many_requests(retry_after)
        }
    }
}

/// Returns the bucket of a request: its token's subject when it carries a
/// valid token, so that clients behind one NAT do not share a bucket and
/// one client cannot gain buckets by changing address; else its address.
fn client_key(request: &Request, trusted_proxy_hops: usize) -> String {
    if let Some(Identified(Ok(identity))) = request.extensions().get::<Identified>() {
        return format!("sub:{}", identity.subject);
    }
    let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() else {
        return UNKNOWN_CLIENT.to_owned();
    };
    address_key(client_address(
        peer.ip(),
        request.headers(),
        trusted_proxy_hops,
    ))
}

/// Returns the bucket key of an address: an IPv4 address as it is, and an
/// IPv6 address as its /64 network.
fn address_key(address: IpAddr) -> String {
    match address.to_canonical() {
        IpAddr::V4(address) => address.to_string(),
        IpAddr::V6(address) => {
            let network = Ipv6Addr::from(u128::from(address) & (u128::MAX << 64));
            format!("{network}/64")
        }
    }
}

/// Rounds a wait up to whole seconds, at least 1, as `Retry-After` takes.
fn retry_after_seconds(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(per_second: f64, burst: u32) -> RateLimitSettings {
        RateLimitSettings { per_second, burst }
    }

    #[test]
    fn zero_rate_turns_limiting_off() {
        assert_eq!(settings(0.0, 10).quota().unwrap(), None);
        assert_eq!(RateLimitSettings::default().quota().unwrap(), None);
    }

    #[test]
    fn zero_burst_means_one_second_of_tokens() {
        let quota = settings(2.5, 0).quota().unwrap().unwrap();
        assert_eq!(quota.burst, 3.0);
        let quota = settings(0.2, 0).quota().unwrap().unwrap();
        assert_eq!(quota.burst, 1.0);
    }

    #[test]
    fn explicit_burst_is_kept() {
        let quota = settings(2.0, 20).quota().unwrap().unwrap();
        assert_eq!(quota.per_second, 2.0);
        assert_eq!(quota.burst, 20.0);
    }

    #[test]
    fn invalid_rates_are_rejected() {
        for per_second in [-1.0, f64::NAN, f64::INFINITY] {
            let error = settings(per_second, 1).quota().unwrap_err().to_string();
            assert!(
                error.contains("RATE_LIMIT_PER_SECOND"),
                "{per_second}: {error}"
            );
        }
    }

    /// Buckets in a Redis that nothing listens on. The connection is lazy,
    /// but setting it up needs a Tokio runtime.
    fn shared_buckets(cooldown: Duration) -> SharedBuckets {
        let quota = Quota {
            per_second: 1.0,
            burst: 1.0,
        };
        let redis = RedisBuckets::new(
            "redis://127.0.0.1:1",
            "test",
            Duration::from_millis(50),
            quota,
        )
        .unwrap();
        SharedBuckets::new(redis, cooldown)
    }

    #[tokio::test]
    async fn only_first_failure_starts_outage() {
        let shared = shared_buckets(Duration::from_secs(60));
        assert!(!shared.is_skipped());

        assert!(shared.record_failure());
        assert!(shared.is_skipped());
        assert!(!shared.record_failure());
        assert!(shared.is_skipped());
    }

    #[tokio::test]
    async fn only_first_success_ends_outage() {
        let shared = shared_buckets(Duration::from_secs(60));
        assert!(!shared.record_success());

        shared.record_failure();
        assert!(shared.record_success());
        assert!(!shared.is_skipped());
        assert!(!shared.record_success());
    }

    #[tokio::test]
    async fn redis_is_tried_again_after_cooldown() {
        let shared = shared_buckets(Duration::from_millis(20));
        shared.record_failure();
        assert!(shared.is_skipped());

        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!shared.is_skipped());
        assert!(
            !shared.record_failure(),
            "a failed retry extends the outage"
        );
    }

    #[tokio::test]
    async fn unreachable_redis_is_skipped_after_failure() {
        let shared = shared_buckets(Duration::from_secs(60));
        assert_eq!(shared.take("203.0.113.7").await, None);
        assert!(shared.is_skipped());
        assert_eq!(shared.take("203.0.113.7").await, None);
    }

    #[test]
    fn ipv4_addresses_are_kept_whole() {
        assert_eq!(address_key("203.0.113.7".parse().unwrap()), "203.0.113.7");
    }

    #[test]
    fn ipv6_addresses_share_their_64_network() {
        let first = address_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let second = address_key("2001:db8:1:2:bbbb::2".parse().unwrap());
        assert_eq!(first, "2001:db8:1:2::/64");
        assert_eq!(second, first);
        assert_ne!(address_key("2001:db8:1:3::1".parse().unwrap()), first);
    }

    #[test]
    fn ipv4_mapped_addresses_are_ipv4() {
        assert_eq!(
            address_key("::ffff:203.0.113.7".parse().unwrap()),
            "203.0.113.7"
        );
    }

    #[test]
    fn retry_after_rounds_up_to_seconds() {
        let table = [
            (Duration::ZERO, 1),
            (Duration::from_millis(1), 1),
            (Duration::from_millis(999), 1),
            (Duration::from_secs(1), 1),
            (Duration::from_millis(1001), 2),
            (Duration::from_millis(1999), 2),
            (Duration::from_secs(30), 30),
        ];
        for (wait, expected) in table {
            assert_eq!(retry_after_seconds(wait), expected, "{wait:?}");
        }
    }
}
