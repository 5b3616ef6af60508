//! Cache of user lookups: `GET /api/v1/users/{id}`, the GraphQL `user`
//! query and the batch loads behind `Order.user`.
//!
//! The cache is cache-aside. A lookup reads the store. On a miss it calls
//! the user service and writes the result back: the user for the TTL (less
//! a random jitter of up to 10 %, so entries filled together do not expire
//! together), or a NOT_FOUND result for the shorter negative TTL.
//! The store is Redis when `REDIS_URL` is set, shared by every replica, and
//! otherwise a bounded map inside the process. Both run the same code.
//!
//! # Coherence
//!
//! Writes through the gateway keep the cache coherent:
//!
//! - An update stores the user the update returned, and a delete stores a
//!   tombstone that reads as NOT_FOUND for 60 s. Both happen before the
//!   gateway responds to the write.
//! - Every entry carries the user's version, which grows by one per update.
//!   A fill stores a user only when the key holds no newer version and no
//!   tombstone, checked atomically by the store (a Lua script in Redis).
//!   So a slow read that fetched the old user before the write cannot write
//!   it back afterwards. A fill is also dropped when its backend read began
//!   more than 10 s earlier (or half the TTL, when that is shorter), which
//!   keeps every fill well inside the lifetime of the entry it must lose to.
//! - A write forgets the key's single-flight lookup, so a read that starts
//!   after the write returned does not share a lookup that began before it.
//! - When the store cannot take an invalidation, the gateway keeps it,
//!   bypasses the cache, and replays it before using the store again.
//!
//! So once an update or delete through the gateway has returned, a read
//! through the same gateway never returns the old user. These guarantees
//! have limits:
//!
//! - A write that bypasses the gateway, such as a direct gRPC call to the
//!   user service, is not seen until the entry expires: at most the TTL
//!   after the entry was filled (60 s by default).
//! - An update or delete that fails with a 5xx may still have happened. The
//!   gateway then removes the entry, but a read already in flight may fill
//!   the old user again, for at most the TTL.
//! - With several replicas sharing Redis, a read on one replica can join
//!   that replica's lookup which started before a write through another
//!   replica returned, and get the old user. The window is one user-service
//!   call. An invalidation kept by one replica while Redis was unreachable
//!   protects only that replica's reads until it is replayed.
//! - Redis must run as a cache without persistence: a Redis restored from
//!   an older snapshot may serve entries that writes replaced since.
//! - A tombstone evicted for lack of room, by Redis under memory pressure
//!   or by a full in-process store, reopens the slow-read race for the
//!   deleted user until the filled entry expires.
//!
//! # Near cache
//!
//! With Redis, each gateway also keeps the entries it recently read from
//! Redis in a small in-process near cache (see `near`), and serves a hot
//! user without a Redis round trip. Redis reports every write of a user
//! key to every gateway over a dedicated connection (see `tracking`), and
//! the gateway drops the key. A write through the gateway also drops the
//! key from that gateway's own near cache before it responds, so reads
//! through the same gateway keep the guarantee above. Another
//! replica may serve the old user until Redis's invalidation reaches it;
//! in the tests on one host it always had by the time the write's
//! response arrived. Each entry also expires after the near cache's own
//! short TTL, in case an invalidation is lost while the connection seems
//! up. While the invalidation connection is down, the near cache is empty
//! and bypassed.
//!
//! # Failures
//!
//! The cache never fails a request. Each store operation has a timeout
//! (50 ms by default); a store error or timeout sends the request to the
//! user service. After a run of consecutive failures, a circuit breaker
//! bypasses the store for a cooldown, then one request probes it, and
//! caching resumes when the probe succeeds (see `breaker`).

mod breaker;
mod entry;
mod flight;
mod memory;
mod near;
mod redis_io;
mod redis_store;
mod store;
mod tracking;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use lintas_proto::user::v1 as user_pb;
use tokio::time::Instant;

use self::breaker::{Admission, Breaker};
use self::entry::{Entry, Write};
use self::flight::{Claim, Flights, Lead, Outcome};
use self::memory::MemoryStore;
use self::near::NearCache;
use self::redis_store::RedisStore;
use self::store::{Store, StoreError};
use self::tracking::Tracking;
use crate::error::ApiError;
use crate::metrics::{CacheResult, Metrics};

