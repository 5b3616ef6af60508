//! The GraphQL facade: queries, mutations, error codes, limits and the
//! DataLoader bound on backend calls.

mod common;

use reqwest::StatusCode;
use serde_json::{Value, json};

use common::start;

const CREATE_USER: &str = "mutation($input: CreateUserInput!) { createUser(input: $input) { id name email status version } }";

async fn create_user(platform: &common::Platform, name: &str, email: &str) -> Value {
    let response = platform
        .graphql(
            CREATE_USER,
            json!({ "input": { "name": name, "email": email } }),
        )
        .await;
    assert!(response["errors"].is_null(), "{response}");
    response["data"]["createUser"].clone()
}

fn error_code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
}

/// Asserts that the request was rejected before execution with `code`.
fn assert_rejected(response: &Value, code: &str) {
    assert_eq!(error_code(response), code, "{response}");
    assert!(response["data"].is_null(), "{response}");
}

/// Posts `body`, JSON text that may be malformed, to /graphql.
async fn post_text(platform: &common::Platform, body: &str) -> reqwest::Response {
    platform
        .client
        .post(platform.url("/graphql"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

/// Checks that `response` is a problem with `status` and `code`, and
/// returns its detail.
async fn problem_detail(response: reqwest::Response, status: StatusCode, code: &str) -> String {
    assert_eq!(response.status(), status);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], code, "{problem}");
    problem["detail"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn mutations_cover_the_order_flow() {
    let platform = start().await;
    let user = create_user(&platform, "Siti", "siti@example.com").await;
    assert_eq!(user["status"], "ACTIVE");
    assert_eq!(user["version"], "1");

    let create_order = r#"mutation($input: CreateOrderInput!) {
        createOrder(input: $input) { id status total currency items { sku quantity unitPrice } user { name } } }"#;
    let input = json!({ "input": {
        "userId": user["id"], "currency": "IDR",
        "items": [{ "sku": "KOPI-1", "quantity": 3, "unitPrice": "2500" }],
        "shippingAddress": { "recipient": "Siti", "line1": "Jl. Merdeka 1", "city": "Jakarta", "postalCode": "10110", "country": "ID" }
    }});
    let response = platform.graphql(create_order, input).await;
    assert!(response["errors"].is_null(), "{response}");
    let order = &response["data"]["createOrder"];
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["total"], "7500");
    assert_eq!(order["user"]["name"], "Siti");
    let order_id = order["id"].clone();

    let pay = r#"mutation($id: ID!, $input: PaymentInput!) { processPayment(orderId: $id, input: $input) { order { status } payment { status amount } } }"#;
    let response = platform
        .graphql(pay, json!({ "id": order_id, "input": { "amount": 7500, "currency": "IDR", "method": "CARD", "paymentToken": "tok_ok" } }))
        .await;
    assert!(response["errors"].is_null(), "{response}");
    assert_eq!(
        response["data"]["processPayment"]["order"]["status"],
        "PAID"
    );
    assert_eq!(
        response["data"]["processPayment"]["payment"]["amount"],
        "7500"
    );

    let status = "mutation($id: ID!, $status: OrderStatus!) { updateOrderStatus(id: $id, status: $status) { status } }";
    let response = platform
        .graphql(status, json!({ "id": order_id, "status": "SHIPPED" }))
        .await;
    assert_eq!(response["data"]["updateOrderStatus"]["status"], "SHIPPED");
    let response = platform
        .graphql(status, json!({ "id": order_id, "status": "PAID" }))
        .await;
    assert_eq!(error_code(&response), "FAILED_PRECONDITION", "{response}");

    let cancel = "mutation($id: ID!) { cancelOrder(id: $id, reason: \"late\") { status } }";
    let response = platform.graphql(cancel, json!({ "id": order_id })).await;
    assert_eq!(error_code(&response), "FAILED_PRECONDITION", "{response}");

    let response = platform
        .graphql(
            "query($id: ID!) { order(id: $id) { status payments { status } } }",
            json!({ "id": order_id }),
        )
        .await;
    assert_eq!(response["data"]["order"]["status"], "SHIPPED");
    assert_eq!(
        response["data"]["order"]["payments"][0]["status"],
        "SUCCEEDED"
    );
}

#[tokio::test]
async fn user_queries_update_and_delete() {
    let platform = start().await;
    let user = create_user(&platform, "Ada", "ada@example.com").await;
    create_user(&platform, "Grace", "grace@example.com").await;

    let update = "mutation($id: ID!) { updateUser(id: $id, input: { status: SUSPENDED }) { status version } }";
    let response = platform.graphql(update, json!({ "id": user["id"] })).await;
    assert_eq!(response["data"]["updateUser"]["status"], "SUSPENDED");
    assert_eq!(response["data"]["updateUser"]["version"], "2");

    let list = r#"query { users(first: 1, filter: { status: ACTIVE }, orderBy: { field: NAME, direction: ASC }) {
        nodes { name } pageInfo { hasNextPage endCursor } } }"#;
    let response = platform.graphql(list, json!({})).await;
    assert_eq!(
        response["data"]["users"]["nodes"],
        json!([{ "name": "Grace" }])
    );
    assert_eq!(response["data"]["users"]["pageInfo"]["hasNextPage"], false);

    let pages = "query($after: String) { users(first: 1, after: $after) { nodes { name } pageInfo { hasNextPage endCursor } } }";
    let first = platform.graphql(pages, json!({})).await;
    assert_eq!(first["data"]["users"]["pageInfo"]["hasNextPage"], true);
    let cursor = first["data"]["users"]["pageInfo"]["endCursor"].clone();
    let second = platform.graphql(pages, json!({ "after": cursor })).await;
    assert_eq!(second["data"]["users"]["pageInfo"]["hasNextPage"], false);
    assert_ne!(
        first["data"]["users"]["nodes"],
        second["data"]["users"]["nodes"]
    );

    let delete = "mutation($id: ID!) { deleteUser(id: $id) }";
    let response = platform.graphql(delete, json!({ "id": user["id"] })).await;
    assert_eq!(response["data"]["deleteUser"], user["id"]);
    let response = platform
        .graphql(
            "query($id: ID!) { user(id: $id) { id } }",
            json!({ "id": user["id"] }),
        )
        .await;
    assert_eq!(error_code(&response), "NOT_FOUND", "{response}");

    let metrics = platform
        .graphql(
            "{ userMetrics { totalUsers usersByStatus { status count } } }",
            json!({}),
        )
        .await;
    assert_eq!(metrics["data"]["userMetrics"]["totalUsers"], "1");
}

