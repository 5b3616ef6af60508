//! The invalidation connection of the near cache: one RESP3 connection to
//! Redis with server-assisted client-side caching in broadcasting mode,
//! `CLIENT TRACKING ON BCAST PREFIX {prefix}:user:`.
//!
//! In broadcasting mode Redis sends an invalidation for every write of a key
//! under the prefix, by any client. The default mode would send one only for
//! keys this connection had read, which means the reads must run on this
//! connection, or on one that names it with `REDIRECT` and enables tracking
//! again after each of its reconnects. Broadcasting keeps the reads on the
//! store's own connection and lets the two reconnect independently, and
//! Redis keeps no table of the keys each client read. The cost is that each
//! gateway receives an invalidation for every write and expiry under the
//! prefix, including the fills of the other replicas, also for keys it
//! does not hold.
//!
//! While the connection is down, or not yet tracking, the near cache is
//! empty and bypassed. A background task reconnects with exponential
//! back-off and pings the connection every second, so a connection that
//! died without closing is noticed within about two seconds.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::near::NearCache;
use super::redis_io;
use crate::metrics::{InvalidationScope, Metrics};

/// Client name of the connection in `CLIENT LIST`, so that operators and
/// tests can find it.
pub(crate) const CLIENT_NAME: &str = "lintas-gateway-near-cache";

/// Upper bound on opening the connection and on each command on it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

/// Time between two pings of the connection.
const PING_INTERVAL: Duration = Duration::from_secs(1);

/// Delay before the first reconnect. Each failure in a row doubles it, up
/// to [`MAX_RECONNECT_DELAY`].
const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// Bound on the reconnect delay, so that the near cache returns within a
/// few seconds of Redis.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// A connection that stayed up this long resets the back-off, so one that
/// fails right after each connect still reconnects slowly.
const STABLE_CONNECTION: Duration = Duration::from_secs(30);

/// The background task that keeps the invalidation connection up. Dropping
/// it stops the task and closes the connection.
pub(crate) struct Tracking {
    task: JoinHandle<()>,
}

/// Cause of the end of a tracking connection.
#[derive(Debug, thiserror::Error)]
enum Lost {
    #[error("connection closed")]
    Closed,
    #[error("ping failed: {0}")]
    Ping(#[from] redis::RedisError),
}

impl Tracking {
    /// Starts the task on the Redis I/O thread, so that invalidations are
    /// applied at once even while request tasks queue up. It connects in
    /// the background, so the gateway starts while Redis is down. Only an
    /// invalid URL is an error.
    pub fn spawn(
        url: &str,
        key_prefix: &str,
        near: Arc<NearCache>,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        // NOTE: the reads and the invalidations use two connections to the
        // same URL. If they reach different servers, for example while a
        // failover moves that address, writes on the server the reads use
        // go unreported, and the near cache may serve old entries for up to
        // its TTL.
        let info = url.into_connection_info()?;
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(resp3))?;
        let prefix = format!("{key_prefix}:user:");
        let task = redis_io::spawn(run(client, prefix, near, metrics));
        Ok(Self { task })
    }
}

