//! The storage behind the user cache. Redis and the in-process store offer
//! the same operations with the same write rule, so the cache runs one code
//! path over either.

use std::time::Duration;

use async_trait::async_trait;

use super::entry::{Entry, Write};

/// Key-value storage of cache entries.
#[async_trait]
pub(crate) trait Store: Send + Sync {
    /// Reads the entries of `keys` in one round trip, in the order given.
    /// A key that is empty, or contains bytes this gateway cannot decode,
    /// reads as `None`.
    async fn get(&self, keys: &[String]) -> Result<Vec<Option<Entry>>, StoreError>;

    /// Applies `writes` in one round trip. Each write follows
    /// [`Write::replaces`], atomically per key.
    async fn apply(&self, writes: &[(String, Write)]) -> Result<(), StoreError>;

    /// Checks that the store responds.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// A failed store operation. The cache never passes it to a client: the
/// request goes to the user service instead.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("timed out after {} ms", .0.as_millis())]
    TimedOut(Duration),
    #[error("the Redis I/O thread failed: {0}")]
    IoThread(String),
}
