//! The user cache, black-box: backend calls and cache results are counted
//! through `/metrics`, against a real Redis on loopback and against the
//! in-process store.
//!
//! Tests that share the Redis at 127.0.0.1:6379 each use their own key
//! prefix. Tests that kill, pause or restart Redis start their own
//! `redis-server` on a free loopback port and stop it when they end.
//! `scripts/test.sh` installs and starts Redis.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Notify;

use common::redis_server::{RedisServer, closed_port, redis_command, redis_connection};
use common::{Platform, start_with};

/// The Redis that `scripts/test.sh` starts.
const SHARED_REDIS: &str = "redis://127.0.0.1:6379";

const GET_USER: &str = "gateway_backend_calls_total{method=\"user.v1.UserService/GetUser\"}";
const BATCH_GET_USERS: &str =
    "gateway_backend_calls_total{method=\"user.v1.UserService/BatchGetUsers\"}";

#[derive(Debug, Clone, Copy)]
enum Store {
    Redis,
    Memory,
}

/// Cache settings for a test: its own key prefix, and a store timeout long
/// enough that a loaded machine does not turn slow responses into errors.
/// Tests of timeouts set their own.
fn cache_settings(store: Store, prefix: &str) -> gateway::CacheSettings {
    gateway::CacheSettings {
        redis_url: match store {
            Store::Redis => Some(SHARED_REDIS.to_owned()),
            Store::Memory => None,
        },
        key_prefix: prefix.to_owned(),
        redis_timeout: Duration::from_secs(2),
        ..gateway::CacheSettings::default()
    }
}

fn unique_prefix() -> String {
    format!("lintas-test-{}", uuid::Uuid::new_v4())
}

async fn start_cached(store: Store) -> Platform {
    let settings = cache_settings(store, &unique_prefix());
    start_with(move |gateway| gateway.cache = settings).await
}

async fn cache_count(platform: &Platform, result: &str) -> f64 {
    platform
        .metric(&format!("cache_requests_total{{result=\"{result}\"}}"))
        .await
}

fn user_path(user: &Value) -> String {
    format!("/api/v1/users/{}", user["id"].as_str().unwrap())
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

// Hits and misses.

async fn check_miss_then_hit(store: Store) {
    let platform = start_cached(store).await;
    let user = platform.create_user("Siti", "siti@example.com").await;

    let (status, first) = platform.get(&user_path(&user)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first, user);
    assert_eq!(platform.metric(GET_USER).await, 1.0);
    assert_eq!(cache_count(&platform, "miss").await, 1.0);
    assert_eq!(cache_count(&platform, "hit").await, 0.0);

    let (status, second) = platform.get(&user_path(&user)).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second, user);
    assert_eq!(platform.metric(GET_USER).await, 1.0);
    assert_eq!(cache_count(&platform, "hit").await, 1.0);
}

#[tokio::test]
async fn redis_lookup_misses_then_hits() {
    check_miss_then_hit(Store::Redis).await;
}

#[tokio::test]
async fn memory_lookup_misses_then_hits() {
    check_miss_then_hit(Store::Memory).await;
}

#[tokio::test]
async fn graphql_user_query_shares_rest_entry() {
    let platform = start_cached(Store::Redis).await;
    let user = platform.create_user("Siti", "siti@example.com").await;
    platform.get(&user_path(&user)).await;

    let body = platform
        .graphql(
            "query ($id: ID!) { user(id: $id) { name version } }",
            json!({ "id": user["id"] }),
        )
        .await;
    assert_eq!(body["data"]["user"]["name"], "Siti", "{body}");
    assert_eq!(platform.metric(GET_USER).await, 1.0);
    assert_eq!(cache_count(&platform, "hit").await, 1.0);
}

#[tokio::test]
async fn unknown_user_is_cached_as_not_found() {
    let platform = start_cached(Store::Redis).await;
    let path = format!("/api/v1/users/{}", uuid::Uuid::now_v7());

    for attempt in 0..2 {
        let (status, body) = platform.get(&path).await;
        common::assert_problem(status, &body, 404, "NOT_FOUND");
        assert_eq!(body["detail"], "user not found", "attempt {attempt}");
    }
    assert_eq!(platform.metric(GET_USER).await, 1.0);
    assert_eq!(cache_count(&platform, "hit").await, 1.0);
}

