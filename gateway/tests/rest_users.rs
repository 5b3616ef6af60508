//! REST user routes against the real services.

mod common;

use reqwest::{Method, StatusCode};
use serde_json::json;

use common::{assert_problem, start};

#[tokio::test]
async fn user_crud_round_trip() {
    let platform = start().await;

    let response = platform
        .send(
            Method::POST,
            "/api/v1/users",
            Some(json!({ "name": "Siti", "email": "siti@example.com" })),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(response.headers().contains_key("x-request-id"));
    let user: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/v1/users/{}", user["id"].as_str().unwrap())
    );
    assert_eq!(user["status"], "ACTIVE");
    assert_eq!(user["version"], "1");

    let (status, fetched) = platform.get(&location).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, user);

    let (status, updated) = platform
        .call(
            Method::PATCH,
            &location,
            Some(json!({ "status": "SUSPENDED", "name": "Siti R." })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["status"], "SUSPENDED");
    assert_eq!(updated["name"], "Siti R.");
    assert_eq!(updated["version"], "2");
    assert_eq!(updated["email"], "siti@example.com");

    let (status, body) = platform.call(Method::DELETE, &location, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(body.is_null());
    let (status, body) = platform.get(&location).await;
    assert_problem(status, &body, 404, "NOT_FOUND");
}

#[tokio::test]
async fn deleted_user_orders_not_found() {
    let platform = start().await;
    let user = platform.create_user("Budi", "budi@example.com").await;
    let orders = format!("/api/v1/users/{}/orders", user["id"].as_str().unwrap());

    let (status, page) = platform.get(&orders).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["orders"], json!([]));

    let (status, body) = platform
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{}", user["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = platform.get(&orders).await;
    assert_problem(status, &body, 404, "NOT_FOUND");
}

#[tokio::test]
async fn duplicate_email_is_conflict() {
    let platform = start().await;
    platform.create_user("Ada", "ada@example.com").await;
    let (status, body) = platform
        .post(
            "/api/v1/users",
            json!({ "name": "Other", "email": "ADA@example.com" }),
        )
        .await;
    assert_problem(status, &body, 409, "ALREADY_EXISTS");
}

#[tokio::test]
async fn list_pages_filters_and_orders() {
    let platform = start().await;
    for index in 0..5 {
        platform
            .create_user(
                &format!("User {index}"),
                &format!("user{index}@example.com"),
            )
            .await;
    }
    platform.create_user("Zed", "zed@other.org").await;

    let mut seen = Vec::new();
    let mut path = "/api/v1/users?page_size=2&order_by=name&direction=ASC".to_owned();
    loop {
        let (status, page) = platform.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let users = page["users"].as_array().unwrap();
        assert!(users.len() <= 2);
        seen.extend(
            users
                .iter()
                .map(|user| user["name"].as_str().unwrap().to_owned()),
        );
        let token = page["next_page_token"].as_str().unwrap();
        if token.is_empty() {
            break;
        }
        path = format!("/api/v1/users?page_size=2&order_by=name&direction=ASC&page_token={token}");
    }
    assert_eq!(
        seen,
        ["User 0", "User 1", "User 2", "User 3", "User 4", "Zed"]
    );

    let (_, page) = platform.get("/api/v1/users?email_contains=OTHER.org").await;
    let names: Vec<_> = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["name"].clone())
        .collect();
    assert_eq!(names, [json!("Zed")]);

    let (_, page) = platform
        .get("/api/v1/users?name_contains=user&order_by=email&direction=DESC")
        .await;
    let first = &page["users"][0];
    assert_eq!(first["email"], "user4@example.com");
    assert_eq!(page["users"].as_array().unwrap().len(), 5);

    let (_, page) = platform.get("/api/v1/users?status=SUSPENDED").await;
    assert_eq!(page["users"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn page_token_bound_to_query() {
    let platform = start().await;
    for index in 0..3 {
        platform
            .create_user(&format!("U{index}"), &format!("u{index}@example.com"))
            .await;
    }
    let (_, page) = platform.get("/api/v1/users?page_size=1").await;
    let token = page["next_page_token"].as_str().unwrap().to_owned();
    assert!(!token.is_empty());

    let (status, body) = platform
        .get(&format!(
            "/api/v1/users?page_size=1&order_by=name&page_token={token}"
        ))
        .await;
    assert_problem(status, &body, 400, "INVALID_ARGUMENT");
    assert!(
        body["detail"].as_str().unwrap().starts_with("page_token:"),
        "{body}"
    );

    let forged = format!("{}x", token);
    let (status, body) = platform
        .get(&format!("/api/v1/users?page_size=1&page_token={forged}"))
        .await;
    assert_problem(status, &body, 400, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn user_metrics_count_statuses() {
    let platform = start().await;
    let user = platform.create_user("A", "a@example.com").await;
    platform.create_user("B", "b@example.com").await;
    let path = format!("/api/v1/users/{}", user["id"].as_str().unwrap());
    platform
        .call(Method::PATCH, &path, Some(json!({ "status": "SUSPENDED" })))
        .await;

    let (status, metrics) = platform.get("/api/v1/metrics/users").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(metrics["total_users"], "2");
    assert_eq!(metrics["users_created_last_24h"], "2");
    let by_status = metrics["users_by_status"].as_array().unwrap();
    assert!(
        by_status.contains(&json!({ "status": "ACTIVE", "count": "1" })),
        "{metrics}"
    );
    assert!(
        by_status.contains(&json!({ "status": "SUSPENDED", "count": "1" })),
        "{metrics}"
    );
}