#[tokio::test]
async fn errors_carry_rest_codes() {
    let platform = start().await;
    create_user(&platform, "Ada", "ada@example.com").await;

    let response = platform
        .graphql(
            CREATE_USER,
            json!({ "input": { "name": "Ada", "email": "ADA@example.com" } }),
        )
        .await;
    assert_eq!(error_code(&response), "ALREADY_EXISTS", "{response}");
    let response = platform
        .graphql(
            CREATE_USER,
            json!({ "input": { "name": "Ada", "email": "bad" } }),
        )
        .await;
    assert_eq!(error_code(&response), "INVALID_ARGUMENT", "{response}");
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("email:"),
        "{response}"
    );
    let response = platform
        .graphql("{ user(id: \"nope\") { id } }", json!({}))
        .await;
    assert_eq!(error_code(&response), "INVALID_ARGUMENT", "{response}");
    let response = platform
        .graphql("{ users(first: 500) { nodes { id } } }", json!({}))
        .await;
    assert_eq!(error_code(&response), "INVALID_ARGUMENT", "{response}");
    let response = platform.graphql("{ nosuchfield }", json!({})).await;
    assert_eq!(
        error_code(&response),
        "GRAPHQL_VALIDATION_FAILED",
        "{response}"
    );

    let (_, metrics) = platform.get("/api/v1/metrics/users").await;
    assert_eq!(metrics["total_users"], "1");
}