#[tokio::test]
async fn invalid_id_skips_cache() {
    let platform = start_cached(Store::Redis).await;
    for _ in 0..2 {
        let (status, body) = platform.get("/api/v1/users/not-a-uuid").await;
        common::assert_problem(status, &body, 400, "INVALID_ARGUMENT");
    }
    assert_eq!(platform.metric(GET_USER).await, 2.0);
    assert_eq!(cache_count(&platform, "miss").await, 0.0);
}

#[tokio::test]
async fn uppercase_id_shares_entry() {
    let platform = start_cached(Store::Redis).await;
    let user = platform.create_user("Siti", "siti@example.com").await;
    let upper = format!(
        "/api/v1/users/{}",
        user["id"].as_str().unwrap().to_uppercase()
    );

    let (status, body) = platform.get(&upper).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    patch_name(&platform, &user, "Siti Nurhaliza").await;

    let (status, body) = platform.get(&upper).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "Siti Nurhaliza");
    assert_eq!(platform.metric(GET_USER).await, 1.0);
}

#[tokio::test]
async fn entries_use_versioned_keys_and_ttls() {
    let prefix = unique_prefix();
    let mut settings = cache_settings(Store::Redis, &prefix);
    settings.ttl = Duration::from_secs(100);
    settings.negative_ttl = Duration::from_secs(20);
    let platform = start_with(move |gateway| gateway.cache = settings).await;
    let mut redis = redis_connection(SHARED_REDIS).await;

    let user = platform.create_user("Siti", "siti@example.com").await;
    let id = user["id"].as_str().unwrap();
    platform.get(&user_path(&user)).await;
    let key = format!("{prefix}:user:v1:{id}");
    let value: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(value.starts_with(b"P1:"), "{value:?}");
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    // The TTL is 100 s less a jitter of up to 10 %.
    assert!((88_000..=100_000).contains(&ttl_ms), "{ttl_ms}");

    let missing = uuid::Uuid::now_v7().to_string();
    platform.get(&format!("/api/v1/users/{missing}")).await;
    let key = format!("{prefix}:user:v1:{missing}");
    let value: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(value, b"N");
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!((17_000..=20_000).contains(&ttl_ms), "{ttl_ms}");

    delete(&platform, &user).await;
    let key = format!("{prefix}:user:v1:{id}");
    let value: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(value, b"T");
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!((50_000..=60_000).contains(&ttl_ms), "{ttl_ms}");
}

// Invalidation by writes.

async fn check_rest_writes_invalidate(store: Store) {
    let platform = start_cached(store).await;
    let user = platform.create_user("Siti", "siti@example.com").await;
    platform.get(&user_path(&user)).await;

    let updated = patch_name(&platform, &user, "Siti Nurhaliza").await;
    assert_eq!(updated["version"], "2");
    let (status, body) = platform.get(&user_path(&user)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, updated);

    delete(&platform, &user).await;
    let (status, body) = platform.get(&user_path(&user)).await;
    common::assert_problem(status, &body, 404, "NOT_FOUND");

    // The update stored the new user and the delete a tombstone, so the
    // reads after them needed no backend call.
    assert_eq!(platform.metric(GET_USER).await, 1.0);
    assert_eq!(platform.metric("cache_invalidations_total").await, 2.0);
}

#[tokio::test]
async fn redis_rest_writes_invalidate() {
    check_rest_writes_invalidate(Store::Redis).await;
}

#[tokio::test]
async fn memory_rest_writes_invalidate() {
    check_rest_writes_invalidate(Store::Memory).await;
}

