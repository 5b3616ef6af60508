//! The in-process store, used when no Redis is configured. It is private to
//! one gateway process, so replicas do not share it, and an update through
//! one replica does not invalidate another replica's copy.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;
use moka::ops::compute::Op;

use super::entry::{Entry, Write};
use super::store::{Store, StoreError};

/// Maximum entries kept in memory. One entry is a few hundred bytes, so the
/// bound is tens of megabytes at most.
const CAPACITY: u64 = 100_000;

/// Cache entries in a bounded map whose entries expire after their own TTL.
pub(crate) struct MemoryStore {
    entries: moka::sync::Cache<String, Stored>,
}

#[derive(Clone)]
struct Stored {
    entry: Entry,
    ttl: Duration,
}

/// Expires each entry its own TTL after it was last written.
struct ExpireAfterWrite;

impl MemoryStore {
    pub fn new() -> Self {
        // NOTE: when the map is full, moka may refuse to admit a new key, a
        // tombstone included. A refused tombstone lets a read that is slower
        // than the delete write the deleted user back until its TTL ends.
        let entries = moka::sync::Cache::builder()
            .max_capacity(CAPACITY)
            .expire_after(ExpireAfterWrite)
            .build();
        Self { entries }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, keys: &[String]) -> Result<Vec<Option<Entry>>, StoreError> {
        Ok(keys
            .iter()
            .map(|key| self.entries.get(key).map(|stored| stored.entry))
            .collect())
    }

    async fn apply(&self, writes: &[(String, Write)]) -> Result<(), StoreError> {
        for (key, write) in writes {
            let Some((entry, ttl)) = write.entry() else {
                self.entries.invalidate(key);
                continue;
            };
            // The closure runs under moka's per-key lock, so the check and
            // the write are atomic against other writes of the same key.
            self.entries.entry(key.clone()).and_compute_with(|current| {
                let current = current.as_ref().map(|stored| &stored.value().entry);
                if write.replaces(current) {
                    Op::Put(Stored { entry, ttl })
                } else {
                    Op::Nop
                }
            });
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl Expiry<String, Stored> for ExpireAfterWrite {
    fn expire_after_create(&self, _key: &String, value: &Stored, _at: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Stored,
        _at: Instant,
        _remaining: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

#[cfg(test)]
mod tests {
    use lintas_proto::user::v1 as user_pb;

    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    fn fill(version: i64) -> Write {
        Write::Fill {
            user: user_pb::User {
                id: "u".to_owned(),
                version,
                ..Default::default()
            },
            ttl: TTL,
        }
    }

    async fn version_of(store: &MemoryStore, key: &str) -> Option<i64> {
        match store.get(&[key.to_owned()]).await.unwrap().remove(0) {
            Some(Entry::Found(user)) => Some(user.version),
            _ => None,
        }
    }

    #[tokio::test]
    async fn older_fill_is_refused() {
        let store = MemoryStore::new();
        let key = "k".to_owned();
        store.apply(&[(key.clone(), fill(3))]).await.unwrap();
        store.apply(&[(key.clone(), fill(2))]).await.unwrap();
        assert_eq!(version_of(&store, &key).await, Some(3));
        store.apply(&[(key.clone(), fill(4))]).await.unwrap();
        assert_eq!(version_of(&store, &key).await, Some(4));
    }

    #[tokio::test]
    async fn tombstone_blocks_fill_and_remove_clears() {
        let store = MemoryStore::new();
        let key = "k".to_owned();
        store
            .apply(&[(key.clone(), Write::Tombstone { ttl: TTL })])
            .await
            .unwrap();
        store.apply(&[(key.clone(), fill(9))]).await.unwrap();
        let entries = store.get(std::slice::from_ref(&key)).await.unwrap();
        assert_eq!(entries, vec![Some(Entry::Deleted)]);

        store.apply(&[(key.clone(), Write::Remove)]).await.unwrap();
        let entries = store.get(std::slice::from_ref(&key)).await.unwrap();
        assert_eq!(entries, vec![None]);
    }

    #[tokio::test]
    async fn entries_expire_after_their_ttl() {
        let store = MemoryStore::new();
        let key = "k".to_owned();
        let short = Write::NotFound {
            ttl: Duration::from_millis(20),
        };
        store.apply(&[(key.clone(), short)]).await.unwrap();
        let entries = store.get(std::slice::from_ref(&key)).await.unwrap();
        assert_eq!(entries, vec![Some(Entry::NotFound)]);

        tokio::time::sleep(Duration::from_millis(60)).await;
        let entries = store.get(std::slice::from_ref(&key)).await.unwrap();
        assert_eq!(entries, vec![None]);
    }
}
