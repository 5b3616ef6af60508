//! Per-client rate limits, black-box: bursts from one client, clients by
//! token subject, requests without a token by TCP address and by
//! `X-Forwarded-For`, refills, exempt probes,
//! and buckets shared by two gateways through the Redis at 127.0.0.1:6379,
//! which `scripts/test.sh` starts. Each Redis test uses its own key prefix.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use reqwest::{Client, StatusCode, header};
use serde_json::Value;

use common::{Platform, start_with};

const SHARED_REDIS: &str = "redis://127.0.0.1:6379";

const USERS: &str = "/api/v1/users";

/// Starts the platform with a rate limit, buckets in memory.
async fn start_limited(per_second: f64, burst: u32) -> Platform {
    start_with(move |settings| {
        settings.rate_limit = gateway::RateLimitSettings { per_second, burst };
    })
    .await
}

/// Starts the platform with a rate limit whose buckets are in `redis_url`
/// under `prefix`.
async fn start_limited_in_redis(
    per_second: f64,
    burst: u32,
    redis_url: &str,
    prefix: &str,
) -> Platform {
    let redis_url = redis_url.to_owned();
    let prefix = prefix.to_owned();
    start_with(move |settings| {
        settings.rate_limit = gateway::RateLimitSettings { per_second, burst };
        settings.cache.redis_url = Some(redis_url);
        settings.cache.key_prefix = prefix;
        // Long enough that a loaded machine does not turn a slow Redis
        // response into a fallback to memory.
        settings.cache.redis_timeout = Duration::from_secs(2);
    })
    .await
}

fn unique_prefix() -> String {
    format!("lintas-test-{}", uuid::Uuid::new_v4())
}