/// Lifetime of the tombstone of a deleted user. It must outlast the slowest
/// fill that may still arrive, which [`MAX_FILL_DELAY`] bounds.
const TOMBSTONE_TTL: Duration = Duration::from_secs(60);

/// Maximum time from the start of a lookup's backend read to its fill. A
/// later fill is dropped, because the tombstone or newer version it must
/// lose to might have expired by then.
const MAX_FILL_DELAY: Duration = Duration::from_secs(10);

/// Settings of the user cache. [`Default`] gives the documented defaults.
#[derive(Clone)]
pub struct CacheSettings {
    /// Whether user lookups are cached at all.
    pub enabled: bool,
    /// Redis server shared by the gateway replicas, for example
    /// `redis://127.0.0.1:6379`. Without it each gateway caches in its own
    /// memory, which an update through another replica does not invalidate.
    pub redis_url: Option<String>,
    /// Lifetime of a cached user, less a jitter of up to 10 %. It bounds how
    /// long a write that bypasses the gateway stays unseen. At least 1 s.
    pub ttl: Duration,
    /// Lifetime of a cached NOT_FOUND result. Zero turns it off.
    pub negative_ttl: Duration,
    /// Upper bound on each store operation. A slower one counts as a
    /// failure, and the request goes to the user service.
    pub redis_timeout: Duration,
    /// Start of every key, so deployments and tests can share one Redis.
    pub key_prefix: String,
    /// Consecutive store failures after which the store is bypassed.
    pub failure_threshold: u32,
    /// How long the store is bypassed before one request probes it again.
    pub cooldown: Duration,
    /// In-process cache in front of Redis. Used only with `redis_url`.
    pub near_cache: NearCacheSettings,
    /// Test hook; see [`FillPause`].
    #[doc(hidden)]
    pub fill_pause: Option<FillPause>,
    /// Test hook like `fill_pause`, run between a Redis read and the near
    /// cache fill with its result.
    #[doc(hidden)]
    pub near_fill_pause: Option<FillPause>,
}

/// Settings of the near cache, which keeps users read from Redis in the
/// gateway's memory and drops them when Redis reports a write.
#[derive(Debug, Clone)]
pub struct NearCacheSettings {
    /// Whether the near cache is used when the cache has a Redis store.
    pub enabled: bool,
    /// Maximum lifetime of an entry. Redis invalidations normally drop a
    /// changed entry much sooner. The TTL bounds how long an entry stays
    /// stale when an invalidation is lost while the connection seems up.
    pub ttl: Duration,
    /// Maximum number of entries. Past it, moka evicts entries by its
    /// TinyLFU policy.
    pub max_entries: u64,
}

impl Default for NearCacheSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            // Each hot user then costs one Redis read per 5 s per gateway,
            // and a lost invalidation shows for at most 5 s.
            ttl: Duration::from_secs(5),
            // Room for a hot set of users. At a few hundred bytes per entry,
            // that is a few megabytes.
            max_entries: 10_000,
        }
    }
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            redis_url: None,
            // Short enough that a write outside the gateway shows within a
            // minute, long enough that a hot user costs one call a minute.
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
            // A Redis on the same network typically responds within a
            // millisecond, and 50 ms bounds what a slow one adds to a request.
            redis_timeout: Duration::from_millis(50),
            key_prefix: "lintas".to_owned(),
            failure_threshold: 5,
            cooldown: Duration::from_secs(5),
            near_cache: NearCacheSettings::default(),
            fill_pause: None,
            near_fill_pause: None,
        }
    }
}

impl fmt::Debug for CacheSettings {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("CacheSettings")
            .field("enabled", &self.enabled)
            .field(
                "redis_url",
                &self.redis_url.as_deref().map(without_credentials),
            )
            .field("ttl", &self.ttl)
            .field("negative_ttl", &self.negative_ttl)
            .field("redis_timeout", &self.redis_timeout)
            .field("key_prefix", &self.key_prefix)
            .field("failure_threshold", &self.failure_threshold)
            .field("cooldown", &self.cooldown)
            .field("near_cache", &self.near_cache)
            .finish_non_exhaustive()
    }
}

