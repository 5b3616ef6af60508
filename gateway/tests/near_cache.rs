//! The near cache, black-box: gateways share one Redis and one user service,
//! as replicas do, and each serves hot users from its own memory. Which
//! layer served a read is counted through `/metrics`.
//!
//! Tests that share the Redis at 127.0.0.1:6379 each use their own key
//! prefix. Tests that kill Redis connections, flush or restart Redis start
//! their own `redis-server` on a free loopback port. `scripts/test.sh`
//! installs and starts Redis.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::time::Instant;

use common::redis_server::{RedisServer, redis_command, redis_connection};
use common::{Platform, start_with};

/// The Redis that `scripts/test.sh` starts.
const SHARED_REDIS: &str = "redis://127.0.0.1:6379";

/// Maximum time from a write's response to the moment another gateway no
/// longer serves the old user, as the README states. On one host the
/// invalidation usually arrives before the write's response.
const INVALIDATION_DELAY: Duration = Duration::from_millis(100);

/// How long a test keeps reading after a write, to check that the old user
/// does not come back.
const WATCH_AFTER_WRITE: Duration = Duration::from_millis(500);

/// Client name of the gateway's invalidation connection in `CLIENT LIST`.
const TRACKING_CLIENT_NAME: &str = "lintas-gateway-near-cache";

const GET_USER: &str = "gateway_backend_calls_total{method=\"user.v1.UserService/GetUser\"}";

/// Cache settings with the near cache on and a key prefix of the test's
/// own. The breaker cooldown is short for the tests that break Redis, and
/// the store timeout is long enough that a loaded machine does not turn
/// slow responses into errors.
fn near_settings(redis_url: &str, prefix: &str) -> gateway::CacheSettings {
    gateway::CacheSettings {
        redis_url: Some(redis_url.to_owned()),
        key_prefix: prefix.to_owned(),
        redis_timeout: Duration::from_secs(2),
        failure_threshold: 3,
        cooldown: Duration::from_millis(200),
        ..gateway::CacheSettings::default()
    }
}

fn unique_prefix() -> String {
    format!("lintas-test-{}", uuid::Uuid::new_v4())
}

/// Starts the platform and a second gateway, both on `settings`.
async fn start_two(settings: &gateway::CacheSettings) -> (Platform, Platform) {
    let first = settings.clone();
    let a = start_with(move |gateway| gateway.cache = first).await;
    let second = settings.clone();
    let b = a.start_gateway(move |gateway| gateway.cache = second).await;
    wait_connected(&a).await;
    wait_connected(&b).await;
    (a, b)
}

async fn near_count(platform: &Platform, result: &str) -> f64 {
    platform
        .metric(&format!("near_cache_requests_total{{result=\"{result}\"}}"))
        .await
}

async fn invalidations(platform: &Platform, scope: &str) -> f64 {
    platform
        .metric(&format!(
            "near_cache_invalidations_total{{scope=\"{scope}\"}}"
        ))
        .await
}

/// Waits until the gateway receives invalidations from Redis.
async fn wait_connected(platform: &Platform) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if platform.metric("near_cache_connected").await == 1.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the near cache did not connect to Redis within 15 s");
}

async fn wait_disconnected(platform: &Platform) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if platform.metric("near_cache_connected").await == 0.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the near cache still reported a connection 10 s after Redis stopped");
}

fn user_path(user: &Value) -> String {
    format!("/api/v1/users/{}", user["id"].as_str().unwrap())
}

