//! A failed field is null in the response, and a null in a non-null
//! position makes its nearest nullable ancestor null, as the GraphQL
//! specification asks; async-graphql alone leaves failed fields out.

mod common;

use serde_json::{Value, json};

use common::Platform;

/// Which backend the extra gateway cannot reach.
enum Broken {
    Users,
    Orders,
}

/// Starts a gateway in front of `platform` with one backend replaced by a
/// closed loopback port, and returns its GraphQL URL. Its readiness fails
/// by design, so it is not awaited: the first request connects.
async fn gateway_with(platform: &Platform, broken: Broken) -> String {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (user_url, order_url) = match broken {
        Broken::Users => (closed_url, platform.order_url.clone()),
        Broken::Orders => (platform.user_url.clone(), closed_url),
    };
    let mut settings = common::settings(&user_url, &order_url);
    settings.user_service.resilience.retry_max = 0;
    settings.order_service.resilience.retry_max = 0;
    settings.cache.enabled = false;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/graphql", listener.local_addr().unwrap());
    tokio::spawn(gateway::serve(listener, settings, std::future::pending()));
    url
}

/// Posts `query` and returns the raw response body, whose key order the
/// tests check.
async fn run_text(platform: &Platform, url: &str, query: &str, variables: Value) -> String {
    platform
        .client
        .post(url)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn run(platform: &Platform, url: &str, query: &str, variables: Value) -> Value {
    let body = run_text(platform, url, query, variables).await;
    serde_json::from_str(&body).unwrap_or_else(|error| panic!("{error}: {body}"))
}

fn error_paths(response: &Value) -> Vec<Value> {
    response["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors: {response}"))
        .iter()
        .map(|error| error["path"].clone())
        .collect()
}

#[tokio::test]
async fn a_failed_nullable_field_is_null() {
    let platform = common::start().await;
    let user = platform.create_user("Ayu", "ayu@example.com").await;
    let order = platform
        .create_order(user["id"].as_str().unwrap(), 1_000)
        .await;
    let url = gateway_with(&platform, Broken::Users).await;

    // `Order.user` may be null; the order itself is still served.
    let response = run(
        &platform,
        &url,
        "query ($id: ID!) { order(id: $id) { id buyer: user { name } } }",
        json!({ "id": order["id"] }),
    )
    .await;
    assert_eq!(response["data"]["order"]["id"], order["id"], "{response}");
    let buyer = response["data"]["order"].get("buyer");
    assert_eq!(buyer, Some(&Value::Null), "{response}");
    assert_eq!(error_paths(&response), [json!(["order", "buyer"])]);

    // The null stays where the query selected the field, through a fragment.
    let body = run_text(
        &platform,
        &url,
        "query ($id: ID!) { order(id: $id) { id ...Buyer status } } \
         fragment Buyer on Order { buyer: user { name } }",
        json!({ "id": order["id"] }),
    )
    .await;
    let position = |key: &str| {
        body.find(&format!("\"{key}\":"))
            .unwrap_or_else(|| panic!("no {key} in {body}"))
    };
    assert!(position("id") < position("buyer"), "{body}");
    assert!(position("buyer") < position("status"), "{body}");

    // A field selected twice is one field of the response, with one error.
    let response = run(
        &platform,
        &url,
        "query ($id: ID!) { order(id: $id) { buyer: user { name } ... on Order { buyer: user { name } } } }",
        json!({ "id": order["id"] }),
    )
    .await;
    assert_eq!(error_paths(&response), [json!(["order", "buyer"])]);
}

#[tokio::test]
async fn a_failed_non_null_field_nulls_its_nearest_nullable_ancestor() {
    let platform = common::start().await;
    let user = platform.create_user("Ayu", "ayu@example.com").await;
    let url = gateway_with(&platform, Broken::Orders).await;

    // `User.orders` and `Query.user` are both non-null: data becomes null.
    let response = run(
        &platform,
        &url,
        "query ($id: ID!) { user(id: $id) { id orders { id } } }",
        json!({ "id": user["id"] }),
    )
    .await;
    assert_eq!(response["data"], Value::Null, "{response}");
    assert_eq!(error_paths(&response), [json!(["user", "orders"])]);

    // Through a fragment and under an alias.
    let response = run(
        &platform,
        &url,
        "query ($id: ID!) { me: user(id: $id) { ...Mine } } fragment Mine on User { id recent: orders(first: 2) { id } }",
        json!({ "id": user["id"] }),
    )
    .await;
    assert_eq!(response["data"], Value::Null, "{response}");
}