/// Test hook that runs between a lookup's backend read and its cache fill,
/// with the keys about to be filled. A test pauses a read there while a
/// write completes, to check that the read's fill cannot undo the write.
#[doc(hidden)]
#[derive(Clone)]
pub struct FillPause(Arc<dyn Fn(Vec<String>) -> BoxFuture<'static, ()> + Send + Sync>);

impl FillPause {
    pub fn new<F, Fut>(pause: F) -> Self
    where
        F: Fn(Vec<String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self(Arc::new(move |keys| Box::pin(pause(keys))))
    }
}

/// Cache of user lookups. Cloning is cheap: clones share the store.
#[derive(Clone)]
pub struct UserCache {
    /// `None` when caching is disabled.
    inner: Option<Arc<Inner>>,
}

struct Inner {
    store: Box<dyn Store>,
    /// `None` without Redis or when turned off.
    near: Option<Arc<NearCache>>,
    /// Keeps the near cache's invalidation connection up. Dropping it stops
    /// the connection.
    _tracking: Option<Tracking>,
    breaker: Breaker,
    flights: Flights,
    metrics: Metrics,
    key_prefix: String,
    ttl: Duration,
    negative_ttl: Duration,
    operation_timeout: Duration,
    fill_deadline: Duration,
    fill_pause: Option<FillPause>,
    near_fill_pause: Option<FillPause>,
}

impl UserCache {
    /// Builds the cache. It connects to Redis on first use, so the gateway
    /// starts while Redis is down; only an invalid setting is an error.
    pub fn new(settings: &CacheSettings, metrics: Metrics) -> anyhow::Result<Self> {
        if !settings.enabled {
            tracing::info!("user cache disabled");
            return Ok(Self { inner: None });
        }
        anyhow::ensure!(
            settings.ttl >= Duration::from_secs(1),
            "cache TTL must be at least 1 second, got {} ms",
            settings.ttl.as_millis()
        );
        anyhow::ensure!(
            !settings.redis_timeout.is_zero(),
            "cache Redis timeout must be above zero"
        );

        let store: Box<dyn Store> = match &settings.redis_url {
            Some(url) => Box::new(RedisStore::new(url)?),
            None => Box::new(MemoryStore::new()),
        };
        let (near, tracking) = match &settings.redis_url {
            Some(url) if settings.near_cache.enabled => {
                let (near, tracking) = start_near_cache(url, settings, &metrics)?;
                (Some(near), Some(tracking))
            }
            _ => (None, None),
        };
        tracing::info!(
            store = if settings.redis_url.is_some() { "redis" } else { "memory" },
            redis_url = settings.redis_url.as_deref().map(without_credentials),
            ttl_secs = settings.ttl.as_secs(),
            key_prefix = %settings.key_prefix,
            near_cache = near.is_some(),
            near_cache_ttl_ms = settings.near_cache.ttl.as_millis(),
            near_cache_max_entries = settings.near_cache.max_entries,
            "user cache enabled"
        );

        let max_entry_lifetime = settings.ttl.max(settings.negative_ttl).max(TOMBSTONE_TTL);
        let inner = Inner {
            store,
            near,
            _tracking: tracking,
            breaker: Breaker::new(
                settings.failure_threshold,
                settings.cooldown,
                max_entry_lifetime,
                metrics.clone(),
            ),
            flights: Flights::default(),
            metrics,
            key_prefix: settings.key_prefix.clone(),
            ttl: settings.ttl,
            negative_ttl: settings.negative_ttl,
            operation_timeout: settings.redis_timeout,
            fill_deadline: MAX_FILL_DELAY.min(settings.ttl / 2),
            fill_pause: settings.fill_pause.clone(),
            near_fill_pause: settings.near_fill_pause.clone(),
        };
        Ok(Self {
            inner: Some(Arc::new(inner)),
        })
    }

    /// Looks up one user, calling `fetch` on a miss. `fetch` returns
    /// `Ok(None)` when the user service has no such user.
    pub async fn get_user<F, Fut>(&self, id: &str, fetch: F) -> Outcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let Some(inner) = &self.inner else {
            return fetch().await;
        };
        let Some(key) = inner.key(id) else {
            return fetch().await;
        };
        // A near-cache hit skips single-flight, because it costs no round
        // trip.
        if let Some(entry) = inner.near_hit(&key) {
            return Ok(entry.into_user());
        }
        match inner.flights.claim(key) {
            Claim::Follow(follower) => match follower.wait().await {
                Some(outcome) => outcome,
                None => fetch().await,
            },
            Claim::Lead(lead) => {
                let outcome = inner.lookup(lead.key(), fetch).await;
                lead.finish(outcome.clone());
                outcome
            }
        }
    }

    /// Looks up many users with one store read, calling `fetch` once with
    /// the ids that missed. Ids that match no user are left out, as
    /// `BatchGetUsers` does. `fetch` is called again only for ids whose
    /// lookup by another caller was cancelled.
    pub async fn get_users<F, Fut>(
        &self,
        ids: Vec<String>,
        fetch: F,
    ) -> Result<Vec<user_pb::User>, ApiError>
    where
        F: Fn(Vec<String>) -> Fut,
        Fut: Future<Output = Result<Vec<user_pb::User>, ApiError>>,
    {
        match &self.inner {
            Some(inner) => inner.lookup_many(ids, fetch).await,
            None => fetch(ids).await,
        }
    }

    /// Stores the user an update through the gateway returned, replacing
    /// the old version.
    pub async fn user_updated(&self, user: &user_pb::User) {
        if let Some(inner) = &self.inner {
            let write = Write::Fill {
                user: user.clone(),
                ttl: jittered(inner.ttl),
            };
            inner.invalidate(&user.id, write).await;
        }
    }

    /// Leaves a tombstone for a user deleted through the gateway.
    pub async fn user_deleted(&self, id: &str) {
        if let Some(inner) = &self.inner {
            let write = Write::Tombstone { ttl: TOMBSTONE_TTL };
            inner.invalidate(id, write).await;
        }
    }

    /// Drops the cached user after an update or delete that failed with a
    /// 5xx, which may have changed the user anyway, with NOT_FOUND, which
    /// shows the cached user is gone, or with ABORTED, which shows the
    /// stored version differs. Other failures changed nothing.
    pub async fn user_write_failed(&self, id: &str, error: &ApiError) {
        let Some(inner) = &self.inner else {
            return;
        };
        // ABORTED means the stored version differs from the caller's, so
        // the cached copy (and the ETag it serves) may be stale too.
        if error.status.is_server_error()
            || error.status == http::StatusCode::NOT_FOUND
            || error.code == "ABORTED"
        {
            inner.invalidate(id, Write::Remove).await;
        }
    }

    /// Describes the cache for `/readyz`: "serving", "disabled", or
    /// "degraded: " and the reason. A degraded cache does not make the
    /// gateway unready, since requests then go to the user service.
    pub async fn readiness(&self) -> String {
        let Some(inner) = &self.inner else {
            return "disabled".to_owned();
        };
        if let Some(reason) = inner.breaker.bypass_reason() {
            return format!("degraded: {reason}");
        }
        match inner.timed(inner.store.ping()).await {
            Ok(()) => {
                inner.breaker.record_success();
                "serving".to_owned()
            }
            Err(error) => {
                inner.record_failure(&error);
                format!("degraded: {error}")
            }
        }
    }
}

