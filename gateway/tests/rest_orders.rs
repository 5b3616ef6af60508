//! REST order routes: the lifecycle, transitions and business metrics.

mod common;

use reqwest::StatusCode;
use serde_json::{Value, json};

use common::{Platform, assert_problem, order_body, start};

fn order_path(order: &Value, suffix: &str) -> String {
    format!("/api/v1/orders/{}{suffix}", order["id"].as_str().unwrap())
}

async fn set_status(platform: &Platform, order: &Value, status: &str) -> (StatusCode, Value) {
    platform
        .post(&order_path(order, "/status"), json!({ "status": status }))
        .await
}

#[tokio::test]
async fn order_lifecycle_pay_ship_deliver() {
    let platform = start().await;
    let user = platform.create_user("Siti", "siti@example.com").await;
    let user_id = user["id"].as_str().unwrap();

    let response = platform
        .send(
            reqwest::Method::POST,
            "/api/v1/orders",
            Some(order_body(user_id, 15_000)),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let order: Value = response.json().await.unwrap();
    assert_eq!(location, order_path(&order, ""));
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["total"], "30000");
    assert_eq!(order["items"][0]["unit_price"], "15000");

    let (status, paid) = platform.pay(&order).await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(paid["order"]["status"], "PAID");
    assert_eq!(paid["payment"]["status"], "SUCCEEDED");

    let (status, shipped) = set_status(&platform, &order, "SHIPPED").await;
    assert_eq!(status, StatusCode::OK, "{shipped}");
    assert_eq!(shipped["status"], "SHIPPED");
    let (status, delivered) = set_status(&platform, &order, "DELIVERED").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(delivered["status"], "DELIVERED");

    let (status, body) = platform
        .post(&order_path(&order, "/cancel"), json!({}))
        .await;
    assert_problem(status, &body, 409, "FAILED_PRECONDITION");
    let (_, fetched) = platform.get(&location).await;
    assert_eq!(fetched["status"], "DELIVERED");
}

