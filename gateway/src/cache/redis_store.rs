//! The Redis store: one multiplexed connection that reconnects by itself,
//! `MGET` for reads, and one pipeline for writes in which each fill runs a
//! Lua script that compares versions on the server.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::entry::{self, Entry, Write};
use super::redis_io;
use super::store::{Store, StoreError};

/// Stores a user unless the key contains a newer version or a tombstone.
/// This is the rule of `Write::replaces`, run atomically by Redis.
///
/// KEYS[1] is the entry's key, ARGV[1] the user's version, ARGV[2] the
/// encoded entry and ARGV[3] the TTL in milliseconds. Returns 1 when it
/// stored the entry. Lua compares versions as doubles, which is exact below
/// 2^53 updates of one user.
const FILL_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local tag = string.sub(current, 1, 1)
  if tag == 'T' then
    return 0
  end
  if tag == 'P' then
    local colon = string.find(current, ':', 2, true)
    if colon and tonumber(string.sub(current, 2, colon - 1)) > tonumber(ARGV[1]) then
      return 0
    end
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";

/// Upper bound on opening a TCP connection to Redis. A request waits for
/// the connection at most its own, much shorter, operation timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Cache entries in Redis, shared by every gateway that uses the same
/// server and key prefix.
pub(crate) struct RedisStore {
    connection: ConnectionManager,
    fill_script: redis::Script,
}

impl RedisStore {
    /// Creates the store without connecting, so the gateway starts while
    /// Redis is down. The first operation opens the connection.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("REDIS_URL is not a valid Redis URL")?;
        // One quick retry per reconnect: the cache's circuit breaker, not
        // the connection, decides when to try again.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(None);
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .context("failed to set up the Redis connection")?;
        Ok(Self {
            connection,
            fill_script: redis::Script::new(FILL_SCRIPT),
        })
    }
}

#[async_trait]
impl Store for RedisStore {
    #[tracing::instrument(name = "redis MGET", skip_all, fields(otel.kind = "client", db.system.name = "redis", db.operation.name = "MGET", keys = keys.len()))]
    async fn get(&self, keys: &[String]) -> Result<Vec<Option<Entry>>, StoreError> {
        let mut connection = self.connection.clone();
        let mut command = redis::cmd("MGET");
        command.arg(keys);
        let values: Vec<Option<Vec<u8>>> =
            redis_io::run(async move { command.query_async(&mut connection).await }).await?;
        Ok(values
            .into_iter()
            .map(|value| value.and_then(|bytes| Entry::decode(&bytes)))
            .collect())
    }

    #[tracing::instrument(name = "redis pipeline", skip_all, fields(otel.kind = "client", db.system.name = "redis", db.operation.name = "PIPELINE", writes = writes.len()))]
    async fn apply(&self, writes: &[(String, Write)]) -> Result<(), StoreError> {
        let mut pipeline = redis::pipe();
        let has_fill = writes
            .iter()
            .any(|(_, write)| matches!(write, Write::Fill { .. }));
        if has_fill {
            // Loading the script first makes EVALSHA work after a Redis
            // restart emptied the script cache; loading is idempotent.
            pipeline.cmd("SCRIPT").arg("LOAD").arg(FILL_SCRIPT).ignore();
        }
        for (key, write) in writes {
            match write {
                Write::Fill { user, ttl } => pipeline
                    .cmd("EVALSHA")
                    .arg(self.fill_script.get_hash())
                    .arg(1)
                    .arg(key)
                    .arg(user.version)
                    .arg(entry::encode_found(user))
                    .arg(millis(*ttl)),
                Write::NotFound { ttl } => pipeline
                    .cmd("SET")
                    .arg(key)
                    .arg(Entry::NotFound.encode())
                    .arg("PX")
                    .arg(millis(*ttl))
                    .arg("NX"),
                Write::Tombstone { ttl } => pipeline
                    .cmd("SET")
                    .arg(key)
                    .arg(Entry::Deleted.encode())
                    .arg("PX")
                    .arg(millis(*ttl)),
                Write::Remove => pipeline.cmd("DEL").arg(key),
            }
            .ignore();
        }
        let mut connection = self.connection.clone();
        redis_io::run(async move { pipeline.exec_async(&mut connection).await }).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        redis_io::run(async move {
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        })
        .await?;
        Ok(())
    }
}

/// Converts a TTL to the whole milliseconds `PX` takes, at least 1.
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}