/// One response: its status, `Retry-After` and JSON body.
struct Outcome {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

async fn send(request: reqwest::RequestBuilder) -> Outcome {
    let response = request.send().await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap_or(Value::Null);
    Outcome {
        status,
        retry_after,
        body,
    }
}

async fn list_users(platform: &Platform) -> Outcome {
    send(platform.client.get(platform.url(USERS))).await
}

/// Sends a request without a token, so that its address is its bucket.
async fn list_users_forwarded_for(platform: &Platform, forwarded_for: &str) -> Outcome {
    let request = common::client_with(None)
        .get(platform.url(USERS))
        .header("x-forwarded-for", forwarded_for);
    send(request).await
}

/// Builds a client whose connections come from `address`, a loopback
/// address, and that sends `subject`'s token, or none.
fn client_from(address: &str, subject: Option<&str>) -> Client {
    let address: IpAddr = address.parse().unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(subject) = subject {
        let token = common::token(subject, false);
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
    }
    Client::builder()
        .local_address(address)
        .default_headers(headers)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn assert_allowed(outcome: &Outcome, case: &str) {
    assert_eq!(outcome.status, StatusCode::OK, "{case}: {}", outcome.body);
}

/// A request without a token passes the rate limit and then gets 401.
fn assert_passed_limit(outcome: &Outcome, case: &str) {
    assert_eq!(
        outcome.status,
        StatusCode::UNAUTHORIZED,
        "{case}: {}",
        outcome.body
    );
}

fn assert_limited(outcome: &Outcome, retry_after: &str, case: &str) {
    assert_eq!(
        outcome.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{case}: {}",
        outcome.body
    );
    common::assert_problem(outcome.status, &outcome.body, 429, "RATE_LIMITED");
    assert_eq!(outcome.retry_after.as_deref(), Some(retry_after), "{case}");
}

#[tokio::test]
async fn burst_then_limited_with_retry_after() {
    // An empty bucket earns a token in 2 s.
    let platform = start_limited(0.5, 3).await;

    for request in 0..3 {
        assert_allowed(&list_users(&platform).await, &format!("request {request}"));
    }
    assert_limited(&list_users(&platform).await, "2", "request past the burst");
    assert_limited(&list_users(&platform).await, "2", "second request past it");

    let limited = platform.metric("gateway_requests_rate_limited_total").await;
    assert_eq!(limited, 2.0);
}

#[tokio::test]
async fn limited_response_is_a_problem_with_headers() {
    let platform = start_limited(0.5, 1).await;
    list_users(&platform).await;

    let response = platform
        .client
        .get(platform.url(USERS))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let headers = response.headers();
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn other_client_address_is_not_limited() {
    let platform = start_limited(0.5, 2).await;
    let first = client_from("127.0.0.1", None);
    for request in 0..2 {
        let outcome = send(first.get(platform.url(USERS))).await;
        assert_passed_limit(&outcome, &format!("first client, request {request}"));
    }
    assert_limited(
        &send(first.get(platform.url(USERS))).await,
        "2",
        "first client",
    );

    let other = client_from("127.0.0.2", None);
    for request in 0..2 {
        let outcome = send(other.get(platform.url(USERS))).await;
        assert_passed_limit(&outcome, &format!("other client, request {request}"));
    }
    let outcome = send(other.get(platform.url(USERS))).await;
    assert_limited(&outcome, "2", "other client past its burst");
}

#[tokio::test]
async fn a_token_subject_is_one_client_at_any_address() {
    let platform = start_limited(0.5, 1).await;
    let ayu_here = client_from("127.0.0.1", Some("ayu"));
    let ayu_there = client_from("127.0.0.3", Some("ayu"));
    let budi_here = client_from("127.0.0.1", Some("budi"));

    // Regular users may not list users: 403 is past the limit.
    let outcome = send(ayu_here.get(platform.url(USERS))).await;
    assert_eq!(outcome.status, StatusCode::FORBIDDEN, "{}", outcome.body);
    let outcome = send(ayu_there.get(platform.url(USERS))).await;
    assert_limited(&outcome, "2", "same subject from another address");
    let outcome = send(budi_here.get(platform.url(USERS))).await;
    assert_eq!(
        outcome.status,
        StatusCode::FORBIDDEN,
        "another subject at the same address: {}",
        outcome.body
    );
}

#[tokio::test]
async fn trusted_proxy_forwards_client_address() {
    let platform = start_with(|settings| {
        settings.rate_limit = gateway::RateLimitSettings {
            per_second: 0.5,
            burst: 1,
        };
        settings.trusted_proxy_hops = 1;
    })
    .await;

    let first = list_users_forwarded_for(&platform, "203.0.113.7").await;
    assert_passed_limit(&first, "first client");
    let again = list_users_forwarded_for(&platform, "203.0.113.7").await;
    assert_limited(&again, "2", "first client again");
    // The client may prepend entries, but the proxy appends the real one.
    let spoofed = list_users_forwarded_for(&platform, "198.51.100.1, 203.0.113.7").await;
    assert_limited(&spoofed, "2", "first client with a spoofed entry");

    let other = list_users_forwarded_for(&platform, "203.0.113.8").await;
    assert_passed_limit(&other, "second client");
}

#[tokio::test]
async fn forwarded_for_is_ignored_without_trusted_proxy() {
    let platform = start_limited(0.5, 1).await;

    let first = list_users_forwarded_for(&platform, "203.0.113.7").await;
    assert_passed_limit(&first, "first request");
    let spoofed = list_users_forwarded_for(&platform, "203.0.113.8").await;
    assert_limited(&spoofed, "2", "same peer with another forwarded address");
}

#[tokio::test]
async fn tokens_refill_at_rate() {
    // A token every 100 ms.
    let platform = start_limited(10.0, 1).await;

    assert_allowed(&list_users(&platform).await, "first request");
    assert_limited(
        &list_users(&platform).await,
        "1",
        "immediate second request",
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_allowed(&list_users(&platform).await, "request after the refill");
}

#[tokio::test]
async fn probes_and_metrics_are_not_limited() {
    let platform = start_limited(0.5, 1).await;
    list_users(&platform).await;
    assert_limited(&list_users(&platform).await, "2", "API request");

    for path in ["/healthz", "/readyz", "/metrics"] {
        for request in 0..3 {
            let response = platform
                .client
                .get(platform.url(path))
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "{path}, request {request}"
            );
        }
    }
}

#[tokio::test]
async fn gateways_share_buckets_through_redis() {
    let prefix = unique_prefix();
    let first = start_limited_in_redis(0.5, 3, SHARED_REDIS, &prefix).await;
    let second = start_limited_in_redis(0.5, 3, SHARED_REDIS, &prefix).await;

    assert_allowed(&list_users(&first).await, "first gateway, request 1");
    assert_allowed(&list_users(&first).await, "first gateway, request 2");
    assert_allowed(&list_users(&second).await, "second gateway, request 3");
    assert_limited(
        &list_users(&second).await,
        "2",
        "second gateway past the burst",
    );
    assert_limited(
        &list_users(&first).await,
        "2",
        "first gateway past the burst",
    );
    assert_eq!(
        first.metric("gateway_requests_rate_limited_total").await,
        1.0
    );
    assert_eq!(
        second.metric("gateway_requests_rate_limited_total").await,
        1.0
    );
}

#[tokio::test]
async fn redis_bucket_expires_once_full_again() {
    let prefix = unique_prefix();
    let platform = start_limited_in_redis(0.5, 3, SHARED_REDIS, &prefix).await;
    assert_allowed(&list_users(&platform).await, "request");

    let mut connection = redis::Client::open(SHARED_REDIS)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|error| {
            panic!("no Redis at {SHARED_REDIS} ({error}); scripts/test.sh installs and starts one")
        });
    // The admin client's bucket, keyed by its token's subject.
    let key = format!("{prefix}:ratelimit:v1:sub:test-admin");
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    // 3 tokens at 0.5 per second refill in 6 s, plus 1 s of margin.
    assert!(
        (6_000..=7_000).contains(&ttl_ms),
        "{key} expires in {ttl_ms} ms"
    );
}

#[tokio::test]
async fn unreachable_redis_falls_back_to_memory() {
    // A port that nothing listens on: bind it, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redis_url = format!("redis://127.0.0.1:{port}");
    let platform = start_limited_in_redis(0.5, 2, &redis_url, &unique_prefix()).await;

    assert_allowed(&list_users(&platform).await, "request 1");
    assert_allowed(&list_users(&platform).await, "request 2");
    assert_limited(&list_users(&platform).await, "2", "request past the burst");
}
