//! The audit log: every write and no read gets one line under the `audit`
//! target, with the actor, action, target id, outcome, client address and
//! trace id, and never an email.

mod common;

use std::time::Duration;

use lintas_telemetry::testing::{LokiReceiver, ReceivedLine};
use lintas_telemetry::{LogFormat, TelemetryConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn audit_lines(lines: &[ReceivedLine]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(&line.line).ok())
        .filter(|line| line["target"] == "audit")
        .collect()
}

#[tokio::test]
async fn writes_are_audited_and_reads_are_not() {
    let loki = LokiReceiver::start().await;
    let config = TelemetryConfig::from_lookup("lintas-test", LogFormat::Json, |name| match name {
        "LOKI_URL" => Some(loki.url.clone()),
        _ => None,
    })
    .unwrap();
    let telemetry = lintas_telemetry::init(&config).unwrap();
    let platform = common::start().await;

    let user = platform.create_user("Wati", "wati@example.com").await;
    let user_id = user["id"].as_str().unwrap().to_owned();
    let (status, _) = platform.get(&format!("/api/v1/users/{user_id}")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = platform
        .post("/api/v1/users", json!({ "name": "", "email": "bad" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let response = platform
        .graphql(
            "mutation ($id: ID!) { updateUser(id: $id, input: { name: \"Wati S\" }) { id } }",
            json!({ "id": user_id }),
        )
        .await;
    assert!(response["errors"].is_null(), "{response}");
    let response = platform
        .graphql(
            "{ user(id: \"0190f0f0-0000-7000-8000-000000000000\") { id } }",
            json!({}),
        )
        .await;
    assert!(!response["errors"].is_null(), "{response}");

    // Denied requests: no token, and a regular user reaching for another
    // user's record on both facades.
    let user_path = format!("/api/v1/users/{user_id}");
    let anonymous = common::client_with(None);
    let response = anonymous
        .get(platform.url(&user_path))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let stranger = common::client_with(Some(&common::token("stranger-7", false)));
    let response = stranger.get(platform.url(&user_path)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response: Value = stranger
        .post(platform.url("/graphql"))
        .json(&json!({ "query": "query ($id: ID!) { user(id: $id) { id } }", "variables": { "id": user_id } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{response}"
    );
    telemetry.shutdown().await;

    let lines = loki
        .wait_for(Duration::from_secs(10), |lines| {
            audit_lines(lines).len() >= 6
        })
        .await;
    let audit = audit_lines(&lines);
    let actions: Vec<&str> = audit
        .iter()
        .map(|line| line["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "POST /api/v1/users",
            "POST /api/v1/users",
            "graphql mutation updateUser",
            "GET /api/v1/users/{id}",
            "GET /api/v1/users/{id}",
            "graphql query user",
        ],
        "{audit:#?}"
    );
    assert_eq!(audit[0]["outcome"], "ok");
    assert_eq!(audit[0]["target_id"], user_id.as_str());
    assert_eq!(audit[1]["outcome"], "failed 400");
    assert_eq!(audit[1]["target_id"], "-");
    assert_eq!(audit[2]["outcome"], "ok");
    // A GraphQL operation's target is its id argument.
    assert_eq!(audit[2]["target_id"], user_id.as_str());
    assert_eq!(audit[5]["target_id"], user_id.as_str());
    let actors: Vec<&str> = audit
        .iter()
        .map(|line| line["actor"].as_str().unwrap())
        .collect();
    assert_eq!(
        actors,
        [
            "test-admin",
            "test-admin",
            "test-admin",
            "anonymous",
            "stranger-7",
            "stranger-7"
        ]
    );
    for line in &audit[3..] {
        assert_eq!(line["outcome"], "denied", "{line}");
    }
    for line in &audit {
        assert_eq!(line["client_address"], "127.0.0.1");
        assert_eq!(line["trace_id"].as_str().unwrap().len(), 32, "{line}");
        assert!(!line.to_string().contains("@example.com"), "{line}");
    }
    for line in &lines {
        // Every JWT starts with the base64 of `{"`.
        assert!(
            !line.line.contains("eyJ"),
            "a token was logged: {}",
            line.line
        );
        let names: Vec<&str> = line.labels.keys().map(String::as_str).collect();
        assert_eq!(names, ["environment", "level", "service"]);
    }
}