impl Inner {
    fn key(&self, id: &str) -> Option<String> {
        entry::user_key(&self.key_prefix, id)
    }

    /// Reads one key and, on a miss, fetches and fills it.
    async fn lookup<F, Fut>(&self, key: &str, fetch: F) -> Outcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let keys = [key.to_owned()];
        let cached = self.read(&keys).await;
        if let Some([Some(entry)]) = cached.as_deref() {
            return Ok(entry.clone().into_user());
        }

        let fetch_started = Instant::now();
        let outcome = fetch().await;
        // Fill only when the store responded to the read. After a failure
        // the write would most likely fail too, and cost another timeout.
        if cached.is_some()
            && let Ok(user) = &outcome
            && let Some(write) = self.fill_write(user.as_ref())
        {
            let [key] = keys;
            self.fill(vec![(key, write)], fetch_started).await;
        }
        outcome
    }

    async fn lookup_many<F, Fut>(
        &self,
        ids: Vec<String>,
        fetch: F,
    ) -> Result<Vec<user_pb::User>, ApiError>
    where
        F: Fn(Vec<String>) -> Fut,
        Fut: Future<Output = Result<Vec<user_pb::User>, ApiError>>,
    {
        // Ids that are not UUIDs go to the user service uncached, which
        // rejects them as it does without the cache.
        let mut uncacheable = Vec::new();
        let mut near_users = Vec::new();
        let mut leads = Vec::new();
        let mut followers = Vec::new();
        let mut seen = HashSet::new();
        for id in ids {
            let Some(key) = self.key(&id) else {
                uncacheable.push(id);
                continue;
            };
            if !seen.insert(key.clone()) {
                continue;
            }
            if let Some(entry) = self.near_hit(&key) {
                near_users.extend(entry.into_user());
                continue;
            }
            match self.flights.claim(key) {
                Claim::Lead(lead) => leads.push((lead, id)),
                Claim::Follow(follower) => followers.push((follower, id)),
            }
        }

        // Finish the keys this call leads before waiting for other callers'
        // keys, so two batches that wait on each other cannot deadlock.
        let mut users = self.lead_many(leads, uncacheable, &fetch).await?;
        users.append(&mut near_users);

        let mut orphaned = Vec::new();
        for (follower, id) in followers {
            match follower.wait().await {
                Some(Ok(user)) => users.extend(user),
                Some(Err(error)) => return Err(error),
                None => orphaned.push(id),
            }
        }
        if !orphaned.is_empty() {
            users.extend(fetch(orphaned).await?);
        }
        Ok(users)
    }

    /// Reads the led keys with one store read, fetches the misses and the
    /// uncacheable ids with one `fetch`, fills the misses with one write,
    /// then finishes every lead.
    async fn lead_many<F, Fut>(
        &self,
        leads: Vec<(Lead<'_>, String)>,
        mut uncacheable: Vec<String>,
        fetch: &F,
    ) -> Result<Vec<user_pb::User>, ApiError>
    where
        F: Fn(Vec<String>) -> Fut,
        Fut: Future<Output = Result<Vec<user_pb::User>, ApiError>>,
    {
        let keys: Vec<String> = leads
            .iter()
            .map(|(lead, _)| lead.key().to_owned())
            .collect();
        let cached = if keys.is_empty() {
            Some(Vec::new())
        } else {
            self.read(&keys).await
        };
        let store_responded = cached.is_some();
        let cached = cached.unwrap_or_else(|| vec![None; keys.len()]);

        let mut users = Vec::new();
        let mut missing = Vec::new();
        for ((lead, id), entry) in leads.into_iter().zip(cached) {
            match entry {
                Some(entry) => {
                    let user = entry.into_user();
                    users.extend(user.clone());
                    lead.finish(Ok(user));
                }
                None => missing.push((lead, id)),
            }
        }
        if missing.is_empty() && uncacheable.is_empty() {
            return Ok(users);
        }

        let mut request: Vec<String> = missing.iter().map(|(_, id)| id.clone()).collect();
        request.append(&mut uncacheable);
        let fetch_started = Instant::now();
        let fetched = match fetch(request).await {
            Ok(fetched) => fetched,
            Err(error) => {
                for (lead, _) in missing {
                    lead.finish(Err(error.clone()));
                }
                return Err(error);
            }
        };

        let mut by_key = HashMap::with_capacity(fetched.len());
        for user in fetched {
            match self.key(&user.id) {
                Some(key) => {
                    by_key.insert(key, user);
                }
                None => users.push(user),
            }
        }
        let found: Vec<Option<user_pb::User>> = missing
            .iter()
            .map(|(lead, _)| by_key.remove(lead.key()))
            .collect();
        // Users the service returned for an id in another form.
        users.extend(by_key.into_values());

        if store_responded {
            let writes = missing
                .iter()
                .zip(&found)
                .filter_map(|((lead, _), user)| {
                    let write = self.fill_write(user.as_ref())?;
                    Some((lead.key().to_owned(), write))
                })
                .collect();
            self.fill(writes, fetch_started).await;
        }
        for ((lead, _), user) in missing.into_iter().zip(found) {
            users.extend(user.clone());
            lead.finish(Ok(user));
        }
        Ok(users)
    }

    /// Returns the near cache's entry of `key`, counted as a cache hit.
    /// `None` on a near-cache miss, and always without a near cache.
    fn near_hit(&self, key: &str) -> Option<Entry> {
        let entry = self.near.as_ref()?.get(key)?;
        self.metrics.record_cache_requests(CacheResult::Hit, 1);
        Some(entry)
    }

    /// Reads `keys` unless the breaker bypasses the store, and counts each
    /// key as a hit, miss, error or bypass. Fills the near cache with the
    /// entries found. `None` when the store was not read.
    async fn read(&self, keys: &[String]) -> Option<Vec<Option<Entry>>> {
        // NOTE: only Redis reads fill the near cache, so it drains within
        // its TTL while the breaker bypasses Redis. Under overload, Redis
        // timeouts open the breaker and hot users then go to the user
        // service.
        if !self.admit().await {
            self.metrics
                .record_cache_requests(CacheResult::Bypass, keys.len());
            return None;
        }

        // Taken before the read, so that a fill loses to an invalidation
        // that arrives while the read is in flight.
        let tickets: Option<Vec<_>> = self
            .near
            .as_ref()
            .map(|near| keys.iter().map(|key| near.ticket(key)).collect());
        let started = Instant::now();
        let result = self.timed(self.store.get(keys)).await;
        self.metrics.observe_cache_lookup(started.elapsed());
        match result {
            Ok(entries) => {
                self.breaker.record_success();
                let hits = entries.iter().filter(|entry| entry.is_some()).count();
                self.metrics.record_cache_requests(CacheResult::Hit, hits);
                self.metrics
                    .record_cache_requests(CacheResult::Miss, keys.len() - hits);
                if let Some(tickets) = tickets {
                    self.fill_near(keys, &entries, tickets).await;
                }
                Some(entries)
            }
            Err(error) => {
                self.record_failure(&error);
                self.metrics
                    .record_cache_requests(CacheResult::Error, keys.len());
                None
            }
        }
    }

    /// Asks the breaker whether to use the store, and runs the probe when
    /// it is this caller's turn.
    async fn admit(&self) -> bool {
        let replay = match self.breaker.admit() {
            Admission::Pass => return true,
            Admission::Bypass => return false,
            Admission::Probe(replay) => replay,
        };
        let probe = if replay.is_empty() {
            self.timed(self.store.ping()).await
        } else {
            self.timed(self.store.apply(&replay)).await
        };
        match probe {
            Ok(()) => self.breaker.probe_succeeded(&replay),
            Err(error) => {
                tracing::debug!(%error, "cache store probe failed");
                self.breaker.probe_failed(&error.to_string());
                false
            }
        }
    }

    /// Stores the entries a Redis read found in the near cache, each unless
    /// its ticket is void.
    async fn fill_near(
        &self,
        keys: &[String],
        entries: &[Option<Entry>],
        tickets: Vec<Option<near::FillTicket>>,
    ) {
        let Some(near) = &self.near else {
            return;
        };
        let fills: Vec<_> = keys
            .iter()
            .zip(entries)
            .zip(tickets)
            .filter_map(|((key, entry), ticket)| Some((key, entry.as_ref()?, ticket?)))
            .collect();
        if fills.is_empty() {
            return;
        }
        if let Some(pause) = &self.near_fill_pause {
            let keys = fills.iter().map(|(key, _, _)| (*key).clone()).collect();
            (pause.0)(keys).await;
        }
        for (key, entry, ticket) in fills {
            near.fill(key, entry.clone(), ticket);
        }
    }

    /// Builds the fill for a fetched result: the user, or NOT_FOUND when
    /// negative caching is on.
    fn fill_write(&self, user: Option<&user_pb::User>) -> Option<Write> {
        match user {
            Some(user) => Some(Write::Fill {
                user: user.clone(),
                ttl: jittered(self.ttl),
            }),
            None if !self.negative_ttl.is_zero() => Some(Write::NotFound {
                ttl: jittered(self.negative_ttl),
            }),
            None => None,
        }
    }

    /// Writes fetched results back. Skipped while the breaker is open, and
    /// when the backend read began too long ago to be safe (see
    /// [`MAX_FILL_DELAY`]).
    async fn fill(&self, writes: Vec<(String, Write)>, fetch_started: Instant) {
        if writes.is_empty() {
            return;
        }
        if let Some(pause) = &self.fill_pause {
            let keys = writes.iter().map(|(key, _)| key.clone()).collect();
            (pause.0)(keys).await;
        }
        if fetch_started.elapsed() > self.fill_deadline {
            tracing::debug!(
                keys = writes.len(),
                "skipped a cache fill whose backend read began too long ago"
            );
            return;
        }
        if !self.breaker.is_closed() {
            return;
        }
        match self.timed(self.store.apply(&writes)).await {
            Ok(()) => self.breaker.record_success(),
            Err(error) => self.record_failure(&error),
        }
    }

    /// Applies the invalidation of a write through the gateway. When the
    /// store is bypassed or fails, the breaker keeps the invalidation and
    /// the store is not read again until it is replayed.
    async fn invalidate(&self, id: &str, write: Write) {
        let Some(key) = self.key(id) else {
            return;
        };
        self.flights.forget(&key);
        self.metrics.record_cache_invalidation();
        self.write_store(key.clone(), write).await;

        // After the store write, so that a near-cache fill whose Redis read
        // may have preceded the write is discarded, even when Redis's
        // invalidation of the write has not arrived yet.
        if let Some(near) = &self.near {
            near.invalidate(&key);
        }
    }

    /// Writes an invalidation to the store, or hands it to the breaker.
    async fn write_store(&self, key: String, write: Write) {
        if !self.breaker.is_closed() {
            self.breaker.defer(key, write, None);
            return;
        }
        let writes = [(key, write)];
        match self.timed(self.store.apply(&writes)).await {
            Ok(()) => self.breaker.record_success(),
            Err(error) => {
                let [(key, write)] = writes;
                tracing::warn!(%error, %key, "cache invalidation failed, kept for replay");
                self.breaker.defer(key, write, Some(&error.to_string()));
            }
        }
    }

    async fn timed<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.operation_timeout, operation)
            .await
            .unwrap_or(Err(StoreError::TimedOut(self.operation_timeout)))
    }

    fn record_failure(&self, error: &StoreError) {
        tracing::debug!(%error, "cache store operation failed");
        self.breaker.record_failure(&error.to_string());
    }
}