#[tokio::test]
async fn cancel_paid_order_refunds() {
    let platform = start().await;
    let user = platform.create_user("Budi", "budi@example.com").await;
    let order = platform
        .create_order(user["id"].as_str().unwrap(), 1_000)
        .await;
    platform.pay(&order).await;

    let (status, cancelled) = platform
        .post(
            &order_path(&order, "/cancel"),
            json!({ "reason": "changed my mind" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "CANCELLED");
    assert_eq!(cancelled["refunded"], true);
    assert_eq!(cancelled["cancel_reason"], "changed my mind");
    assert_eq!(cancelled["payments"][0]["status"], "REFUNDED");
}

#[tokio::test]
async fn cancel_accepts_empty_body() {
    let platform = start().await;
    let user = platform.create_user("Budi", "budi@example.com").await;
    let order = platform
        .create_order(user["id"].as_str().unwrap(), 1_000)
        .await;
    let response = platform
        .client
        .post(platform.url(&order_path(&order, "/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn rejected_transitions_change_nothing() {
    let platform = start().await;
    let user = platform.create_user("Ada", "ada@example.com").await;
    let order = platform
        .create_order(user["id"].as_str().unwrap(), 500)
        .await;

    for target in ["SHIPPED", "DELIVERED", "PAID"] {
        let (status, body) = set_status(&platform, &order, target).await;
        assert_problem(status, &body, 409, "FAILED_PRECONDITION");
    }
    let (status, body) = set_status(&platform, &order, "PENDING").await;
    assert!(
        status == StatusCode::CONFLICT || status == StatusCode::BAD_REQUEST,
        "{body}"
    );

    let (_, fetched) = platform.get(&order_path(&order, "")).await;
    assert_eq!(fetched["status"], "PENDING");
    assert_eq!(fetched["version"], order["version"]);
}

#[tokio::test]
async fn declined_payment_keeps_order_pending() {
    let platform = start().await;
    let user = platform.create_user("Ada", "ada@example.com").await;
    let order = platform
        .create_order(user["id"].as_str().unwrap(), 700)
        .await;
    let body = json!({ "amount": "1400", "currency": "IDR", "method": "WALLET", "payment_token": "tok_decline_funds" });
    let (status, result) = platform.post(&order_path(&order, "/payments"), body).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["payment"]["status"], "FAILED");
    assert_eq!(result["order"]["status"], "PENDING");
    assert!(
        !result["payment"]["failure_reason"]
            .as_str()
            .unwrap()
            .is_empty()
    );

    let (_, metrics) = platform.get("/api/v1/metrics/orders").await;
    assert_eq!(metrics["payments_failed"], "1");
    assert_eq!(metrics["payments_succeeded"], "0");
}

#[tokio::test]
async fn order_for_missing_or_suspended_user_rejected() {
    let platform = start().await;
    let (status, body) = platform
        .post(
            "/api/v1/orders",
            order_body("0190f0f0-0000-7000-8000-000000000000", 100),
        )
        .await;
    assert_problem(status, &body, 409, "FAILED_PRECONDITION");

    let user = platform.create_user("Sus", "sus@example.com").await;
    let path = format!("/api/v1/users/{}", user["id"].as_str().unwrap());
    platform
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(json!({ "status": "SUSPENDED" })),
        )
        .await;
    let (status, body) = platform
        .post(
            "/api/v1/orders",
            order_body(user["id"].as_str().unwrap(), 100),
        )
        .await;
    assert_problem(status, &body, 409, "FAILED_PRECONDITION");

    let (_, page) = platform.get("/api/v1/orders").await;
    assert_eq!(page["orders"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn list_orders_filters_and_user_orders() {
    let platform = start().await;
    let first = platform.create_user("A", "a@example.com").await;
    let second = platform.create_user("B", "b@example.com").await;
    let first_id = first["id"].as_str().unwrap();
    let second_id = second["id"].as_str().unwrap();
    let cheap = platform.create_order(first_id, 100).await;
    platform.create_order(first_id, 5_000).await;
    platform.create_order(second_id, 9_000).await;
    platform.pay(&cheap).await;

    let (_, page) = platform
        .get(&format!("/api/v1/orders?user_id={first_id}"))
        .await;
    assert_eq!(page["orders"].as_array().unwrap().len(), 2);
    let (_, page) = platform.get("/api/v1/orders?status=PAID").await;
    assert_eq!(page["orders"].as_array().unwrap().len(), 1);
    let (_, page) = platform.get("/api/v1/orders?min_total=10000").await;
    assert_eq!(
        page["orders"].as_array().unwrap().len(),
        2,
        "minimum is inclusive"
    );
    let (_, page) = platform.get("/api/v1/orders?min_total=10001").await;
    assert_eq!(page["orders"].as_array().unwrap().len(), 1);
    let (_, page) = platform
        .get("/api/v1/orders?order_by=total&direction=DESC")
        .await;
    let totals: Vec<_> = page["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|order| order["total"].clone())
        .collect();
    assert_eq!(totals, [json!("18000"), json!("10000"), json!("200")]);
    let (_, page) = platform
        .get(
            "/api/v1/orders?created_after=2000-01-01T00:00:00Z&created_before=2001-01-01T00:00:00Z",
        )
        .await;
    assert_eq!(page["orders"].as_array().unwrap().len(), 0);

    let (status, page) = platform
        .get(&format!("/api/v1/users/{second_id}/orders"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["orders"].as_array().unwrap().len(), 1);
    assert_eq!(page["orders"][0]["user_id"], second_id);
}

#[tokio::test]
async fn order_metrics_follow_the_flow() {
    let platform = start().await;
    let user = platform.create_user("A", "a@example.com").await;
    let user_id = user["id"].as_str().unwrap();
    let paid = platform.create_order(user_id, 1_000).await;
    platform.create_order(user_id, 2_000).await;
    platform.pay(&paid).await;

    let (status, metrics) = platform.get("/api/v1/metrics/orders").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(metrics["total_orders"], "2");
    assert_eq!(metrics["payments_succeeded"], "1");
    assert_eq!(
        metrics["revenue_by_currency"],
        json!([{ "currency": "IDR", "amount": "2000" }])
    );
    let by_status = metrics["orders_by_status"].as_array().unwrap();
    assert!(
        by_status.contains(&json!({ "status": "PAID", "count": "1" })),
        "{metrics}"
    );
    assert!(
        by_status.contains(&json!({ "status": "PENDING", "count": "1" })),
        "{metrics}"
    );
}

/// JSON Schema counts `2.0` as an integer, so the OpenAPI document's
/// `type: integer` fields accept it; a real fraction stays invalid.
#[tokio::test]
async fn integers_with_zero_fraction_accepted() {
    let platform = start().await;
    let user = platform.create_user("Ayu", "ayu@example.com").await;
    let mut body = order_body(user["id"].as_str().unwrap(), 0);
    body["items"][0]["quantity"] = json!(2.0);
    body["items"][0]["unit_price"] = json!(1500.0);

    let (status, order) = platform.post("/api/v1/orders", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["items"][0]["quantity"], 2);
    assert_eq!(order["total"], "3000");

    let (status, paid) = platform
        .post(
            &order_path(&order, "/payments"),
            json!({
                "amount": 3000.0,
                "currency": "IDR",
                "method": "CARD",
                "payment_token": "tok_visa"
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(paid["payment"]["amount"], "3000");

    body["items"][0]["quantity"] = json!(1.5);
    let (status, problem) = platform.post("/api/v1/orders", body.clone()).await;
    assert_problem(status, &problem, 400, "INVALID_ARGUMENT");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("items[0].quantity: "),
        "{problem}"
    );

    body["items"][0]["quantity"] = json!("2");
    let (status, problem) = platform.post("/api/v1/orders", body).await;
    assert_problem(status, &problem, 400, "INVALID_ARGUMENT");
}
