//! The gateway's Redis cache of user lookups: a repeated lookup is a hit
//! that reaches neither the user service nor anything but Redis, and a
//! write through GraphQL is visible through REST at once.

use anyhow::{Context, ensure};
use reqwest::StatusCode;
use serde_json::json;

use crate::client::metric_value;
use crate::platform::Platform;
use crate::report::Category;

/// Backend call label of a single user lookup.
const GET_USER_METHOD: &str = "user.v1.UserService/GetUser";

pub async fn run(category: &mut Category, platform: &Platform, tag: &str) -> anyhow::Result<()> {
    let gateway = platform.admin();

    let metrics = gateway.metrics().await?;
    if metric_value(&metrics, "cache_requests_total", &[]).is_none() {
        // NOTE: kept for a gateway built without the cache; the hit check
        // below needs its cache_requests_total metric.
        category.gap(
            "cache: a second lookup is a hit",
            "the gateway exports no cache_requests_total: this build has no user cache",
        );
        return Ok(());
    }

    let user_id = category
        .step("cache: create a user for the cache checks", async {
            let reply = gateway
                .post(
                    "/api/v1/users",
                    &json!({ "name": format!("Dara {tag}"), "email": format!("dara.{tag}@example.com") }),
                )
                .await?;
            let user = reply.expect(StatusCode::CREATED)?;
            user["id"].as_str().map(str::to_owned).context("no id")
        })
        .await?;

    category
        .step(
            "cache: a second GET /api/v1/users/{id} is a hit: hit count +1, no GetUser call, key in Redis",
            async {
                let path = format!("/api/v1/users/{user_id}");
                gateway.get(&path).await?.expect(StatusCode::OK)?;
                let before = gateway.metrics().await?;
                let reply = gateway.get(&path).await?;
                let user = reply.expect(StatusCode::OK)?;
                ensure!(user["name"] == format!("Dara {tag}"), "{user}");
                let after = gateway.metrics().await?;

                let hits = |text: &str| metric_value(text, "cache_requests_total", &[("result", "hit")]).unwrap_or(0.0);
                let calls = |text: &str| {
                    metric_value(text, "gateway_backend_calls_total", &[("method", GET_USER_METHOD)]).unwrap_or(0.0)
                };
                ensure!(
                    hits(&after) == hits(&before) + 1.0,
                    "cache_requests_total{{result=\"hit\"}} went from {} to {}",
                    hits(&before),
                    hits(&after)
                );
                ensure!(
                    calls(&after) == calls(&before),
                    "the second lookup called {GET_USER_METHOD}: {} -> {}",
                    calls(&before),
                    calls(&after)
                );

                let keys = platform.redis.command(&["KEYS", &format!("*{user_id}*")]).await?;
                ensure!(keys == "*1", "expected one Redis key naming the user, KEYS replied {keys}");
                Ok(())
            },
        )
        .await
        .ok();

    category
        .step("cache: an update through GraphQL is seen at once through REST and GraphQL", async {
            let data = gateway
                .graphql(
                    "mutation ($id: ID!, $name: String!) { updateUser(id: $id, input: {name: $name}) { name version } }",
                    json!({ "id": user_id, "name": format!("Dara Renamed {tag}") }),
                )
                .await?;
            ensure!(data["updateUser"]["version"] == "2", "{data}");

            let user = gateway
                .get(&format!("/api/v1/users/{user_id}"))
                .await?
                .expect(StatusCode::OK)?
                .clone();
            ensure!(user["name"] == format!("Dara Renamed {tag}"), "REST returned the old user: {user}");
            ensure!(user["version"] == "2", "REST returned version {}", user["version"]);

            let data = gateway
                .graphql("query ($id: ID!) { user(id: $id) { name } }", json!({ "id": user_id }))
                .await?;
            ensure!(data["user"]["name"] == format!("Dara Renamed {tag}"), "GraphQL returned {data}");
            Ok(())
        })
        .await
        .ok();

    Ok(())
}
