//! The near cache: a bounded in-process copy of entries recently read from
//! Redis, so that a hot user costs no network round trip.
//!
//! It holds only what a Redis read returned, never a value fetched from the
//! user service, and it is used only while the invalidation connection in
//! `tracking` is up. Redis then reports every write of a cached key, and
//! the key is dropped here. The connection is not this module's concern:
//! it calls [`NearCache::set_connected`], [`NearCache::invalidate`] and
//! [`NearCache::flush`].
//!
//! # The fill race
//!
//! A Redis read may return a value that a write replaces while the
//! response is on its way. The invalidation of that write can then be
//! applied before the value is stored here, and storing it afterwards would
//! keep the old value until the TTL. So each fill carries a [`FillTicket`]
//! taken before the Redis read, and a fill is discarded when its key's
//! generation or the cache's epoch changed since then.
//!
//! Generations are counted per stripe of keys rather than per key, so
//! memory stays fixed. An invalidation of another key in the same stripe
//! only discards a fill, which costs one more Redis read later.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::entry::Entry;
use crate::metrics::{Metrics, NearCacheResult};

/// Number of generation counters. A fill is discarded needlessly when
/// another key of its stripe is invalidated during its Redis read, so more
/// stripes mean fewer needless misses. 4,096 counters take 32 KiB.
const STRIPES: usize = 4096;

pub(crate) struct NearCache {
    entries: moka::sync::Cache<String, Stored>,
    /// Per-stripe count of invalidations, compared by fills.
    generations: Box<[AtomicU64]>,
    /// Count that changes whenever every entry is dropped. It is odd while
    /// the invalidation connection is up, and entries are used only then.
    /// Losing the connection and regaining it each add one, and a flush
    /// message adds two.
    epoch: AtomicU64,
    metrics: Metrics,
}

/// Snapshot that a fill must still match when it stores its value: the
/// cache's epoch and the generation of the key's stripe, taken before the
/// Redis read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FillTicket {
    epoch: u64,
    generation: u64,
}

#[derive(Clone)]
struct Stored {
    entry: Entry,
    /// Epoch of the fill, so that entries of an earlier epoch read as
    /// misses even before moka has removed them.
    epoch: u64,
}

impl NearCache {
    /// Creates an empty near cache that is bypassed until
    /// [`NearCache::set_connected`] reports the invalidation connection up.
    pub fn new(ttl: Duration, max_entries: u64, metrics: Metrics) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_entries)
            .time_to_live(ttl)
            .build();
        let generations = (0..STRIPES).map(|_| AtomicU64::new(0)).collect();
        metrics.set_near_cache_connected(false);
        Self {
            entries,
            generations,
            epoch: AtomicU64::new(0),
            metrics,
        }
    }

    /// Returns the entry of `key`, or `None` on a miss or while the cache
    /// is bypassed, and counts the result.
    pub fn get(&self, key: &str) -> Option<Entry> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        if !is_connected(epoch) {
            self.metrics
                .record_near_cache_requests(NearCacheResult::Bypass, 1);
            return None;
        }
        match self.entries.get(key) {
            Some(stored) if stored.epoch == epoch => {
                self.metrics
                    .record_near_cache_requests(NearCacheResult::Hit, 1);
                Some(stored.entry)
            }
            _ => {
                self.metrics
                    .record_near_cache_requests(NearCacheResult::Miss, 1);
                None
            }
        }
    }

    /// Takes the ticket for a fill of `key`. Call it before the Redis read
    /// whose result the fill stores. `None` while the cache is bypassed.
    pub fn ticket(&self, key: &str) -> Option<FillTicket> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        if !is_connected(epoch) {
            return None;
        }
        Some(FillTicket {
            epoch,
            generation: self.stripe(key).load(Ordering::SeqCst),
        })
    }

    /// Stores `entry`, read from Redis, unless `key` was invalidated or the
    /// cache was flushed since `ticket` was taken.
    pub fn fill(&self, key: &str, entry: Entry, ticket: FillTicket) {
        if !self.ticket_is_current(key, ticket) {
            return;
        }
        self.entries.insert(
            key.to_owned(),
            Stored {
                entry,
                epoch: ticket.epoch,
            },
        );
        // An invalidation bumps the generation, then removes the key. When
        // its bump comes after the check above, its removal may still run
        // before the insert, so check again. The removal may drop a newer
        // fill of the same key too, which costs one more Redis read.
        if !self.ticket_is_current(key, ticket) {
            self.entries.invalidate(key);
        }
    }

    /// Drops `key` and discards every fill of it that is in flight.
    pub fn invalidate(&self, key: &str) {
        self.stripe(key).fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate(key);
    }

    /// Drops every entry and discards every fill in flight, after Redis
    /// reported that it dropped all tracked keys, for example on `FLUSHALL`.
    pub fn flush(&self) {
        self.epoch.fetch_add(2, Ordering::SeqCst);
        self.entries.invalidate_all();
    }

    /// Records whether the invalidation connection is up and tracking.
    /// Either change drops every entry and discards every fill in flight,
    /// because invalidations may have been lost in between.
    pub fn set_connected(&self, connected: bool) {
        let changed = self
            .epoch
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |epoch| {
                (is_connected(epoch) != connected).then_some(epoch + 1)
            })
            .is_ok();
        if !changed {
            return;
        }
        self.entries.invalidate_all();
        self.metrics.set_near_cache_connected(connected);
    }

    fn ticket_is_current(&self, key: &str, ticket: FillTicket) -> bool {
        self.epoch.load(Ordering::SeqCst) == ticket.epoch
            && self.stripe(key).load(Ordering::SeqCst) == ticket.generation
    }

    fn stripe(&self, key: &str) -> &AtomicU64 {
        // The default hasher's keys are fixed, so the stripe of a key is
        // the same for every caller in this process.
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
        // The remainder is below STRIPES, so it fits in usize.
        let index = (hash % STRIPES as u64) as usize;
        &self.generations[index]
    }
}

