//! Authentication and authorization as a client sees them. A request
//! without a valid token gets 401 with a `WWW-Authenticate` challenge,
//! except on the public endpoints. A regular user gets 403 for another
//! user's data and for admin-only operations. The audit lines in Loki name
//! the token's subject as the actor, and no log line contains a token.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, WWW_AUTHENTICATE};
use serde_json::{Value, json};

use crate::client::{Gateway, Reply, poll};
use crate::platform::Platform;
use crate::report::Category;

/// Challenge of a request that carries no credentials (RFC 6750).
const BARE_CHALLENGE: &str = "Bearer realm=\"lintas\"";

/// How long an audit line may take to reach the Loki endpoint, because the
/// gateway pushes its log lines in batches.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(20);

/// Endpoints that must respond without a token: probes, Prometheus
/// metrics, the OpenAPI document and its page.
const PUBLIC_PATHS: [&str; 5] = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/openapi.json",
    "/api/docs",
];

/// `user_id` is a regular user that the checks act as.
pub async fn run(
    category: &mut Category,
    platform: &Platform,
    user_id: &str,
    tag: &str,
) -> anyhow::Result<()> {
    let admin = platform.admin();
    let anonymous = platform.anonymous();
    let user = platform.user(user_id)?;
    let user_path = format!("/api/v1/users/{user_id}");

    let other_id = category
        .step("create another user, whose record the first may not read", async {
            let reply = admin
                .post(
                    "/api/v1/users",
                    &json!({ "name": format!("Hana {tag}"), "email": format!("hana.{tag}@example.com") }),
                )
                .await?;
            let created = reply.expect(StatusCode::CREATED)?;
            created["id"]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("the created user has no id: {created}"))
        })
        .await?;
    let other_path = format!("/api/v1/users/{other_id}");

    let anonymous_request = category
        .step(
            &format!(
                "REST without a token: 401 UNAUTHENTICATED with WWW-Authenticate: {BARE_CHALLENGE}"
            ),
            async {
                let reply = anonymous.get(&user_path).await?;
                reply.expect_problem(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED")?;
                expect_challenge(&reply, BARE_CHALLENGE)?;
                request_id(&reply)
            },
        )
        .await;

    category
        .step(
            "GraphQL without a token: 401 with WWW-Authenticate and extensions.code UNAUTHENTICATED",
            async {
                let reply = anonymous
                    .post("/graphql", &json!({ "query": "{ __typename }" }))
                    .await?;
                reply.expect(StatusCode::UNAUTHORIZED)?;
                expect_challenge(&reply, BARE_CHALLENGE)?;
                let code = &reply.body["errors"][0]["extensions"]["code"];
                ensure!(code == "UNAUTHENTICATED", "extensions.code is {code}: {}", reply.body);
                ensure!(reply.body.get("data").is_none(), "a refused request returned data: {}", reply.body);
                Ok(())
            },
        )
        .await
        .ok();

    category
        .step(
            "a token signed with another key: 401 with error=\"invalid_token\" in WWW-Authenticate",
            async {
                let forged = platform.tokens.forged(user_id)?;
                let client =
                    Gateway::with_token(platform.gateway_url(), platform.http.clone(), &forged);
                let reply = client.get(&user_path).await?;
                reply.expect_problem(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED")?;
                let challenge = reply.header(WWW_AUTHENTICATE.as_str()).unwrap_or_default();
                ensure!(
                    challenge.starts_with(BARE_CHALLENGE)
                        && challenge.contains("error=\"invalid_token\""),
                    "WWW-Authenticate is {challenge:?}"
                );
                Ok(())
            },
        )
        .await
        .ok();

    category
        .step(
            &format!(
                "public without a token: {}, and the GraphiQL page",
                PUBLIC_PATHS.join(", ")
            ),
            async {
                for path in PUBLIC_PATHS {
                    let reply = anonymous.get(path).await?;
                    ensure!(
                        reply.status.is_success(),
                        "GET {path} without a token returned {}: {}",
                        reply.status,
                        reply.body
                    );
                }
                let page = platform
                    .http
                    .get(format!("{}/graphql", platform.gateway_url()))
                    .header(ACCEPT, "text/html")
                    .send()
                    .await?;
                ensure!(
                    page.status() == StatusCode::OK,
                    "GET /graphql from a browser without a token returned {}",
                    page.status()
                );
                Ok(())
            },
        )
        .await
        .ok();

    let forbidden_request = category
        .step(
            "REST: a regular user reads their own record, and gets 403 FORBIDDEN for another's",
            async {
                let own = user.get(&user_path).await?;
                let own = own.expect(StatusCode::OK)?;
                ensure!(own["id"] == user_id, "the own record is {own}");
                let reply = user.get(&other_path).await?;
                reply.expect_problem(StatusCode::FORBIDDEN, "FORBIDDEN")?;
                let text = reply.body.to_string();
                ensure!(
                    !text.contains(&format!("hana.{tag}")),
                    "the 403 reveals the other user's email: {text}"
                );
                request_id(&reply)
            },
        )
        .await;

    category
        .step(
            "GraphQL: another user's record is a FORBIDDEN field error, with no data",
            async {
                let body = user
                    .graphql_raw(
                        "query ($id: ID!) { user(id: $id) { id name email } }",
                        json!({ "id": other_id }),
                    )
                    .await?;
                let error = &body["errors"][0];
                ensure!(
                    error["extensions"]["code"] == "FORBIDDEN",
                    "errors: {}",
                    body["errors"]
                );
                ensure!(
                    error["path"] == json!(["user"]),
                    "the error's path is {}",
                    error["path"]
                );
                ensure!(
                    body["data"]["user"].is_null(),
                    "data.user is {}",
                    body["data"]["user"]
                );
                Ok(())
            },
        )
        .await
        .ok();

    category
        .step(
            "a regular user gets 403 FORBIDDEN for admin-only operations: list users, every user's orders, business metrics",
            async {
                for path in ["/api/v1/users", "/api/v1/orders", "/api/v1/metrics/orders"] {
                    user.get(path)
                        .await?
                        .expect_problem(StatusCode::FORBIDDEN, "FORBIDDEN")?;
                }
                let own_orders = format!("/api/v1/orders?user_id={user_id}");
                user.get(&own_orders).await?.expect(StatusCode::OK)?;
                Ok(())
            },
        )
        .await
        .ok();

    let user_write = category
        .step("a regular user places an order for themselves, 201", async {
            let body = json!({
                "user_id": user_id, "currency": "IDR",
                "items": [{ "sku": "KOPI-250G", "quantity": 1, "unit_price": 85000 }],
                "shipping_address": { "recipient": "Penerima", "line1": "Jl. Merdeka 17", "city": "Jakarta", "postal_code": "10110", "country": "ID" }
            });
            let reply = user.post("/api/v1/orders", &body).await?;
            let order = reply.expect(StatusCode::CREATED)?;
            let order_id = order["id"].as_str().context("the order has no id")?.to_owned();
            Ok((request_id(&reply)?, order_id))
        })
        .await;

    category
        .step(
            "Loki: audit lines name the token's subject as actor: the user's order, the 403, and anonymous for the 401",
            async {
                let (write_request, order_id) = user_write.map_err(|_| anyhow::anyhow!("the user's order was not placed"))?;
                let denied_request = forbidden_request.map_err(|_| anyhow::anyhow!("the 403 request did not run"))?;
                let anonymous_request = anonymous_request.map_err(|_| anyhow::anyhow!("the 401 request did not run"))?;
                let expected = [
                    (write_request, user_id, "POST /api/v1/orders", "ok", order_id.as_str()),
                    (denied_request, user_id, "GET /api/v1/users/{id}", "denied", other_id.as_str()),
                    (anonymous_request, "anonymous", "GET /api/v1/users/{id}", "denied", user_id),
                ];
                for (request, actor, action, outcome, target) in expected {
                    let line = audit_line(platform, &request).await?;
                    let fields = [
                        ("actor", actor),
                        ("action", action),
                        ("outcome", outcome),
                        ("target_id", target),
                    ];
                    for (field, wanted) in fields {
                        ensure!(
                            line[field] == wanted,
                            "request {request}: audit field {field} is {}, expected {wanted:?}: {line}",
                            line[field]
                        );
                    }
                }
                Ok(())
            },
        )
        .await
        .ok();

    category
        .step(
            "Loki: no log line of any binary contains a bearer token",
            async {
                let tokens = [
                    platform.tokens.admin.clone(),
                    platform.tokens.user(user_id)?,
                ];
                let leaks: Vec<String> = platform
                    .loki
                    .lines()
                    .into_iter()
                    .filter(|line| {
                        tokens
                            .iter()
                            .any(|token| line.line.contains(token.as_str()))
                    })
                    .map(|line| line.line)
                    .collect();
                if let Some(first) = leaks.first() {
                    bail!(
                        "{} line(s) contain a token; the first: {first}",
                        leaks.len()
                    );
                }
                Ok(())
            },
        )
        .await
        .ok();

    Ok(())
}

/// Fails unless `WWW-Authenticate` is exactly `expected`.
fn expect_challenge(reply: &Reply, expected: &str) -> anyhow::Result<()> {
    let challenge = reply.header(WWW_AUTHENTICATE.as_str());
    ensure!(
        challenge.as_deref() == Some(expected),
        "{} returned WWW-Authenticate {challenge:?}, expected {expected:?}",
        reply.request
    );
    Ok(())
}

fn request_id(reply: &Reply) -> anyhow::Result<String> {
    reply
        .header("x-request-id")
        .with_context(|| format!("{} returned no x-request-id", reply.request))
}

/// Waits for the gateway's audit line of the request `request_id` in the
/// Loki endpoint and returns it as JSON.
async fn audit_line(platform: &Platform, request_id: &str) -> anyhow::Result<Value> {
    poll(
        ARRIVAL_TIMEOUT,
        Duration::from_millis(250),
        &format!("the audit line of request {request_id}"),
        || async {
            let found = platform
                .loki
                .lines()
                .into_iter()
                .filter(|line| {
                    line.labels
                        .get("service")
                        .is_some_and(|service| service == "gateway")
                })
                .filter_map(|line| serde_json::from_str::<Value>(&line.line).ok())
                .find(|line| line["target"] == "audit" && line["request_id"] == request_id);
            Ok(found)
        },
    )
    .await
}
