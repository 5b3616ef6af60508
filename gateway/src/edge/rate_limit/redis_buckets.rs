//! The buckets of every client in Redis, shared by the gateway replicas
//! that use the same server and key prefix.

use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::bucket::{Decision, Quota};

/// Takes one token from a bucket, with the rule of `Bucket::take`, run
/// atomically by Redis on Redis's clock, so replicas with skewed clocks
/// share one bucket correctly.
///
/// KEYS[1] is the bucket's key, ARGV[1] the tokens added per second and
/// ARGV[2] the capacity. The bucket is a hash of the tokens left and the
/// time of the last request in microseconds. The key expires once the
/// bucket would be full again, so an idle client costs no memory. Returns
/// 1 and 0 when a token was taken, or 0 and the microseconds until one is
/// available. Times fit a Lua double exactly (below 2^53 microseconds), and
/// both numbers are stored with every digit, which `tostring` would round.
/// Writing after `TIME` needs the script effects replication of Redis 5 and
/// newer.
const TAKE_SCRIPT: &str = r"
local per_second = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
if tokens == nil or updated == nil then
  tokens = burst
  updated = now
end
local elapsed = math.max(0, now - updated)
tokens = math.min(burst, tokens + elapsed * per_second / 1000000)

local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000000 / per_second)
end

redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
  'updated', string.format('%.0f', math.max(now, updated)))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / per_second) + 1000)
return {allowed, wait}
";

/// Upper bound on opening a TCP connection to Redis. A request waits for
/// the connection at most its own, much shorter, operation timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Failure of a Redis call.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Redis failed: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis did not respond within {0:?}")]
    TimedOut(Duration),
}

/// Client buckets in Redis.
pub struct RedisBuckets {
    connection: ConnectionManager,
    script: redis::Script,
    quota: Quota,
    key_prefix: String,
    timeout: Duration,
}

impl RedisBuckets {
    /// Creates the buckets without connecting, so the gateway starts while
    /// Redis is down. The first request opens the connection.
    pub fn new(
        url: &str,
        key_prefix: &str,
        timeout: Duration,
        quota: Quota,
    ) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("REDIS_URL is not a valid Redis URL")?;
        // One quick retry per reconnect: the rate limiter, not the
        // connection, decides when to try again after a failure.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(None);
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .context("failed to set up the Redis connection of the rate limiter")?;
        Ok(Self {
            connection,
            script: redis::Script::new(TAKE_SCRIPT),
            quota,
            key_prefix: key_prefix.to_owned(),
            timeout,
        })
    }

    /// Takes one token from the bucket of `client`.
    #[tracing::instrument(name = "redis EVALSHA", skip_all, fields(otel.kind = "client", db.system.name = "redis", db.operation.name = "EVALSHA"))]
    pub async fn take(&self, client: &str) -> Result<Decision, StoreError> {
        let key = format!("{}:ratelimit:v1:{client}", self.key_prefix);
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(key);
        invocation.arg(self.quota.per_second).arg(self.quota.burst);
        let (allowed, wait_micros): (i64, u64) =
            tokio::time::timeout(self.timeout, invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| StoreError::TimedOut(self.timeout))??;
        if allowed == 1 {
            return Ok(Decision::Allowed);
        }
        Ok(Decision::Limited {
            retry_after: Duration::from_micros(wait_micros),
        })
    }
}
