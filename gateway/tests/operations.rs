//! Health, readiness, documentation, metrics and behaviour with a backend down.

mod common;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use common::start;

#[tokio::test]
async fn health_and_readiness() {
    let platform = start().await;
    let (status, body) = platform.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let (status, body) = platform.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"]["user_service"], "serving");
    assert_eq!(body["checks"]["order_service"], "serving");
}

#[tokio::test]
async fn openapi_document_and_docs_page() {
    let platform = start().await;
    let (status, document) = platform.get(gateway::OPENAPI_PATH).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        document["openapi"]
    );
    let paths = document["paths"].as_object().unwrap();
    for path in [
        "/api/v1/users",
        "/api/v1/users/{id}",
        "/api/v1/users/{id}/orders",
        "/api/v1/orders",
        "/api/v1/orders/{id}",
        "/api/v1/orders/{id}/status",
        "/api/v1/orders/{id}/cancel",
        "/api/v1/orders/{id}/payments",
        "/api/v1/metrics/users",
        "/api/v1/metrics/orders",
    ] {
        assert!(paths.contains_key(path), "missing {path}");
    }
    assert!(document["components"]["schemas"]["Problem"].is_object());

    let response = platform
        .client
        .get(platform.url("/api/docs/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("swagger")
    );
}

/// Collects every `$ref` in `value`.
fn collect_refs<'a>(value: &'a Value, refs: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                refs.push(target);
            }
            map.values().for_each(|child| collect_refs(child, refs));
        }
        Value::Array(items) => items.iter().for_each(|child| collect_refs(child, refs)),
        _ => {}
    }
}

#[tokio::test]
async fn openapi_references_resolve() {
    let platform = start().await;
    let (_, document) = platform.get(gateway::OPENAPI_PATH).await;
    let mut refs = Vec::new();
    collect_refs(&document, &mut refs);
    assert!(!refs.is_empty());
    for target in refs {
        let pointer = target.strip_prefix('#').unwrap_or(target);
        assert!(
            document.pointer(pointer).is_some(),
            "unresolvable reference {target}"
        );
    }
}

#[tokio::test]
async fn openapi_documents_every_error_status() {
    let platform = start().await;
    let (_, document) = platform.get(gateway::OPENAPI_PATH).await;
    let paths = document["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            let responses = operation["responses"].as_object().unwrap();
            let mut expected = vec!["429", "500", "503", "504"];
            if operation.get("requestBody").is_some() {
                expected.extend(["400", "413", "415"]);
            }
            if operation.get("parameters").is_some() {
                expected.push("400");
            }
            for status in expected {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} does not document {status}"
                );
            }
        }
    }
    assert_eq!(operations, 14);

    for shared in ["ServiceUnavailable", "TooManyRequests"] {
        let response = &document["components"]["responses"][shared];
        assert!(response["headers"]["Retry-After"].is_object(), "{shared}");
    }
    let patch = &document["paths"]["/api/v1/users/{id}"]["patch"];
    assert!(patch["responses"]["412"].is_object());
    let parameters = patch["parameters"].as_array().unwrap();
    assert!(
        parameters
            .iter()
            .any(|parameter| parameter["name"] == "If-Match")
    );
}

/// Returns the `http_server_requests_total` series the gateway exports.
async fn request_series(platform: &common::Platform) -> Vec<String> {
    let text = platform
        .client
        .get(platform.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|line| line.starts_with("http_server_requests_total{"))
        .map(|line| {
            line.rsplit_once(' ')
                .map_or(line, |(series, _)| series)
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn metrics_use_route_templates() {
    let platform = start().await;
    let send_batch = |range: std::ops::Range<usize>| {
        let platform = &platform;
        async move {
            for index in range {
                platform
                    .get(&format!("/random/{index}/{}", uuid_like(index)))
                    .await;
                platform
                    .get(&format!("/api/v1/users/{}", uuid_like(index)))
                    .await;
            }
        }
    };

    send_batch(0..10).await;
    // The first scrape adds the series of `/metrics` itself.
    request_series(&platform).await;
    let early = request_series(&platform).await;
    send_batch(10..1_000).await;
    let late = request_series(&platform).await;

    assert_eq!(early, late, "2,000 distinct paths must not add series");
    assert!(
        late.iter()
            .any(|line| line.contains("route=\"/api/v1/users/{id}\"")),
        "{late:?}"
    );
    assert!(
        late.iter().any(|line| line.contains("route=\"unmatched\"")),
        "{late:?}"
    );
    assert!(
        !late.iter().any(|line| line.contains("/random/")),
        "{late:?}"
    );
}

fn uuid_like(index: usize) -> String {
    format!("0190f0f0-0000-7000-8000-{index:012}")
}

#[tokio::test]
async fn backend_down_gives_fast_503() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let settings = common::settings(&dead_url, &dead_url);
    let (stop, mut receiver) = tokio::sync::watch::channel(false);
    tokio::spawn(gateway::serve(listener, settings, async move {
        let _ = receiver.wait_for(|stop| *stop).await;
    }));
    let client = common::client_with(Some(&common::token("test-admin", true)));

    let started = Instant::now();
    let response = client
        .get(format!(
            "{base}/api/v1/users/0190f0f0-0000-7000-8000-000000000000"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "UNAVAILABLE");
    // Well under the 5 s backend timeout: a refused connection fails at once.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );

    let response = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let response = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let _ = stop.send(true);
}

#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let platform = start().await;
    let response = platform
        .client
        .get(platform.url("/healthz"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-123");
    let response = platform
        .client
        .get(platform.url("/healthz"))
        .header("x-request-id", "bad id!")
        .send()
        .await
        .unwrap();
    let generated = response.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(generated, "bad id!");
    assert_eq!(generated.len(), 36);
}

#[tokio::test]
async fn metrics_export_the_log_line_counters() {
    let platform = start().await;
    let text = platform
        .client
        .get(platform.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("\nloki_lines_sent_total "), "{text}");
    for reason in ["queue_full", "send_failed", "rejected", "stopped"] {
        let series = format!("\nloki_lines_dropped_total{{reason=\"{reason}\"}} ");
        assert!(text.contains(&series), "no {series:?} in {text}");
    }
}