/// Reads `user` through `platform` until one read is a near-cache hit, and
/// returns that read's body. The first read may fill Redis and the next one
/// the near cache.
async fn warm(platform: &Platform, user: &Value) -> Value {
    for _ in 0..50 {
        let hits = near_count(platform, "hit").await;
        let (status, body) = platform.get(&user_path(user)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if near_count(platform, "hit").await > hits {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no near-cache hit for {} within 50 reads", user["id"]);
}

async fn patch_name(platform: &Platform, user: &Value, name: &str) -> Value {
    let (status, body) = platform
        .call(
            Method::PATCH,
            &user_path(user),
            Some(json!({ "name": name })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn delete(platform: &Platform, user: &Value) {
    let (status, body) = platform.call(Method::DELETE, &user_path(user), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

/// Reads `user` through `reader` from the moment `written` until
/// [`WATCH_AFTER_WRITE`] later. Fails on an old response to a read sent
/// more than [`INVALIDATION_DELAY`] after `written`. Returns when the reader
/// first served the new state, measured from `written`.
async fn watch_reader(
    reader: &Platform,
    user: &Value,
    written: Instant,
    is_new: impl Fn(StatusCode, &Value) -> bool,
) -> Duration {
    let mut first_new = None;
    for read in 0..10_000 {
        let sent = written.elapsed();
        if sent > WATCH_AFTER_WRITE {
            break;
        }
        let (status, body) = reader.get(&user_path(user)).await;
        if is_new(status, &body) {
            first_new.get_or_insert(sent);
        } else {
            assert!(
                sent <= INVALIDATION_DELAY,
                "read {read}, sent {sent:?} after the write returned, got the old state: {status} {body}"
            );
        }
    }
    first_new.expect("the reader never served the new state")
}

// Coherence across gateways.

#[tokio::test]
async fn update_through_one_gateway_reaches_other() {
    let (a, b) = start_two(&near_settings(SHARED_REDIS, &unique_prefix())).await;
    let user = a.create_user("Siti", "siti@example.com").await;

    let cached = warm(&b, &user).await;
    assert_eq!(cached["version"], "1", "{cached}");
    let hits = near_count(&b, "hit").await;
    let (_, body) = b.get(&user_path(&user)).await;
    assert_eq!(body["version"], "1", "{body}");
    assert_eq!(near_count(&b, "hit").await, hits + 1.0);
    let backend_calls = b.metric(GET_USER).await;

    let updated = patch_name(&a, &user, "Siti Nurhaliza").await;
    let written = Instant::now();
    assert_eq!(updated["version"], "2");
    let delay = watch_reader(&b, &user, written, |status, body| {
        status == StatusCode::OK && body["version"] == "2"
    })
    .await;
    eprintln!("gateway B served the update {delay:?} after gateway A returned it");

    assert!(invalidations(&b, "key").await >= 1.0);
    // B read the new user from Redis, which A's update filled.
    assert_eq!(b.metric(GET_USER).await, backend_calls);
}

#[tokio::test]
async fn delete_through_one_gateway_reaches_other() {
    let (a, b) = start_two(&near_settings(SHARED_REDIS, &unique_prefix())).await;
    let user = a.create_user("Siti", "siti@example.com").await;
    let cached = warm(&b, &user).await;
    assert_eq!(cached["version"], "1", "{cached}");

    delete(&a, &user).await;
    let written = Instant::now();
    let delay = watch_reader(&b, &user, written, |status, _| {
        status == StatusCode::NOT_FOUND
    })
    .await;
    eprintln!("gateway B served the delete {delay:?} after gateway A returned it");
}

#[tokio::test]
async fn write_outside_gateways_reaches_near_cache() {
    let prefix = unique_prefix();
    let (a, b) = start_two(&near_settings(SHARED_REDIS, &prefix)).await;
    let user = a.create_user("Siti", "siti@example.com").await;
    warm(&a, &user).await;
    warm(&b, &user).await;

    // An operator drops the entry by hand. Once the invalidation arrived,
    // neither gateway serves the user from its near cache.
    let mut redis = redis_connection(SHARED_REDIS).await;
    let key = format!("{prefix}:user:v1:{}", user["id"].as_str().unwrap());
    redis_command(&mut redis, &["DEL", &key]).await;
    tokio::time::sleep(INVALIDATION_DELAY).await;
    for gateway in [&a, &b] {
        let hits = near_count(gateway, "hit").await;
        let (status, body) = gateway.get(&user_path(&user)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(near_count(gateway, "hit").await, hits, "{}", gateway.base);
    }
    // The first read found Redis empty and called the user service.
    assert_eq!(a.metric(GET_USER).await + b.metric(GET_USER).await, 2.0);
}

// The fill race.

/// Holds the near-cache fill of one user's Redis read.
#[derive(Default)]
struct FillGate {
    target: Mutex<Option<String>>,
    reached: Notify,
    release: Notify,
}

impl FillGate {
    fn pause(self: &Arc<Self>) -> gateway::FillPause {
        let gate = Arc::clone(self);
        gateway::FillPause::new(move |keys: Vec<String>| {
            let gate = Arc::clone(&gate);
            async move {
                let target = gate.target.lock().unwrap().clone();
                let paused = target.is_some_and(|id| keys.iter().any(|key| key.ends_with(&id)));
                if paused {
                    gate.reached.notify_one();
                    gate.release.notified().await;
                }
            }
        })
    }
}

/// Holds B's Redis read of version 1 before its near-cache fill while A
/// updates the user and B receives the invalidation, then checks that B
/// did not keep version 1.
#[tokio::test]
async fn fill_loses_to_invalidation_in_flight() {
    let settings = near_settings(SHARED_REDIS, &unique_prefix());
    let gate = Arc::new(FillGate::default());
    let mut b_settings = settings.clone();
    b_settings.near_fill_pause = Some(gate.pause());
    let a = start_with(move |gateway| gateway.cache = settings).await;
    let b = a
        .start_gateway(move |gateway| gateway.cache = b_settings)
        .await;
    wait_connected(&a).await;
    wait_connected(&b).await;

    // A's read fills Redis with version 1, and B receives the invalidation
    // of that write too.
    let user = a.create_user("Siti", "siti@example.com").await;
    let (status, body) = a.get(&user_path(&user)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_for_invalidations(&b, 1.0).await;

    *gate.target.lock().unwrap() = Some(user["id"].as_str().unwrap().to_owned());
    let slow_read = {
        let request = b.client.get(b.url(&user_path(&user)));
        tokio::spawn(async move { request.send().await.unwrap().json::<Value>().await.unwrap() })
    };
    tokio::time::timeout(Duration::from_secs(10), gate.reached.notified())
        .await
        .expect("B's read did not reach its near-cache fill within 10 s");

    let received = invalidations(&b, "key").await;
    patch_name(&a, &user, "Siti Nurhaliza").await;
    wait_for_invalidations(&b, received + 1.0).await;
    // Only the held read pauses; the read below must fill without pausing.
    *gate.target.lock().unwrap() = None;
    gate.release.notify_one();
    // The held read fetched version 1 from Redis before the update.
    let stale = slow_read.await.unwrap();
    assert_eq!(stale["version"], "1", "{stale}");

    let hits = near_count(&b, "hit").await;
    let (status, body) = b.get(&user_path(&user)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], "2", "{body}");
    assert_eq!(
        near_count(&b, "hit").await,
        hits,
        "served from the near cache"
    );
}

async fn wait_for_invalidations(platform: &Platform, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if invalidations(platform, "key").await >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("fewer than {at_least} invalidations received within 5 s");
}

// Loss of the invalidation connection.

/// Returns the id of the gateway's invalidation connection in
/// `CLIENT LIST`, if it is connected.
async fn tracking_client_id(control: &mut redis::aio::MultiplexedConnection) -> Option<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(control)
        .await
        .expect("CLIENT LIST failed");
    let name = format!("name={TRACKING_CLIENT_NAME}");
    list.lines()
        .find(|line| line.split(' ').any(|field| field == name))?
        .split(' ')
        .find_map(|field| field.strip_prefix("id="))
        .map(str::to_owned)
}

#[tokio::test]
async fn killed_invalidation_connection_flushes_near_cache() {
    let redis = RedisServer::start().await;
    let settings = near_settings(&redis.url(), &unique_prefix());
    let platform = start_with(move |gateway| gateway.cache = settings).await;
    wait_connected(&platform).await;
    let user = platform.create_user("Siti", "siti@example.com").await;
    warm(&platform, &user).await;

    let mut control = redis_connection(&redis.url()).await;
    let old_id = tracking_client_id(&mut control)
        .await
        .expect("the invalidation connection is not in CLIENT LIST");
    redis_command(&mut control, &["CLIENT", "KILL", "ID", &old_id]).await;

    // The gateway reconnects only after it handled the loss.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let id = tracking_client_id(&mut control).await;
        if id.as_ref().is_some_and(|id| *id != old_id) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new invalidation connection within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_connected(&platform).await;

    let hits = near_count(&platform, "hit").await;
    let (status, body) = platform.get(&user_path(&user)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        near_count(&platform, "hit").await,
        hits,
        "the near cache kept an entry across the lost connection"
    );
    warm(&platform, &user).await;
}

#[tokio::test]
async fn stopped_redis_bypasses_near_cache() {
    let mut redis = RedisServer::start().await;
    let settings = near_settings(&redis.url(), &unique_prefix());
    let platform = start_with(move |gateway| gateway.cache = settings).await;
    wait_connected(&platform).await;
    let user = platform.create_user("Siti", "siti@example.com").await;
    warm(&platform, &user).await;

    redis.kill();
    wait_disconnected(&platform).await;
    let hits = near_count(&platform, "hit").await;
    let bypasses = near_count(&platform, "bypass").await;
    let backend_calls = platform.metric(GET_USER).await;
    for _ in 0..3 {
        let (status, body) = platform.get(&user_path(&user)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(near_count(&platform, "hit").await, hits);
    assert_eq!(near_count(&platform, "bypass").await, bypasses + 3.0);
    assert_eq!(platform.metric(GET_USER).await, backend_calls + 3.0);

    redis.restart().await;
    wait_connected(&platform).await;
    warm(&platform, &user).await;
}

#[tokio::test]
async fn flushall_empties_near_cache() {
    let redis = RedisServer::start().await;
    let settings = near_settings(&redis.url(), &unique_prefix());
    let platform = start_with(move |gateway| gateway.cache = settings).await;
    wait_connected(&platform).await;
    let user = platform.create_user("Siti", "siti@example.com").await;
    warm(&platform, &user).await;

    let mut control = redis_connection(&redis.url()).await;
    redis_command(&mut control, &["FLUSHALL"]).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while invalidations(&platform, "all").await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "no invalidation of all keys within 5 s of FLUSHALL"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let hits = near_count(&platform, "hit").await;
    let backend_calls = platform.metric(GET_USER).await;
    let (status, body) = platform.get(&user_path(&user)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(near_count(&platform, "hit").await, hits);
    assert_eq!(platform.metric(GET_USER).await, backend_calls + 1.0);
}

// Settings.

#[tokio::test]
async fn disabled_near_cache_reads_redis_each_time() {
    let mut settings = near_settings(SHARED_REDIS, &unique_prefix());
    settings.near_cache.enabled = false;
    let platform = start_with(move |gateway| gateway.cache = settings).await;
    let user = platform.create_user("Siti", "siti@example.com").await;
    for _ in 0..3 {
        let (status, body) = platform.get(&user_path(&user)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(
        platform
            .metric("cache_requests_total{result=\"hit\"}")
            .await,
        2.0
    );
    assert_eq!(near_count(&platform, "hit").await, 0.0);
    assert_eq!(near_count(&platform, "miss").await, 0.0);
    assert_eq!(platform.metric("near_cache_connected").await, 0.0);
}

#[tokio::test]
async fn near_cache_entries_expire_after_ttl() {
    let mut settings = near_settings(SHARED_REDIS, &unique_prefix());
    settings.near_cache.ttl = Duration::from_millis(300);
    let platform = start_with(move |gateway| gateway.cache = settings).await;
    wait_connected(&platform).await;
    let user = platform.create_user("Siti", "siti@example.com").await;
    warm(&platform, &user).await;

    tokio::time::sleep(Duration::from_millis(600)).await;
    let hits = near_count(&platform, "hit").await;
    let misses = near_count(&platform, "miss").await;
    let (status, body) = platform.get(&user_path(&user)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(near_count(&platform, "hit").await, hits);
    assert_eq!(near_count(&platform, "miss").await, misses + 1.0);
}