impl Drop for Tracking {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects, serves the connection until it is lost, and reconnects, until
/// the task is aborted.
async fn run(client: redis::Client, prefix: String, near: Arc<NearCache>, metrics: Metrics) {
    let mut failures: u32 = 0;
    loop {
        match connect(&client, &prefix).await {
            Ok((connection, pushes)) => {
                near.set_connected(true);
                tracing::info!(prefix = %prefix, "near cache receives invalidations from redis");
                let connected_at = Instant::now();
                let lost = serve(connection, pushes, &near, &metrics).await;
                near.set_connected(false);
                tracing::warn!(error = %lost, "near cache lost its redis invalidation connection, bypassing it");
                if connected_at.elapsed() >= STABLE_CONNECTION {
                    failures = 0;
                }
            }
            Err(error) => {
                // One warning per outage. The retries that follow log at debug.
                if failures == 0 {
                    tracing::warn!(%error, "near cache failed to open its redis invalidation connection, bypassing it");
                } else {
                    tracing::debug!(%error, failures, "near cache reconnect failed");
                }
            }
        }
        failures = failures.saturating_add(1);
        tokio::time::sleep(reconnect_delay(failures)).await;
    }
}

/// Opens the connection and turns tracking on. Pushes, invalidations
/// included, arrive on the returned receiver.
async fn connect(
    client: &redis::Client,
    prefix: &str,
) -> redis::RedisResult<(MultiplexedConnection, mpsc::UnboundedReceiver<PushInfo>)> {
    let (sender, receiver) = mpsc::unbounded_channel();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        .set_push_sender(sender);
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(CLIENT_NAME)
        .exec_async(&mut connection)
        .await?;
    redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg("BCAST")
        .arg("PREFIX")
        .arg(prefix)
        .exec_async(&mut connection)
        .await?;
    Ok((connection, receiver))
}

/// Applies the invalidations that arrive and pings the connection, until
/// the connection closes or a ping fails.
async fn serve(
    mut connection: MultiplexedConnection,
    mut pushes: mpsc::UnboundedReceiver<PushInfo>,
    near: &NearCache,
    metrics: &Metrics,
) -> Lost {
    let mut ping = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            push = pushes.recv() => match push {
                Some(PushInfo { kind: PushKind::Invalidate, data }) => {
                    apply_invalidation(&data, near, metrics);
                }
                Some(PushInfo { kind: PushKind::Disconnection, .. }) | None => return Lost::Closed,
                Some(_) => {}
            },
            _ = ping.tick() => {
                if let Err(error) = redis::cmd("PING").exec_async(&mut connection).await {
                    return Lost::Ping(error);
                }
            }
        }
    }
}

/// Applies one invalidation message. Its data is an array of keys, or null
/// when Redis dropped every tracked key, as on `FLUSHALL`.
fn apply_invalidation(data: &[Value], near: &NearCache, metrics: &Metrics) {
    for value in data {
        match value {
            Value::Nil => {
                near.flush();
                metrics.record_near_cache_invalidations(InvalidationScope::All, 1);
            }
            Value::Array(keys) => {
                for key in keys {
                    invalidate_key(key, near);
                }
                metrics.record_near_cache_invalidations(InvalidationScope::Key, keys.len());
            }
            key => {
                invalidate_key(key, near);
                metrics.record_near_cache_invalidations(InvalidationScope::Key, 1);
            }
        }
    }
}

fn invalidate_key(key: &Value, near: &NearCache) {
    let key = match key {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        Value::SimpleString(text) => Some(text.as_str()),
        _ => None,
    };
    // A key that is not UTF-8 was not written by a gateway, so no entry
    // can hold it.
    if let Some(key) = key {
        near.invalidate(key);
    }
}

/// Returns the delay after `failures` failures in a row: doubling from
/// [`MIN_RECONNECT_DELAY`], capped at [`MAX_RECONNECT_DELAY`], less a
/// random jitter of up to half, so that replicas do not reconnect in step.
fn reconnect_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let delay = MIN_RECONNECT_DELAY
        .saturating_mul(1 << doublings)
        .min(MAX_RECONNECT_DELAY);
    delay.mul_f64(rand::random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delay_doubles_up_to_cap() {
        for failures in 1..40 {
            let delay = reconnect_delay(failures);
            let full = MIN_RECONNECT_DELAY
                .saturating_mul(1 << failures.saturating_sub(1).min(16))
                .min(MAX_RECONNECT_DELAY);
            assert!(delay <= full, "{failures}: {delay:?}");
            assert!(delay >= full / 2, "{failures}: {delay:?}");
        }
        assert!(reconnect_delay(40) <= MAX_RECONNECT_DELAY);
    }
}