/// Creates the near cache and starts its invalidation connection.
fn start_near_cache(
    url: &str,
    settings: &CacheSettings,
    metrics: &Metrics,
) -> anyhow::Result<(Arc<NearCache>, Tracking)> {
    let near_settings = &settings.near_cache;
    anyhow::ensure!(
        !near_settings.ttl.is_zero(),
        "near cache TTL must be above zero; turn the near cache off instead"
    );
    anyhow::ensure!(
        near_settings.max_entries > 0,
        "near cache maximum entries must be above zero; turn the near cache off instead"
    );
    let near = Arc::new(NearCache::new(
        near_settings.ttl,
        near_settings.max_entries,
        metrics.clone(),
    ));
    let tracking = Tracking::spawn(
        url,
        &settings.key_prefix,
        Arc::clone(&near),
        metrics.clone(),
    )?;
    Ok((near, tracking))
}

/// Shortens `ttl` by a random 0 to 10 %, so that entries filled at the same
/// moment do not all expire at the same moment.
fn jittered(ttl: Duration) -> Duration {
    ttl.mul_f64(rand::random_range(0.9..=1.0))
}

/// Returns `url` with any user name and password replaced by `***`, for
/// logs.
fn without_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_hidden() {
        assert_eq!(
            without_credentials("redis://user:secret@cache:6379/0"),
            "redis://***@cache:6379/0"
        );
        assert_eq!(
            without_credentials("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }

    #[test]
    fn settings_debug_hides_password() {
        let settings = CacheSettings {
            redis_url: Some("redis://:hunter2@cache:6379".to_owned()),
            ..CacheSettings::default()
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let ttl = Duration::from_secs(100);
        for _ in 0..1000 {
            let jittered = jittered(ttl);
            assert!(jittered >= Duration::from_secs(90), "{jittered:?}");
            assert!(jittered <= ttl, "{jittered:?}");
        }
    }
}
