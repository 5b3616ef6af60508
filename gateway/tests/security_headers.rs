//! Security headers on every response of the real gateway: API responses,
//! errors, probes and metrics get the defaults, and the browser pages keep
//! their own Content Security Policy.

mod common;

use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::json;

use common::{Platform, start, start_with};

const DEFAULT_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

async fn response_headers(
    platform: &Platform,
    method: Method,
    path: &str,
) -> (StatusCode, HeaderMap) {
    let response = platform.send(method, path, None).await;
    (response.status(), response.headers().clone())
}

fn header_text<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name} in {headers:?}"))
        .to_str()
        .unwrap()
}

fn assert_common_headers(headers: &HeaderMap, case: &str) {
    assert_eq!(
        header_text(headers, &header::X_CONTENT_TYPE_OPTIONS),
        "nosniff",
        "{case}"
    );
    assert_eq!(
        header_text(headers, &header::X_FRAME_OPTIONS),
        "DENY",
        "{case}"
    );
    assert_eq!(
        header_text(headers, &header::REFERRER_POLICY),
        "no-referrer",
        "{case}"
    );
    assert!(
        !headers.contains_key(header::STRICT_TRANSPORT_SECURITY),
        "{case}"
    );
}

fn assert_api_headers(headers: &HeaderMap, case: &str) {
    assert_common_headers(headers, case);
    assert_eq!(
        header_text(headers, &header::CONTENT_SECURITY_POLICY),
        DEFAULT_POLICY,
        "{case}"
    );
    assert_eq!(
        header_text(headers, &header::CACHE_CONTROL),
        "no-store",
        "{case}"
    );
}

#[tokio::test]
async fn api_responses_and_errors_get_defaults() {
    let platform = start().await;
    let user = platform.create_user("Siti", "siti@example.com").await;
    let user_path = format!("/api/v1/users/{}", user["id"].as_str().unwrap());

    let cases = [
        (Method::GET, "/api/v1/users", 200),
        (Method::GET, user_path.as_str(), 200),
        (Method::GET, "/api/v1/users/not-a-uuid", 400),
        (Method::GET, "/api/v1/no-such-route", 404),
        (Method::PUT, "/api/v1/users", 405),
        (Method::GET, "/healthz", 200),
        (Method::GET, "/readyz", 200),
        (Method::GET, "/metrics", 200),
        (Method::GET, gateway::OPENAPI_PATH, 200),
    ];
    for (method, path, expected_status) in cases {
        let case = format!("{method} {path}");
        let (status, headers) = response_headers(&platform, method, path).await;
        assert_eq!(status.as_u16(), expected_status, "{case}");
        assert_api_headers(&headers, &case);
    }
}

#[tokio::test]
async fn handler_errors_with_bodies_get_defaults() {
    let platform = start().await;

    let response = platform
        .client
        .post(platform.url("/api/v1/users"))
        .header(header::CONTENT_TYPE, "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_api_headers(response.headers(), "malformed JSON");

    let oversized = "x".repeat(128 * 1024);
    let response = platform
        .client
        .post(platform.url("/graphql"))
        .json(&json!({ "query": oversized }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_api_headers(response.headers(), "oversized GraphQL body");
}

#[tokio::test]
async fn graphql_responses_get_defaults() {
    let platform = start().await;

    let response = platform
        .client
        .post(platform.url("/graphql"))
        .json(&json!({ "query": "{ users(first: 1) { nodes { id } } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_api_headers(response.headers(), "GraphQL query");
}

#[tokio::test]
async fn graphiql_page_keeps_its_own_policy() {
    let platform = start().await;

    let response = platform
        .client
        .get(platform.url("/graphql"))
        .header(header::ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_common_headers(headers, "GraphiQL page");
    let policy = header_text(headers, &header::CONTENT_SECURITY_POLICY);
    assert!(policy.contains("script-src 'self' 'nonce-"), "{policy}");
    assert_eq!(header_text(headers, &header::CACHE_CONTROL), "no-store");
}

#[tokio::test]
async fn graphiql_files_keep_their_caching() {
    let platform = start().await;
    let html = platform
        .client
        .get(platform.url("/graphql"))
        .header(header::ACCEPT, "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let script = html
        .split("<script src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no script file in {html}"));

    let (status, headers) = response_headers(&platform, Method::GET, script).await;
    assert_eq!(status, StatusCode::OK, "{script}");
    assert_common_headers(&headers, script);
    assert_eq!(
        header_text(&headers, &header::CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );
}

#[tokio::test]
async fn docs_page_has_its_own_policy() {
    let platform = start().await;
    let page = format!("{}/", gateway::DOCS_PATH);

    let (status, headers) = response_headers(&platform, Method::GET, &page).await;
    assert_eq!(status, StatusCode::OK);
    assert_common_headers(&headers, "docs page");
    let policy = header_text(&headers, &header::CONTENT_SECURITY_POLICY);
    assert!(
        policy.starts_with("default-src 'none'; script-src 'self';"),
        "{policy}"
    );
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");

    let script = format!("{page}swagger-ui-bundle.js");
    let (status, headers) = response_headers(&platform, Method::GET, &script).await;
    assert_eq!(status, StatusCode::OK);
    assert_api_headers(&headers, "docs script");
}

#[tokio::test]
async fn strict_transport_security_when_behind_tls() {
    let platform = start_with(|settings| settings.behind_tls = true).await;

    for path in ["/api/v1/users", "/api/v1/no-such-route", "/healthz"] {
        let (_, headers) = response_headers(&platform, Method::GET, path).await;
        assert_eq!(
            header_text(&headers, &header::STRICT_TRANSPORT_SECURITY),
            "max-age=31536000",
            "{path}"
        );
    }
}