fn is_connected(epoch: u64) -> bool {
    epoch % 2 == 1
}

#[cfg(test)]
mod tests {
    use lintas_proto::user::v1 as user_pb;

    use super::*;

    const KEY: &str = "p:user:v1:0190f0f0-0000-7000-8000-000000000001";

    fn found(version: i64) -> Entry {
        Entry::Found(user_pb::User {
            version,
            ..Default::default()
        })
    }

    fn connected_cache() -> NearCache {
        let cache = NearCache::new(Duration::from_secs(60), 100, Metrics::new());
        cache.set_connected(true);
        cache
    }

    #[test]
    fn bypassed_until_connected() {
        let cache = NearCache::new(Duration::from_secs(60), 100, Metrics::new());
        assert_eq!(cache.ticket(KEY), None);
        assert_eq!(cache.get(KEY), None);

        cache.set_connected(true);
        let ticket = cache.ticket(KEY).expect("connected cache issues tickets");
        cache.fill(KEY, found(1), ticket);
        assert_eq!(cache.get(KEY), Some(found(1)));
    }

    #[test]
    fn fill_after_invalidation_is_discarded() {
        let cache = connected_cache();
        let ticket = cache.ticket(KEY).unwrap();
        cache.invalidate(KEY);
        cache.fill(KEY, found(1), ticket);
        assert_eq!(cache.get(KEY), None);

        // A fill that starts after the invalidation is stored.
        let ticket = cache.ticket(KEY).unwrap();
        cache.fill(KEY, found(2), ticket);
        assert_eq!(cache.get(KEY), Some(found(2)));
    }

    #[test]
    fn invalidation_drops_entry() {
        let cache = connected_cache();
        cache.fill(KEY, found(1), cache.ticket(KEY).unwrap());
        cache.invalidate(KEY);
        assert_eq!(cache.get(KEY), None);
    }

    #[test]
    fn flush_drops_entries_and_fills_in_flight() {
        let cache = connected_cache();
        let other = "p:user:v1:0190f0f0-0000-7000-8000-000000000002";
        cache.fill(other, found(1), cache.ticket(other).unwrap());
        let ticket = cache.ticket(KEY).unwrap();

        cache.flush();
        cache.fill(KEY, found(1), ticket);
        assert_eq!(cache.get(other), None);
        assert_eq!(cache.get(KEY), None);
        assert!(
            cache.ticket(KEY).is_some(),
            "a flush keeps the cache in use"
        );
    }

    #[test]
    fn lost_connection_drops_entries_and_fills_in_flight() {
        let cache = connected_cache();
        cache.fill(KEY, found(1), cache.ticket(KEY).unwrap());
        let ticket = cache.ticket(KEY).unwrap();

        cache.set_connected(false);
        assert_eq!(cache.get(KEY), None);
        assert_eq!(cache.ticket(KEY), None);

        // A fill that began before the loss is discarded after the return.
        cache.set_connected(true);
        cache.fill(KEY, found(1), ticket);
        assert_eq!(cache.get(KEY), None);
    }

    #[test]
    fn repeated_connection_report_keeps_entries() {
        let cache = connected_cache();
        cache.fill(KEY, found(1), cache.ticket(KEY).unwrap());
        cache.set_connected(true);
        assert_eq!(cache.get(KEY), Some(found(1)));
    }
}
