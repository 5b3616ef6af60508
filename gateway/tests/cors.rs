//! CORS: no CORS headers unless origins are allowed, then preflight and
//! actual requests from those origins only.

mod common;

use reqwest::header::{self, HeaderMap};
use reqwest::{Method, Response, StatusCode};

use common::{Platform, start, start_with};

const ALLOWED: &str = "https://app.example.com";
const DENIED: &str = "https://evil.example.net";

async fn start_allowing(origins: &[&str], allow_credentials: bool) -> Platform {
    let origins: Vec<String> = origins.iter().map(|origin| (*origin).to_owned()).collect();
    start_with(move |settings| {
        settings.cors = gateway::CorsSettings {
            allowed_origins: origins,
            allow_credentials,
        };
    })
    .await
}

/// Sends the preflight a browser sends before a POST with a JSON body and
/// an idempotency key.
async fn preflight(platform: &Platform, origin: &str) -> Response {
    platform
        .client
        .request(Method::OPTIONS, platform.url("/api/v1/users"))
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "content-type,idempotency-key",
        )
        .send()
        .await
        .unwrap()
}

async fn get_from(platform: &Platform, origin: &str) -> Response {
    platform
        .client
        .get(platform.url("/api/v1/users"))
        .header(header::ORIGIN, origin)
        .send()
        .await
        .unwrap()
}

fn header_text<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
}

/// Splits a comma-separated header into lowercase items.
fn header_items(headers: &HeaderMap, name: &header::HeaderName) -> Vec<String> {
    header_text(headers, name)
        .split(',')
        .map(|item| item.trim().to_ascii_lowercase())
        .collect()
}

fn assert_no_cors_headers(headers: &HeaderMap) {
    for name in [
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::ACCESS_CONTROL_ALLOW_METHODS,
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
    ] {
        assert!(
            !headers.contains_key(&name),
            "unexpected {name}: {headers:?}"
        );
    }
}

#[tokio::test]
async fn cors_is_denied_by_default() {
    let platform = start().await;

    let response = preflight(&platform, ALLOWED).await;
    assert_no_cors_headers(response.headers());

    let response = get_from(&platform, ALLOWED).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_no_cors_headers(response.headers());
}

#[tokio::test]
async fn preflight_from_allowed_origin_is_allowed() {
    let platform = start_allowing(&[ALLOWED, "http://localhost:3000"], false).await;

    let response = preflight(&platform, ALLOWED).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(
        header_text(headers, &header::ACCESS_CONTROL_ALLOW_ORIGIN),
        ALLOWED
    );
    let methods = header_items(headers, &header::ACCESS_CONTROL_ALLOW_METHODS);
    for method in ["get", "post", "patch", "delete"] {
        assert!(methods.iter().any(|item| item == method), "{methods:?}");
    }
    let allowed_headers = header_items(headers, &header::ACCESS_CONTROL_ALLOW_HEADERS);
    for name in ["content-type", "idempotency-key", "if-match", "traceparent"] {
        assert!(
            allowed_headers.iter().any(|item| item == name),
            "{allowed_headers:?}"
        );
    }
    assert_eq!(header_text(headers, &header::ACCESS_CONTROL_MAX_AGE), "600");
    assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
    let vary = header_items(headers, &header::VARY);
    assert!(vary.iter().any(|item| item == "origin"), "{vary:?}");
}

#[tokio::test]
async fn preflight_from_denied_origin_gets_no_cors_headers() {
    let platform = start_allowing(&[ALLOWED], false).await;

    let response = preflight(&platform, DENIED).await;
    assert!(
        !response
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );

    let response = get_from(&platform, DENIED).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        !response
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}

#[tokio::test]
async fn allowed_origin_reads_api_headers() {
    let platform = start_allowing(&[ALLOWED], false).await;

    let response = get_from(&platform, ALLOWED).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(
        header_text(headers, &header::ACCESS_CONTROL_ALLOW_ORIGIN),
        ALLOWED
    );
    let exposed = header_items(headers, &header::ACCESS_CONTROL_EXPOSE_HEADERS);
    for name in [
        "etag",
        "location",
        "x-trace-id",
        "traceparent",
        "retry-after",
    ] {
        assert!(exposed.iter().any(|item| item == name), "{exposed:?}");
    }
}

#[tokio::test]
async fn errors_carry_cors_headers_for_allowed_origin() {
    let platform = start_allowing(&[ALLOWED], false).await;

    let response = platform
        .client
        .get(platform.url("/api/v1/no-such-route"))
        .header(header::ORIGIN, ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        header_text(response.headers(), &header::ACCESS_CONTROL_ALLOW_ORIGIN),
        ALLOWED
    );
}

#[tokio::test]
async fn credentials_are_allowed_only_when_configured() {
    let platform = start_allowing(&[ALLOWED], true).await;

    let response = preflight(&platform, ALLOWED).await;
    let headers = response.headers();
    assert_eq!(
        header_text(headers, &header::ACCESS_CONTROL_ALLOW_CREDENTIALS),
        "true"
    );
    assert_eq!(
        header_text(headers, &header::ACCESS_CONTROL_ALLOW_ORIGIN),
        ALLOWED
    );
}

#[tokio::test]
async fn any_origin_is_echoed_as_wildcard() {
    let platform = start_allowing(&["*"], false).await;

    let response = preflight(&platform, DENIED).await;
    assert_eq!(
        header_text(response.headers(), &header::ACCESS_CONTROL_ALLOW_ORIGIN),
        "*"
    );
}

#[tokio::test]
async fn any_origin_with_credentials_fails_at_start() {
    let mut settings = common::settings("http://127.0.0.1:9", "http://127.0.0.1:9");
    settings.cors = gateway::CorsSettings {
        allowed_origins: vec!["*".to_owned()],
        allow_credentials: true,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();

    let error = gateway::serve(listener, settings, std::future::ready(()))
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("CORS_ALLOW_CREDENTIALS"),
        "{error:#}"
    );
}