#[tokio::test]
async fn graphql_writes_invalidate() {
    let platform = start_cached(Store::Redis).await;
    let user = platform.create_user("Siti", "siti@example.com").await;
    let read = "query ($id: ID!) { user(id: $id) { name version } }";
    let variables = json!({ "id": user["id"] });
    platform.graphql(read, variables.clone()).await;

    let body = platform
        .graphql(
            "mutation ($id: ID!) { updateUser(id: $id, input: { name: \"Dewi\" }) { version } }",
            variables.clone(),
        )
        .await;
    assert_eq!(body["data"]["updateUser"]["version"], "2", "{body}");
    let body = platform.graphql(read, variables.clone()).await;
    assert_eq!(body["data"]["user"]["name"], "Dewi", "{body}");
    assert_eq!(body["data"]["user"]["version"], "2", "{body}");

    let body = platform
        .graphql(
            "mutation ($id: ID!) { deleteUser(id: $id) }",
            variables.clone(),
        )
        .await;
    assert_eq!(body["data"]["deleteUser"], user["id"], "{body}");
    let body = platform.graphql(read, variables).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{body}"
    );
    assert_eq!(platform.metric(GET_USER).await, 1.0);
}

#[tokio::test]
async fn loader_batches_misses_and_reuses_hits() {
    let platform = start_cached(Store::Redis).await;
    let mut users = Vec::new();
    for index in 0..3 {
        let user = platform
            .create_user(
                &format!("User {index}"),
                &format!("user{index}@example.com"),
            )
            .await;
        platform
            .create_order(user["id"].as_str().unwrap(), 1000)
            .await;
        users.push(user);
    }
    // One user is cached already; the first batch load misses the other two.
    platform.get(&user_path(&users[0])).await;
    let query = "{ orders(first: 10) { nodes { user { id name } } } }";

    let body = platform.graphql(query, Value::Null).await;
    let names = order_user_names(&body);
    assert_eq!(names, ["User 0", "User 1", "User 2"], "{body}");
    // Each key is read once. The DataLoader gathers loads for 1 ms, so on a
    // busy machine it may split them into two batches and two calls.
    let batch_calls = platform.metric(BATCH_GET_USERS).await;
    assert!((1.0..=2.0).contains(&batch_calls), "{batch_calls}");
    assert_eq!(cache_count(&platform, "miss").await, 3.0);
    assert_eq!(cache_count(&platform, "hit").await, 1.0);

    patch_name(&platform, &users[1], "Renamed").await;
    let body = platform.graphql(query, Value::Null).await;
    let names = order_user_names(&body);
    assert_eq!(names, ["Renamed", "User 0", "User 2"], "{body}");
    assert_eq!(platform.metric(BATCH_GET_USERS).await, batch_calls);
    assert_eq!(cache_count(&platform, "hit").await, 4.0);
}