#[tokio::test]
async fn query_limits_reject_abuse() {
    let platform = start().await;

    let aliases: String = (0..31)
        .map(|index| format!("a{index}: userMetrics {{ totalUsers }} "))
        .collect();
    let response = platform
        .graphql(&format!("{{ {aliases} }}"), json!({}))
        .await;
    assert_rejected(&response, "QUERY_TOO_COMPLEX");

    let levels = 9;
    let deep = format!(
        "{{ {} id {} }}",
        "orders(first: 1) { nodes { user { ".repeat(levels),
        "} } }".repeat(levels)
    );
    let deep = deep.as_str();
    let response = platform.graphql(deep, json!({})).await;
    assert_eq!(
        error_code(&response),
        "GRAPHQL_VALIDATION_FAILED",
        "{response}"
    );
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("nested"),
        "{response}"
    );

    let costly = "{ users(first: 100) { nodes { orders(first: 100) { items { sku } payments { id } user { orders(first: 100) { id } } } } } }";
    let response = platform.graphql(costly, json!({})).await;
    assert_eq!(
        error_code(&response),
        "GRAPHQL_VALIDATION_FAILED",
        "{response}"
    );
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("complex"),
        "{response}"
    );

    // `first: 0` returns the default page size, so it costs as much.
    let zero_first = "{ users(first: 0) { nodes { orders(first: 0) { user { orders(first: 0) \
                      { user { orders(first: 0) { user { orders(first: 0) { id } } } } } } } } } }";
    let response = platform.graphql(zero_first, json!({})).await;
    assert_rejected(&response, "GRAPHQL_VALIDATION_FAILED");

    // The product of three maximal `first` arguments overflows 64 bits.
    let huge = "{ users(first: 2147483647) { nodes { orders(first: 2147483647) \
                { user { orders(first: 2147483647) { id } } } } } }";
    let response = platform.graphql(huge, json!({})).await;
    assert_eq!(
        error_code(&response),
        "GRAPHQL_VALIDATION_FAILED",
        "{response}"
    );

    seed_users_with_one_order(&platform, 1, "z").await;
    let response = platform
        .graphql(
            "{ users(first: 1) { nodes { orders(first: 0) { id } } } }",
            json!({}),
        )
        .await;
    assert!(response["errors"].is_null(), "{response}");
    let orders = &response["data"]["users"]["nodes"][0]["orders"];
    assert_eq!(orders.as_array().map(Vec::len), Some(1), "{response}");

    let directives: String = (0..31).map(|_| "@include(if: true) ").collect();
    let response = platform
        .graphql(
            &format!("{{ userMetrics {directives} {{ totalUsers }} }}"),
            json!({}),
        )
        .await;
    assert!(!response["errors"].is_null(), "{response}");
}

#[tokio::test]
async fn page_of_users_with_orders_is_batched() {
    let platform = start().await;
    for index in 0..50 {
        let user = platform
            .create_user(&format!("User {index}"), &format!("u{index}@example.com"))
            .await;
        let user_id = user["id"].as_str().unwrap();
        platform.create_order(user_id, 100 + index).await;
        platform.create_order(user_id, 200 + index).await;
    }

    let methods = [
        "user.v1.UserService/ListUsers",
        "order.v1.OrderService/ListOrdersByUsers",
        "user.v1.UserService/BatchGetUsers",
        "user.v1.UserService/GetUser",
    ];
    let mut before = Vec::new();
    for method in methods {
        before.push(
            platform
                .metric(&format!(
                    "gateway_backend_calls_total{{method=\"{method}\"}}"
                ))
                .await,
        );
    }

    let query = "{ users(first: 50) { nodes { id name orders(first: 5) { id total user { id email } } } } }";
    let response = platform.graphql(query, json!({})).await;
    assert!(response["errors"].is_null(), "{response}");
    let nodes = response["data"]["users"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 50);
    for node in nodes {
        let orders = node["orders"].as_array().unwrap();
        assert_eq!(orders.len(), 2, "{node}");
        assert_eq!(orders[0]["user"]["id"], node["id"]);
    }

    let mut deltas = Vec::new();
    for (method, previous) in methods.iter().zip(before) {
        let now = platform
            .metric(&format!(
                "gateway_backend_calls_total{{method=\"{method}\"}}"
            ))
            .await;
        deltas.push(now - previous);
    }
    // One call per level of nesting. The page's orders are loaded before its
    // items resolve, so that batch never splits. The users of the orders
    // may take two calls when their keys arrive more than the batch window
    // apart on a loaded machine.
    assert_eq!(deltas[0], 1.0, "ListUsers calls");
    assert_eq!(deltas[1], 1.0, "ListOrdersByUsers calls");
    assert!(
        (1.0..=2.0).contains(&deltas[2]),
        "BatchGetUsers calls: {}",
        deltas[2]
    );
    assert_eq!(deltas[3], 0.0, "GetUser calls");
}

/// The gateway's counter of `ListOrdersByUsers` calls.
const LIST_ORDERS_BY_USERS_CALLS: &str =
    "gateway_backend_calls_total{method=\"order.v1.OrderService/ListOrdersByUsers\"}";

/// Creates `count` users, each with one order whose unit price is 100 plus
/// the user's index, and emails that start with `prefix`.
async fn seed_users_with_one_order(platform: &common::Platform, count: i64, prefix: &str) {
    for index in 0..count {
        let user = platform
            .create_user(
                &format!("User {prefix}{index}"),
                &format!("{prefix}{index}@example.com"),
            )
            .await;
        platform
            .create_order(user["id"].as_str().unwrap(), 100 + index)
            .await;
    }
}

