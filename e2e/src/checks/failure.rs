//! Dependencies that fail. Without Redis every request still succeeds, and
//! the cache recovers when Redis returns. Without the user service the
//! gateway returns 503 at once, and recovers when the service returns.

use std::time::Duration;

use anyhow::{Context, ensure};
use reqwest::StatusCode;
use serde_json::json;

use crate::client::{metric_value, poll};
use crate::platform::{Platform, Service};
use crate::report::Category;

/// Upper bound on a response while a dependency is down. The gateway's
/// Redis timeout is 50 ms and a refused gRPC connection fails at once, so
/// anything near the 5 s backend deadline means the gateway waited.
const FAST: Duration = Duration::from_millis(1000);

/// Upper bound on recovery after a dependency returns. The cache's circuit
/// breaker waits 5 s before it tries Redis again.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(
    category: &mut Category,
    platform: &mut Platform,
    user_id: &str,
    tag: &str,
) -> anyhow::Result<()> {
    let redis = redis_down(category, platform, user_id, tag).await;
    let user_service = user_service_down(category, platform).await;
    redis.and(user_service)
}

async fn redis_down(
    category: &mut Category,
    platform: &mut Platform,
    user_id: &str,
    tag: &str,
) -> anyhow::Result<()> {
    let gateway = platform.admin();

    category
        .step(
            "Redis stopped with SIGKILL",
            platform
                .redis
                .process
                .stop_with(nix::sys::signal::Signal::SIGKILL),
        )
        .await?;

    category
        .step(
            &format!("without Redis every request succeeds within {} ms, and /readyz stays 200", FAST.as_millis()),
            async {
                let before = gateway.metrics().await?;
                let mut slowest = Duration::ZERO;
                for round in 0..5 {
                    let mut replies = vec![
                        gateway.get(&format!("/api/v1/users/{user_id}")).await?,
                        gateway.get("/api/v1/users?page_size=5").await?,
                        gateway.get("/readyz").await?,
                    ];
                    let created = gateway
                        .post(
                            "/api/v1/users",
                            &json!({ "name": format!("Eka {round} {tag}"), "email": format!("eka.{round}.{tag}@example.com") }),
                        )
                        .await?;
                    created.expect(StatusCode::CREATED)?;
                    replies.push(created);
                    let graphql = gateway
                        .graphql("query ($id: ID!) { user(id: $id) { id } }", json!({ "id": user_id }))
                        .await?;
                    ensure!(graphql["user"]["id"] == user_id, "GraphQL user: {graphql}");
                    for reply in &replies {
                        ensure!(reply.status.is_success(), "{} returned {}: {}", reply.request, reply.status, reply.body);
                        slowest = slowest.max(reply.elapsed);
                    }
                }
                ensure!(slowest < FAST, "the slowest response took {} ms", slowest.as_millis());
                let after = gateway.metrics().await?;
                let failed = |text: &str| {
                    metric_value(text, "cache_requests_total", &[("result", "error")]).unwrap_or(0.0)
                        + metric_value(text, "cache_requests_total", &[("result", "bypass")]).unwrap_or(0.0)
                };
                ensure!(
                    failed(&after) > failed(&before),
                    "cache_requests_total{{result=\"error\"|\"bypass\"}} did not grow while Redis was down"
                );
                let readiness = gateway.get("/readyz").await?;
                let cache = readiness.body["checks"]["cache"].as_str().unwrap_or_default().to_owned();
                ensure!(cache.starts_with("degraded"), "/readyz reports the cache as {cache:?}");
                println!("        slowest response {} ms; /readyz cache: {cache}", slowest.as_millis());
                Ok(())
            },
        )
        .await
        .ok();

    category
        .step(
            "Redis started again on the same port",
            platform.redis.start_again(),
        )
        .await?;
    let platform = &*platform;

    category
        .step(
            "with Redis back, a repeated lookup is a cache hit again",
            async {
                let path = format!("/api/v1/users/{user_id}");
                poll(
                    RECOVERY_TIMEOUT,
                    Duration::from_millis(500),
                    "a cache hit",
                    || async {
                        gateway.get(&path).await?.expect(StatusCode::OK)?;
                        let before = gateway.metrics().await?;
                        gateway.get(&path).await?.expect(StatusCode::OK)?;
                        let after = gateway.metrics().await?;
                        let hits = |text: &str| {
                            metric_value(text, "cache_requests_total", &[("result", "hit")])
                                .unwrap_or(0.0)
                        };
                        Ok((hits(&after) > hits(&before)).then_some(()))
                    },
                )
                .await?;
                let keys = platform.redis.command(&["DBSIZE"]).await?;
                ensure!(keys != ":0", "Redis holds no key after the hit");
                Ok(())
            },
        )
        .await
        .ok();

    Ok(())
}

async fn user_service_down(category: &mut Category, platform: &mut Platform) -> anyhow::Result<()> {
    let gateway = platform.admin();

    category
        .step(
            "user-svc stopped with SIGTERM",
            platform.service_mut(Service::UserSvc).stop(),
        )
        .await?;

    category
        .step(
            &format!(
                "without user-svc the gateway answers 503 UNAVAILABLE within {} ms",
                FAST.as_millis()
            ),
            async {
                let mut slowest = Duration::ZERO;
                for _ in 0..5 {
                    let reply = gateway.get("/api/v1/users?page_size=5").await?;
                    reply.expect_problem(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE")?;
                    slowest = slowest.max(reply.elapsed);
                }
                let code = gateway
                    .graphql_error_code("{ users(first: 5) { nodes { id } } }", json!({}))
                    .await?;
                ensure!(code == "UNAVAILABLE", "GraphQL extensions.code is {code}");
                let readiness = gateway.get("/readyz").await?;
                let body = readiness.expect(StatusCode::SERVICE_UNAVAILABLE)?;
                ensure!(
                    body["checks"]["user_service"] != "serving",
                    "/readyz: {body}"
                );
                ensure!(
                    slowest < FAST,
                    "the slowest 503 took {} ms",
                    slowest.as_millis()
                );
                println!("        slowest 503 {} ms", slowest.as_millis());
                Ok(())
            },
        )
        .await
        .ok();

    category
        .step(
            "user-svc started again on the same port",
            platform.start_service_again(Service::UserSvc),
        )
        .await?;

    category
        .step(
            "with user-svc back, /readyz and the user list answer 200 again",
            async {
                poll(
                    RECOVERY_TIMEOUT,
                    Duration::from_millis(250),
                    "recovery",
                    || async {
                        let ready = gateway.get("/readyz").await?.status == StatusCode::OK;
                        let listed = gateway.get("/api/v1/users?page_size=5").await?.status
                            == StatusCode::OK;
                        Ok((ready && listed).then_some(()))
                    },
                )
                .await
                .context("the gateway did not recover")
            },
        )
        .await
        .ok();

    Ok(())
}
