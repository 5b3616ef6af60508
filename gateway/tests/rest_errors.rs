//! Bad input on every REST route: a problem+json response with the right
//! status and code, and nothing written.

mod common;

use reqwest::Method;
use serde_json::{Value, json};

use common::{Platform, assert_problem, order_body, start};

const MISSING_ID: &str = "0190f0f0-0000-7000-8000-000000000000";

async fn totals(platform: &Platform) -> (Value, Value) {
    let (_, users) = platform.get("/api/v1/metrics/users").await;
    let (_, orders) = platform.get("/api/v1/metrics/orders").await;
    (users, orders)
}

#[tokio::test]
async fn bad_inputs_are_rejected_and_write_nothing() {
    let platform = start().await;
    let user = platform.create_user("Siti", "siti@example.com").await;
    let user_id = user["id"].as_str().unwrap().to_owned();
    let order = platform.create_order(&user_id, 1_000).await;
    let order_id = order["id"].as_str().unwrap().to_owned();
    let before = totals(&platform).await;

    let mut huge_quantity = order_body(&user_id, 10);
    huge_quantity["items"][0]["quantity"] = json!(0);
    let mut lower_currency = order_body(&user_id, 10);
    lower_currency["currency"] = json!("XXZ");
    let mut no_items = order_body(&user_id, 10);
    no_items["items"] = json!([]);
    let mut bad_country = order_body(&user_id, 10);
    bad_country["shipping_address"]["country"] = json!("Indonesia");
    let mut overflow = order_body(&user_id, 10);
    overflow["items"][0]["unit_price"] = json!("9223372036854775807");
    let mut fractional = order_body(&user_id, 10);
    fractional["items"][0]["unit_price"] = json!(1.5);
    let mut unknown_field = order_body(&user_id, 10);
    unknown_field["coupon"] = json!("FREE");

    let users = "/api/v1/users";
    let user_path = format!("/api/v1/users/{user_id}");
    let pay_path = format!("/api/v1/orders/{order_id}/payments");
    let status_path = format!("/api/v1/orders/{order_id}/status");
    let cases: Vec<(Method, String, Option<Value>, u16, &str)> = vec![
        (
            Method::POST,
            users.into(),
            Some(json!({ "name": "X", "email": "not-an-email" })),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            users.into(),
            Some(json!({ "name": "", "email": "x@example.com" })),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            users.into(),
            Some(json!({ "name": "X".repeat(101), "email": "x@example.com" })),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            users.into(),
            Some(json!({ "email": "x@example.com" })),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            users.into(),
            Some(json!({ "name": "X", "email": "x@example.com", "role": "admin" })),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            users.into(),
            Some(json!({ "name": "X", "email": "x@example.com", "status": "BANNED" })),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            users.into(),
            Some(json!([1, 2])),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            users.into(),
            Some(json!(["Array Person", "array@example.com", null])),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::PATCH,
            user_path.clone(),
            Some(json!(["Renamed"])),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            status_path.clone(),
            Some(json!({ "status": 3 })),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            format!("/api/v1/orders/{order_id}/cancel"),
            Some(json!(["positional reason"])),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::PATCH,
            user_path.clone(),
            Some(json!({})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::PATCH,
            user_path.clone(),
            Some(json!({ "email": "nope" })),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::PATCH,
            "/api/v1/users/not-a-uuid".into(),
            Some(json!({ "name": "Y" })),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{MISSING_ID}"),
            Some(json!({ "name": "Y" })),
            404,
            "NOT_FOUND",
        ),
        (
            Method::DELETE,
            "/api/v1/users/123".into(),
            None,
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::DELETE,
            format!("/api/v1/users/{MISSING_ID}"),
            None,
            404,
            "NOT_FOUND",
        ),
        (
            Method::GET,
            "/api/v1/users?page_size=101".into(),
            None,
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::GET,
            "/api/v1/users?page_size=-1".into(),
            None,
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::GET,
            "/api/v1/users?page_size=abc".into(),
            None,
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::GET,
            "/api/v1/users?sort=name".into(),
            None,
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::GET,
            "/api/v1/users?order_by=age".into(),
            None,
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::GET,
            "/api/v1/users?page_token=garbage".into(),
            None,
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::GET,
            "/api/v1/orders?created_after=yesterday".into(),
            None,
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::GET,
            "/api/v1/orders?min_total=1.5".into(),
            None,
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::GET,
            "/api/v1/orders?user_id=nope".into(),
            None,
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::GET,
            "/api/v1/orders/nope".into(),
            None,
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::GET,
            format!("/api/v1/orders/{MISSING_ID}"),
            None,
            404,
            "NOT_FOUND",
        ),
        (
            Method::GET,
            "/api/v1/users/nope/orders".into(),
            None,
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            "/api/v1/orders".into(),
            Some(huge_quantity),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            "/api/v1/orders".into(),
            Some(lower_currency),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            "/api/v1/orders".into(),
            Some(no_items),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            "/api/v1/orders".into(),
            Some(bad_country),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            "/api/v1/orders".into(),
            Some(overflow),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            "/api/v1/orders".into(),
            Some(fractional),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            "/api/v1/orders".into(),
            Some(unknown_field),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            "/api/v1/orders".into(),
            Some(order_body("nope", 10)),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            status_path.clone(),
            Some(json!({ "status": "LOST" })),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            status_path.clone(),
            Some(json!({})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            format!("/api/v1/orders/{order_id}/cancel"),
            Some(json!({ "reason": "x".repeat(501) })),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            format!("/api/v1/orders/{order_id}/cancel"),
            Some(json!({ "why": "x" })),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            pay_path.clone(),
            Some(
                json!({ "amount": "1", "currency": "IDR", "method": "CARD", "payment_token": "t" }),
            ),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            pay_path.clone(),
            Some(
                json!({ "amount": "2000", "currency": "USD", "method": "CARD", "payment_token": "t" }),
            ),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            pay_path.clone(),
            Some(
                json!({ "amount": "2000", "currency": "IDR", "method": "CASH", "payment_token": "t" }),
            ),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            Method::POST,
            pay_path.clone(),
            Some(
                json!({ "amount": "2000", "currency": "IDR", "method": "CARD", "payment_token": "" }),
            ),
            400,
            "INVALID_ARGUMENT",
        ),
    ];

    for (method, path, body, expected_status, expected_code) in cases {
        let (status, response) = platform.call(method.clone(), &path, body.clone()).await;
        assert_eq!(
            status.as_u16(),
            expected_status,
            "{method} {path} {body:?}: {response}"
        );
        assert_eq!(
            response["code"], expected_code,
            "{method} {path} {body:?}: {response}"
        );
        assert!(
            response["detail"]
                .as_str()
                .is_some_and(|detail| !detail.is_empty()),
            "{response}"
        );
    }

    assert_eq!(totals(&platform).await, before);
    let (_, fetched_user) = platform.get(&user_path).await;
    assert_eq!(fetched_user, user);
    let (_, fetched_order) = platform.get(&format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(fetched_order, order);
}

#[tokio::test]
async fn http_level_errors_are_problem_json() {
    let platform = start_small_body().await;

    let response = platform
        .client
        .post(platform.url("/api/v1/users"))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let status = response.status();
    assert_problem(
        status,
        &response.json().await.unwrap(),
        400,
        "MALFORMED_JSON",
    );

    let response = platform
        .client
        .post(platform.url("/api/v1/users"))
        .header("content-type", "application/json")
        .body(r#"{"name": "Dup", "name": "Dup2", "email": "dup@example.com"}"#)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_problem(status, &body, 400, "INVALID_ARGUMENT");
    assert!(
        body["detail"].as_str().unwrap().contains("duplicate key"),
        "{body}"
    );

    let response = platform
        .client
        .post(platform.url("/api/v1/users"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_problem(
        status,
        &response.json().await.unwrap(),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    );

    let large = json!({ "name": "x".repeat(4096), "email": "big@example.com" });
    let (status, body) = platform.post("/api/v1/users", large).await;
    assert_problem(status, &body, 413, "PAYLOAD_TOO_LARGE");

    let (status, body) = platform.get("/api/v1/nothing-here").await;
    assert_problem(status, &body, 404, "ROUTE_NOT_FOUND");
    let (status, body) = platform.call(Method::PUT, "/api/v1/users", None).await;
    assert_problem(status, &body, 405, "METHOD_NOT_ALLOWED");

    let (_, metrics) = platform.get("/api/v1/metrics/users").await;
    assert_eq!(metrics["total_users"], "0");
}

async fn start_small_body() -> Platform {
    common::start_with(|settings| settings.max_body_bytes = 1024).await
}