#[tokio::test]
async fn merged_orders_fields_come_from_one_call() {
    let platform = start().await;
    seed_users_with_one_order(&platform, 3, "d").await;
    let before = platform.metric(LIST_ORDERS_BY_USERS_CALLS).await;

    // Both `orders` fields land under one response key, where async-graphql
    // merges their lists item by item, so they must come from one call.
    let query = "{ users(first: 3) { nodes { orders(first: 5) { id } \
                 ... on User { orders(first: 5) { items { sku unitPrice } } } } } }";
    let response = platform.graphql(query, json!({})).await;
    assert!(response["errors"].is_null(), "{response}");

    let nodes = response["data"]["users"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for node in nodes {
        let order = &node["orders"][0];
        let id = order["id"].as_str().unwrap();
        let (status, stored) = platform.get(&format!("/api/v1/orders/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{stored}");
        assert_eq!(order["items"][0]["sku"], stored["items"][0]["sku"]);
        assert_eq!(
            order["items"][0]["unitPrice"].to_string().trim_matches('"'),
            stored["items"][0]["unit_price"]
                .to_string()
                .trim_matches('"')
        );
    }
    assert_eq!(
        platform.metric(LIST_ORDERS_BY_USERS_CALLS).await - before,
        1.0
    );
}

#[tokio::test]
async fn conflicting_orders_fields_are_rejected() {
    let platform = start().await;
    seed_users_with_one_order(&platform, 2, "m").await;
    let before = platform.metric(LIST_ORDERS_BY_USERS_CALLS).await;

    let query = "{ users(first: 2) { nodes { orders(first: 1) { id } \
                 ... on User { orders(first: 2) { items { sku } } } } } }";
    let response = platform.graphql(query, json!({})).await;
    assert_rejected(&response, "GRAPHQL_VALIDATION_FAILED");
    let message = response["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("\"orders\""), "{message}");
    assert_eq!(
        response["errors"][0]["locations"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        platform.metric(LIST_ORDERS_BY_USERS_CALLS).await - before,
        0.0
    );
}

#[tokio::test]
async fn concurrent_pages_load_orders_once_each() {
    let platform = start().await;
    seed_users_with_one_order(&platform, 80, "p").await;
    let before = platform.metric(LIST_ORDERS_BY_USERS_CALLS).await;

    let query = "{ users(first: 80) { nodes { id orders(first: 3) { id } } } }";
    let requests = (0..64).map(|_| platform.graphql(query, json!({})));
    for response in futures::future::join_all(requests).await {
        assert!(response["errors"].is_null(), "{response}");
        assert_eq!(
            response["data"]["users"]["nodes"].as_array().unwrap().len(),
            80
        );
    }

    assert_eq!(
        platform.metric(LIST_ORDERS_BY_USERS_CALLS).await - before,
        64.0
    );
}

#[tokio::test]
async fn graphiql_for_browsers_and_get_queries() {
    let platform = start().await;
    let response = platform
        .client
        .get(platform.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    assert!(page.contains("graphiql"), "{page}");

    let response = platform
        .client
        .get(platform.url("/graphql?query=%7BuserMetrics%7BtotalUsers%7D%7D"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["userMetrics"]["totalUsers"], "0");

    // GET names the operation with `operationName`, as GraphQL over HTTP does.
    let two_operations = "query A { __typename } query B { userMetrics { totalUsers } }";
    let response = platform
        .client
        .get(platform.url("/graphql"))
        .query(&[("query", two_operations), ("operationName", "B")])
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["userMetrics"]["totalUsers"], "0", "{body}");

    let response = post_text(&platform, "{not json").await;
    let detail = problem_detail(response, StatusCode::BAD_REQUEST, "MALFORMED_JSON").await;
    assert!(detail.contains("line 1 column 2"), "{detail}");

    // JSON of the wrong shape gets a message in the API's terms.
    let response = platform
        .client
        .post(platform.url("/graphql"))
        .json(&json!({ "query": 7 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("\"query\" string"), "{detail}");
    assert!(!detail.contains("BatchRequest"), "{detail}");
}

#[tokio::test]
async fn head_is_handled_like_get() {
    let platform = start().await;
    let mutation =
        "mutation { createUser(input: { name: \"Head\", email: \"head@example.com\" }) { id } }";

    let response = platform
        .client
        .head(platform.url("/graphql"))
        .query(&[("query", "{ __typename }")])
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let get = platform
        .client
        .get(platform.url("/graphql"))
        .query(&[("query", "{ __typename }")])
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers().get("content-type"),
        get.headers().get("content-type")
    );
    assert!(response.bytes().await.unwrap().is_empty());

    let response = platform
        .client
        .head(platform.url("/graphql"))
        .query(&[("query", mutation)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

    // A body on HEAD is not read, as on GET, so a mutation in it does not
    // run and the request lacks its query parameter.
    let response = platform
        .client
        .head(platform.url("/graphql"))
        .json(&json!({ "query": mutation }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (_, metrics) = platform.get("/api/v1/metrics/users").await;
    assert_eq!(metrics["total_users"], "0", "a HEAD request created a user");
}

#[tokio::test]
async fn abusive_requests_are_rejected_cleanly() {
    let platform = start().await;

    // Nesting that would overflow the parser's stack gets a 400, and the
    // gateway stays up.
    let nested = format!(
        "{{ users(first: {}1{}) {{ nodes {{ id }} }} }}",
        "[".repeat(3000),
        "]".repeat(3000)
    );
    let response = platform
        .client
        .post(platform.url("/graphql"))
        .json(&json!({ "query": nested }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "INVALID_ARGUMENT", "{body}");

    let mutation =
        "mutation { createUser(input: { name: \"Get\", email: \"get@example.com\" }) { id } }";
    let response = platform
        .client
        .get(platform.url("/graphql"))
        .query(&[("query", mutation)])
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

    // Also when `operationName` picks the mutation out of two operations.
    let two_operations = format!(
        "query Read {{ __typename }} {}",
        mutation.replacen("mutation", "mutation Write", 1)
    );
    let response = platform
        .client
        .get(platform.url("/graphql"))
        .query(&[
            ("query", two_operations.as_str()),
            ("operationName", "Write"),
        ])
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");

    let response = platform
        .client
        .post(platform.url("/graphql"))
        .header("content-type", "text/plain")
        .body(json!({ "query": mutation }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let huge = json!({ "query": "{ __typename }", "variables": { "x": "a".repeat(100_000) } });
    let response = platform
        .client
        .post(platform.url("/graphql"))
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "PAYLOAD_TOO_LARGE", "{body}");

    // Without Content-Length, the limit stops the body while it is read.
    let response = post_chunked(&platform.url("/graphql"), &huge.to_string()).await;
    assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
    assert!(
        response.contains("\"code\":\"PAYLOAD_TOO_LARGE\""),
        "{response}"
    );

    let (_, metrics) = platform.get("/api/v1/metrics/users").await;
    assert_eq!(metrics["total_users"], "0");
}

#[tokio::test]
async fn duplicate_keys_and_arrays_are_rejected() {
    let platform = start().await;
    let mutation = "mutation ($input: CreateUserInput!) { createUser(input: $input) { id } }";
    // serde would read a struct from an array's elements in order.
    let response = platform
        .client
        .post(platform.url("/graphql"))
        .json(&json!([mutation, null, { "input": { "name": "Arr", "email": "arr@example.com" } }]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "BAD_REQUEST", "{problem}");

    let bodies = [
        r#"{"query":"QUERY","variables":{"input":{"name":"Dup","email":"a@example.com","email":"b@example.com"}}}"#,
        r#"{"query":"QUERY","query":"{ __typename }","variables":{"input":{"name":"Dup","email":"a@example.com"}}}"#,
    ];
    for body in bodies {
        let response = post_text(&platform, &body.replace("QUERY", mutation)).await;
        let detail = problem_detail(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
        assert!(detail.contains("duplicate key"), "{body}: {detail}");
    }
    // The same rule for an input object literal in the query text, which
    // the GraphQL parser would collapse to its last field.
    let literal = r#"mutation { createUser(input: { name: "Dup", email: "a@example.com", email: "b@example.com" }) { id } }"#;
    let response = platform.graphql(literal, json!({})).await;
    assert_rejected(&response, "GRAPHQL_VALIDATION_FAILED");
    let message = response["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("\"email\" twice"), "{response}");
    assert_eq!(
        response["errors"][0]["locations"][0]["column"], 69,
        "{response}"
    );

    let (_, metrics) = platform.get("/api/v1/metrics/users").await;
    assert_eq!(
        metrics["total_users"], "0",
        "a rejected request created a user"
    );
}

#[tokio::test]
async fn graphql_rejects_missing_query() {
    let platform = start().await;
    for body in [
        r#"{}"#,
        r#"{"variables":{}}"#,
        r#"{"query":null}"#,
        r#"{"query":7}"#,
    ] {
        let response = post_text(&platform, body).await;
        let detail = problem_detail(response, StatusCode::BAD_REQUEST, "BAD_REQUEST").await;
        assert!(detail.contains("\"query\" string"), "{body}: {detail}");
    }
    for (body, expected) in [
        (
            r#"{"query":"{ __typename }","variables":[1]}"#,
            "invalid variables",
        ),
        (
            r#"{"query":"{ __typename }","operationName":5}"#,
            "invalid operationName",
        ),
    ] {
        let response = post_text(&platform, body).await;
        let detail = problem_detail(response, StatusCode::BAD_REQUEST, "BAD_REQUEST").await;
        assert!(detail.contains(expected), "{body}: {detail}");
    }
    let response = platform
        .client
        .get(platform.url("/graphql?operationName=A"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let detail = problem_detail(response, StatusCode::BAD_REQUEST, "BAD_REQUEST").await;
    assert!(
        detail.contains("\"query\" parameter is missing"),
        "{detail}"
    );
}

#[tokio::test]
async fn graphql_rejects_repeated_mutation_field() {
    let platform = start().await;
    let create = r#"createUser(input: { name: "Twice", email: "twice@example.com" }) { id }"#;
    for mutation in [
        format!("mutation {{ {create} ... on Mutation {{ {create} }} }}"),
        format!("mutation {{ a: {create} ...F }} fragment F on Mutation {{ a: {create} }}"),
    ] {
        let response = platform.graphql(&mutation, json!({})).await;
        assert_rejected(&response, "GRAPHQL_VALIDATION_FAILED");
        let message = response["errors"][0]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains("more than once"), "{response}");
    }
    let (_, metrics) = platform.get("/api/v1/metrics/users").await;
    assert_eq!(metrics["total_users"], "0", "a rejected mutation wrote");

    // Two aliases are two writes, which the client asked for.
    let second = create.replace("twice@", "twice2@");
    let response = platform
        .graphql(
            &format!("mutation {{ a: {create} b: {second} }}"),
            json!({}),
        )
        .await;
    assert!(response["errors"].is_null(), "{response}");
    let (_, metrics) = platform.get("/api/v1/metrics/users").await;
    assert_eq!(metrics["total_users"], "2");
}

#[tokio::test]
async fn response_keys_follow_selection_order() {
    let platform = start().await;
    let user = create_user(&platform, "Urut", "urut@example.com").await;
    // `userMetrics` and `orders` wait on a backend while `__typename` and
    // `id` do not, so in finishing order they would come last.
    let query = "query ($id: ID!) { metrics: userMetrics { totalUsers } kind: __typename \
                 user(id: $id) { orders(first: 1) { id } id } }";
    let request = json!({ "query": query, "variables": { "id": user["id"] } });
    let body = post_text(&platform, &request.to_string())
        .await
        .text()
        .await
        .unwrap();
    let position = |text: &str| {
        body.find(text)
            .unwrap_or_else(|| panic!("no {text} in {body}"))
    };
    assert!(position("\"metrics\":") < position("\"kind\":"), "{body}");
    assert!(position("\"kind\":") < position("\"user\":"), "{body}");
    let user_id = format!("\"id\":{}", user["id"]);
    assert!(position("\"orders\":") < position(&user_id), "{body}");
}

#[tokio::test]
async fn introspection_fits_the_depth_limit() {
    let platform = start().await;
    let type_ref = "kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }";
    let query = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {type_ref} }} args {{ type {{ {type_ref} }} }} }} }} }} }}"
    );
    let response = platform.graphql(&query, json!({})).await;
    assert!(response["errors"].is_null(), "{response}");
}

/// Sends `body` to `url` over HTTP/1.1 in chunks of 4 KiB, with an admin's
/// token, and returns the whole response as text.
async fn post_chunked(url: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let url: reqwest::Url = url.parse().unwrap();
    let authority = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nhost: {authority}\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\
         connection: close\r\n\r\n",
        url.path(),
        common::token("test-admin", true)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.as_bytes().chunks(4096) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        // The gateway may respond and close before it has read every chunk.
        if stream.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut response),
    );
    let _ = read.await.expect("the gateway responds within 10 s");
    String::from_utf8_lossy(&response).into_owned()
}