/// Returns the names of the orders' users, sorted.
fn order_user_names(body: &Value) -> Vec<String> {
    let mut names: Vec<String> = body["data"]["orders"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no orders in {body}"))
        .iter()
        .map(|order| order["user"]["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

// The stale write-back race.

/// Holds a read between its backend fetch and its cache fill.
#[derive(Default)]
struct FillGate {
    /// Id whose fill is paused; other fills pass.
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

    async fn wait_reached(&self) {
        tokio::time::timeout(Duration::from_secs(10), self.reached.notified())
            .await
            .expect("the read did not reach its cache fill within 10 s");
    }
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Update,
    Delete,
}

/// Holds a cold read after it fetched version 1, completes `change`, lets
/// the read fill the cache, then checks what the next read returns.
async fn check_slow_fill_loses(store: Store, change: Change) {
    let gate = Arc::new(FillGate::default());
    let mut settings = cache_settings(store, &unique_prefix());
    settings.fill_pause = Some(gate.pause());
    let platform = start_with(move |gateway| gateway.cache = settings).await;
    let user = platform.create_user("Siti", "siti@example.com").await;
    *gate.target.lock().unwrap() = Some(user["id"].as_str().unwrap().to_owned());

    let slow_read = {
        let request = platform.client.get(platform.url(&user_path(&user)));
        tokio::spawn(async move { request.send().await.unwrap().json::<Value>().await.unwrap() })
    };
    gate.wait_reached().await;
    match change {
        Change::Update => {
            patch_name(&platform, &user, "Siti Nurhaliza").await;
        }
        Change::Delete => delete(&platform, &user).await,
    }

    // A read that starts after the write must not join the held lookup,
    // which would give it version 1 once released.
    let during = tokio::time::timeout(Duration::from_secs(5), platform.get(&user_path(&user)))
        .await
        .expect("a read after the write waited for the held read");
    check_changed(change, during);

    gate.release.notify_one();
    // The slow read began before the write, so it may return version 1.
    let stale = slow_read.await.unwrap();
    assert_eq!(stale["version"], "1", "{stale}");

    let after = platform.get(&user_path(&user)).await;
    check_changed(change, after);
    // Both later reads were served from the cache, so it contains the new
    // state and the slow read's fill did not replace it.
    assert_eq!(platform.metric(GET_USER).await, 1.0);
}

fn check_changed(change: Change, (status, body): (StatusCode, Value)) {
    match change {
        Change::Update => {
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["version"], "2", "{body}");
            assert_eq!(body["name"], "Siti Nurhaliza", "{body}");
        }
        Change::Delete => common::assert_problem(status, &body, 404, "NOT_FOUND"),
    }
}

#[tokio::test]
async fn redis_slow_fill_loses_to_update() {
    check_slow_fill_loses(Store::Redis, Change::Update).await;
}

#[tokio::test]
async fn redis_slow_fill_loses_to_delete() {
    check_slow_fill_loses(Store::Redis, Change::Delete).await;
}

#[tokio::test]
async fn memory_slow_fill_loses_to_update() {
    check_slow_fill_loses(Store::Memory, Change::Update).await;
}

#[tokio::test]
async fn memory_slow_fill_loses_to_delete() {
    check_slow_fill_loses(Store::Memory, Change::Delete).await;
}

#[tokio::test]
async fn slow_batch_fill_loses_to_update() {
    let gate = Arc::new(FillGate::default());
    let mut settings = cache_settings(Store::Redis, &unique_prefix());
    settings.fill_pause = Some(gate.pause());
    let platform = start_with(move |gateway| gateway.cache = settings).await;
    let user = platform.create_user("Siti", "siti@example.com").await;
    platform
        .create_order(user["id"].as_str().unwrap(), 1000)
        .await;
    *gate.target.lock().unwrap() = Some(user["id"].as_str().unwrap().to_owned());
    let query = "{ orders(first: 10) { nodes { user { name } } } }";

    let slow_read = {
        let request = platform
            .client
            .post(platform.url("/graphql"))
            .json(&json!({ "query": query }));
        tokio::spawn(async move { request.send().await.unwrap().json::<Value>().await.unwrap() })
    };
    gate.wait_reached().await;
    patch_name(&platform, &user, "Siti Nurhaliza").await;
    gate.release.notify_one();
    let stale = slow_read.await.unwrap();
    assert_eq!(order_user_names(&stale), ["Siti"], "{stale}");

    let body = platform.graphql(query, Value::Null).await;
    assert_eq!(order_user_names(&body), ["Siti Nurhaliza"], "{body}");
    assert_eq!(platform.metric(BATCH_GET_USERS).await, 1.0);
}

// Single-flight.

async fn check_cold_key_stampede(store: Store) {
    let platform = start_cached(store).await;
    let user = platform.create_user("Siti", "siti@example.com").await;
    let url = platform.url(&user_path(&user));

    let requests = (0..200).map(|_| {
        let request = platform.client.get(&url);
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    });
    let responses = futures::future::join_all(requests).await;

    for (status, body) in &responses {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["id"], user["id"], "{body}");
    }
    assert_eq!(platform.metric(GET_USER).await, 1.0);
}

#[tokio::test]
async fn redis_cold_key_stampede_calls_backend_once() {
    check_cold_key_stampede(Store::Redis).await;
}

#[tokio::test]
async fn memory_cold_key_stampede_calls_backend_once() {
    check_cold_key_stampede(Store::Memory).await;
}

// Redis failures.

/// Settings for a test that breaks Redis: a short cooldown, so recovery is
/// quick, and an operation timeout above the default 50 ms, so a busy test
/// machine is not mistaken for a failing Redis.
fn failure_settings(url: String) -> gateway::CacheSettings {
    gateway::CacheSettings {
        redis_url: Some(url),
        key_prefix: unique_prefix(),
        redis_timeout: Duration::from_millis(250),
        failure_threshold: 3,
        cooldown: Duration::from_millis(200),
        ..gateway::CacheSettings::default()
    }
}

#[tokio::test]
async fn killed_redis_fails_no_request() {
    let mut redis = RedisServer::start().await;
    let settings = failure_settings(redis.url());
    let platform = start_with(move |gateway| gateway.cache = settings).await;
    let mut users = Vec::new();
    for index in 0..5 {
        let user = platform
            .create_user(
                &format!("User {index}"),
                &format!("user{index}@example.com"),
            )
            .await;
        users.push(user);
    }

    for request in 0..300 {
        if request == 100 {
            assert!(cache_count(&platform, "hit").await > 0.0);
            redis.kill();
        }
        let user = &users[request % users.len()];
        let (status, body) = platform.get(&user_path(user)).await;
        assert_eq!(status, StatusCode::OK, "request {request}: {body}");
        assert_eq!(body["id"], user["id"], "request {request}");
    }
    let skipped = cache_count(&platform, "error").await + cache_count(&platform, "bypass").await;
    assert!(skipped > 0.0, "no lookup failed after the kill");

    redis.restart().await;
    let hits_before = cache_count(&platform, "hit").await;
    let mut recovered = false;
    for _ in 0..100 {
        let (status, body) = platform.get(&user_path(&users[0])).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if cache_count(&platform, "hit").await > hits_before {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "no cache hit within 10 s of restarting Redis");
    assert_eq!(platform.metric("cache_degraded").await, 0.0);
}

#[tokio::test]
async fn lost_invalidation_bypasses_until_replayed() {
    let redis = RedisServer::start().await;
    let settings = failure_settings(redis.url());
    let platform = start_with(move |gateway| gateway.cache = settings).await;
    let user = platform.create_user("Siti", "siti@example.com").await;
    platform.get(&user_path(&user)).await;
    let (_, cached) = platform.get(&user_path(&user)).await;
    assert_eq!(cached["version"], "1");
    assert_eq!(cache_count(&platform, "hit").await, 1.0);

    // Redis holds back writes, so the update's cache write times out. Then
    // the gateway's connection is killed, which discards that write, and
    // Redis resumes with the old entry still readable.
    let mut control = redis_connection(&redis.url()).await;
    redis_command(&mut control, &["CLIENT", "PAUSE", "10000", "WRITE"]).await;
    patch_name(&platform, &user, "Siti Nurhaliza").await;
    assert_eq!(platform.metric("cache_degraded").await, 1.0);
    redis_command(
        &mut control,
        &["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"],
    )
    .await;
    redis_command(&mut control, &["CLIENT", "UNPAUSE"]).await;

    let hits_before = cache_count(&platform, "hit").await;
    let mut resumed = false;
    for attempt in 0..100 {
        let (status, body) = platform.get(&user_path(&user)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["version"], "2", "attempt {attempt}: {body}");
        if cache_count(&platform, "hit").await > hits_before {
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(resumed, "caching did not resume within 5 s");
}

#[tokio::test]
async fn unreachable_redis_serves_and_reports_degraded() {
    let settings = failure_settings(format!("redis://127.0.0.1:{}", closed_port()));
    // The platform starts only once /readyz returns 200.
    let platform = start_with(move |gateway| gateway.cache = settings).await;

    let (status, body) = platform.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready", "{body}");
    let cache = body["checks"]["cache"].as_str().unwrap();
    assert!(cache.starts_with("degraded: "), "{body}");

    let user = platform.create_user("Siti", "siti@example.com").await;
    for _ in 0..3 {
        let (status, body) = platform.get(&user_path(&user)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(platform.metric(GET_USER).await, 3.0);
    assert_eq!(cache_count(&platform, "hit").await, 0.0);
}

#[tokio::test]
async fn readiness_reports_cache_state() {
    let platform = start_cached(Store::Redis).await;
    let (status, body) = platform.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"]["cache"], "serving", "{body}");

    let platform = start_with(|gateway| gateway.cache.enabled = false).await;
    let (status, body) = platform.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"]["cache"], "disabled", "{body}");
}

#[tokio::test]
async fn disabled_cache_calls_backend_each_time() {
    let platform = start_with(|gateway| gateway.cache.enabled = false).await;
    let user = platform.create_user("Siti", "siti@example.com").await;
    for _ in 0..2 {
        let (status, body) = platform.get(&user_path(&user)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(platform.metric(GET_USER).await, 2.0);
    assert_eq!(cache_count(&platform, "miss").await, 0.0);
}
