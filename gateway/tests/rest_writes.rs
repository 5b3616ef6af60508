//! Safe writes over REST and GraphQL: ETag and If-Match, Idempotency-Key,
//! and the rule that a user with open orders cannot be deleted.

mod common;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use common::{assert_problem, order_body, start};

#[tokio::test]
async fn if_match_guards_update_and_delete() {
    let platform = start().await;
    let user = platform.create_user("Siti", "siti@example.com").await;
    let path = format!("/api/v1/users/{}", user["id"].as_str().unwrap());

    let response = platform.send(Method::GET, &path, None).await;
    assert_eq!(response.headers()["etag"], "\"1\"");

    let response = platform
        .client
        .patch(platform.url(&path))
        .header("if-match", "\"1\"")
        .json(&json!({ "name": "Siti R." }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["etag"], "\"2\"");

    let stale = platform
        .client
        .patch(platform.url(&path))
        .header("if-match", "\"1\"")
        .json(&json!({ "name": "Lost update" }))
        .send()
        .await
        .unwrap();
    let status = stale.status();
    assert_problem(
        status,
        &stale.json().await.unwrap(),
        412,
        "PRECONDITION_FAILED",
    );

    let malformed = platform
        .client
        .patch(platform.url(&path))
        .header("if-match", "yesterday")
        .json(&json!({ "name": "X" }))
        .send()
        .await
        .unwrap();
    let status = malformed.status();
    assert_problem(
        status,
        &malformed.json().await.unwrap(),
        400,
        "INVALID_ARGUMENT",
    );

    let stale_delete = platform
        .client
        .delete(platform.url(&path))
        .header("if-match", "\"1\"")
        .send()
        .await
        .unwrap();
    let status = stale_delete.status();
    assert_problem(
        status,
        &stale_delete.json().await.unwrap(),
        412,
        "PRECONDITION_FAILED",
    );

    let (_, stored) = platform.get(&path).await;
    assert_eq!(stored["name"], "Siti R.");
    assert_eq!(stored["version"], "2");

    let delete = platform
        .client
        .delete(platform.url(&path))
        .header("if-match", "\"2\"")
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn idempotency_key_replays_creates_and_payments() {
    let platform = start().await;
    let create = |key: &'static str, email: &'static str| {
        platform
            .client
            .post(platform.url("/api/v1/users"))
            .header("idempotency-key", key)
            .json(&json!({ "name": "Ada", "email": email }))
            .send()
    };
    let first: Value = create("user-1", "ada@example.com")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let retry = create("user-1", "ada@example.com").await.unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry, first);
    let reused = create("user-1", "other@example.com").await.unwrap();
    let status = reused.status();
    assert_problem(
        status,
        &reused.json().await.unwrap(),
        409,
        "FAILED_PRECONDITION",
    );

    let user_id = first["id"].as_str().unwrap();
    let place = || {
        platform
            .client
            .post(platform.url("/api/v1/orders"))
            .header("idempotency-key", "order-1")
            .json(&order_body(user_id, 1_000))
            .send()
    };
    let order: Value = place().await.unwrap().json().await.unwrap();
    let again: Value = place().await.unwrap().json().await.unwrap();
    assert_eq!(again["id"], order["id"]);

    let pay_path = format!("/api/v1/orders/{}/payments", order["id"].as_str().unwrap());
    let body =
        json!({ "amount": "2000", "currency": "IDR", "method": "CARD", "payment_token": "tok_ok" });
    let pay = || {
        platform
            .client
            .post(platform.url(&pay_path))
            .header("idempotency-key", "pay-1")
            .json(&body)
            .send()
    };
    let paid: Value = pay().await.unwrap().json().await.unwrap();
    let repaid = pay().await.unwrap();
    assert_eq!(repaid.status(), StatusCode::OK);
    let repaid: Value = repaid.json().await.unwrap();
    assert_eq!(repaid["payment"]["id"], paid["payment"]["id"]);

    let (_, users) = platform.get("/api/v1/metrics/users").await;
    assert_eq!(users["total_users"], "1");
    let (_, orders) = platform.get("/api/v1/metrics/orders").await;
    assert_eq!(orders["total_orders"], "1");
    assert_eq!(orders["payments_succeeded"], "1");
}

#[tokio::test]
async fn user_with_open_orders_cannot_be_deleted() {
    let platform = start().await;
    let user = platform.create_user("Budi", "budi@example.com").await;
    let user_id = user["id"].as_str().unwrap();
    let order = platform.create_order(user_id, 500).await;
    let path = format!("/api/v1/users/{user_id}");

    let (status, body) = platform.call(Method::DELETE, &path, None).await;
    assert_problem(status, &body, 409, "FAILED_PRECONDITION");
    let (status, _) = platform.get(&path).await;
    assert_eq!(status, StatusCode::OK);

    let cancel = format!("/api/v1/orders/{}/cancel", order["id"].as_str().unwrap());
    platform.post(&cancel, json!({})).await;
    let (status, _) = platform.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn graphql_expected_version_and_idempotency_key() {
    let platform = start().await;
    let create = "mutation($key: String) { createUser(input: { name: \"Grace\", email: \"grace@example.com\" }, idempotencyKey: $key) { id version } }";
    let first = platform.graphql(create, json!({ "key": "g-1" })).await;
    let retry = platform.graphql(create, json!({ "key": "g-1" })).await;
    assert_eq!(first["data"], retry["data"], "{retry}");
    let id = first["data"]["createUser"]["id"].clone();

    let update = "mutation($id: ID!, $version: Int64) { updateUser(id: $id, input: { name: \"G\" }, expectedVersion: $version) { version } }";
    let response = platform
        .graphql(update, json!({ "id": id, "version": "1" }))
        .await;
    assert_eq!(response["data"]["updateUser"]["version"], "2", "{response}");
    let response = platform
        .graphql(update, json!({ "id": id, "version": "1" }))
        .await;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "ABORTED",
        "{response}"
    );
}

#[tokio::test]
async fn stale_if_match_refreshes_cached_etag() {
    use lintas_proto::user::v1::UpdateUserRequest;
    use lintas_proto::user::v1::user_service_client::UserServiceClient;

    let platform = start().await;
    let user = platform.create_user("Ada", "ada@example.com").await;
    let id = user["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/users/{id}");
    let response = platform.send(Method::GET, &path, None).await;
    assert_eq!(response.headers()["etag"], "\"1\"");

    // A write that bypasses the gateway leaves the cached copy at version 1.
    let mut users = UserServiceClient::connect(platform.user_url.clone())
        .await
        .unwrap();
    users
        .update_user(UpdateUserRequest {
            id: id.clone(),
            name: Some("Ada L.".into()),
            email: None,
            status: None,
            expected_version: None,
        })
        .await
        .unwrap();
    let response = platform.send(Method::GET, &path, None).await;
    assert_eq!(
        response.headers()["etag"],
        "\"1\"",
        "the cached copy is expected to be stale here"
    );

    let stale = platform
        .client
        .patch(platform.url(&path))
        .header("if-match", "\"1\"")
        .json(&json!({ "name": "Lost" }))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);

    // The conflict dropped the stale copy, so a retry can read the real version.
    let response = platform.send(Method::GET, &path, None).await;
    assert_eq!(response.headers()["etag"], "\"2\"");
}

#[tokio::test]
async fn empty_idempotency_key_is_rejected() {
    let platform = common::start().await;
    for key in ["", "   "] {
        let response = platform
            .client
            .post(platform.url("/api/v1/users"))
            .header("Idempotency-Key", key)
            .json(&serde_json::json!({ "name": "Eka", "email": "eka@example.com" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "INVALID_ARGUMENT", "{body}");
    }
    let (status, users) = platform.get("/api/v1/users").await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(users["users"].as_array().unwrap().len(), 0, "{users}");
}
