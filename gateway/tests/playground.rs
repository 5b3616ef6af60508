//! The GraphiQL playground: the page at `/graphql` for browsers and the
//! files it loads, all served by the gateway itself.

mod common;

use reqwest::header::{self, HeaderMap};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

use common::{Platform, start};

const ASSETS_PATH: &str = "/graphql/assets/";

async fn request_page(platform: &Platform, method: Method) -> Response {
    platform
        .client
        .request(method, platform.url("/graphql"))
        .header(header::ACCEPT, "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap()
}

async fn page_html(platform: &Platform) -> String {
    let response = request_page(platform, Method::GET).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

fn header_text<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
}

/// Returns the values of every `NAME="..."` attribute in `html`.
fn attribute_values<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let marker = format!(" {name}=\"");
    html.match_indices(&marker)
        .map(|(start, _)| {
            let value = &html[start + marker.len()..];
            &value[..value.find('"').expect("attribute value is closed")]
        })
        .collect()
}

/// Returns the URLs of the scripts and stylesheets that the page loads.
fn referenced_urls(html: &str) -> Vec<&str> {
    let mut urls = attribute_values(html, "src");
    urls.extend(attribute_values(html, "href"));
    urls
}

/// Returns the nonce that the policy allows for scripts.
fn script_nonce(policy: &str) -> &str {
    let directive = policy
        .split(';')
        .map(str::trim)
        .find(|directive| directive.starts_with("script-src "))
        .unwrap_or_else(|| panic!("no script-src in {policy}"));
    directive
        .split_whitespace()
        .find_map(|source| source.strip_prefix("'nonce-")?.strip_suffix('\''))
        .unwrap_or_else(|| panic!("no nonce in {directive}"))
}

#[tokio::test]
async fn page_loads_only_same_origin_files() {
    let platform = start().await;
    let html = page_html(&platform).await;

    assert!(html.contains("<title>Lintas GraphQL</title>"), "{html}");
    assert!(html.contains("url: \"/graphql\""), "{html}");
    let urls = referenced_urls(&html);
    assert_eq!(urls.len(), 4, "{urls:?}");
    for url in &urls {
        assert!(url.starts_with(ASSETS_PATH), "{url} is not a gateway file");
    }
    assert!(
        !html.contains("://"),
        "the page names an absolute URL: {html}"
    );
    assert!(!html.contains("unpkg"), "{html}");
}

#[tokio::test]
async fn page_has_strict_content_security_policy() {
    let platform = start().await;
    let response = request_page(&platform, Method::GET).await;
    let headers = response.headers().clone();
    let html = response.text().await.unwrap();

    assert!(header_text(&headers, &header::CONTENT_TYPE).starts_with("text/html"));
    assert_eq!(header_text(&headers, &header::CACHE_CONTROL), "no-store");
    let policy = header_text(&headers, &header::CONTENT_SECURITY_POLICY);
    assert!(policy.starts_with("default-src 'none';"), "{policy}");
    assert!(policy.contains("script-src 'self' 'nonce-"), "{policy}");
    assert!(policy.contains("connect-src 'self';"), "{policy}");
    assert!(!policy.contains("unsafe-"), "{policy}");
    assert!(!policy.contains('*'), "{policy}");

    let nonce = script_nonce(policy);
    let inline_scripts = html.matches("<script nonce=").count();
    assert_eq!(inline_scripts, 1, "{html}");
    assert!(
        html.contains(&format!("<script nonce=\"{nonce}\">")),
        "the inline script lacks the policy's nonce {nonce}: {html}"
    );

    let second = request_page(&platform, Method::GET).await;
    let second_policy = header_text(second.headers(), &header::CONTENT_SECURITY_POLICY);
    assert_ne!(script_nonce(second_policy), nonce, "the nonce was reused");
}

#[tokio::test]
async fn referenced_files_are_served() {
    let platform = start().await;
    let html = page_html(&platform).await;

    for url in referenced_urls(&html) {
        let response = platform.client.get(platform.url(url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let headers = response.headers().clone();
        let expected_type = if url.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else if url.ends_with(".css") {
            "text/css; charset=utf-8"
        } else {
            panic!("unexpected file type: {url}")
        };
        assert_eq!(
            header_text(&headers, &header::CONTENT_TYPE),
            expected_type,
            "{url}"
        );
        assert_eq!(
            header_text(&headers, &header::CACHE_CONTROL),
            "public, max-age=31536000, immutable",
            "{url}"
        );
        assert_eq!(
            header_text(&headers, &header::X_CONTENT_TYPE_OPTIONS),
            "nosniff",
            "{url}"
        );
        let body = response.bytes().await.unwrap();
        assert!(body.len() > 1000, "{url} has only {} bytes", body.len());
        assert_eq!(
            header_text(&headers, &header::CONTENT_LENGTH),
            body.len().to_string(),
            "{url}"
        );
    }
}

#[tokio::test]
async fn head_matches_get_without_body() {
    let platform = start().await;
    let html = page_html(&platform).await;

    for url in referenced_urls(&html) {
        let get = platform.client.get(platform.url(url)).send().await.unwrap();
        let head = platform
            .client
            .head(platform.url(url))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), StatusCode::OK, "{url}");
        for name in [
            header::CONTENT_TYPE,
            header::CONTENT_LENGTH,
            header::CACHE_CONTROL,
        ] {
            assert_eq!(
                head.headers().get(&name),
                get.headers().get(&name),
                "{name} of {url}"
            );
        }
        assert!(head.bytes().await.unwrap().is_empty(), "{url}");
    }

    let head = request_page(&platform, Method::HEAD).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert!(header_text(head.headers(), &header::CONTENT_TYPE).starts_with("text/html"));
    assert!(head.headers().contains_key(header::CONTENT_SECURITY_POLICY));
    assert!(head.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn unknown_file_is_problem_404() {
    let platform = start().await;
    let html = page_html(&platform).await;
    let script = attribute_values(&html, "src")[0].to_owned();
    let (directory, _) = script.rsplit_once('/').unwrap();

    for path in [
        format!("{directory}/missing.js"),
        format!("{script}.map"),
        "/graphql/assets/graphiql-0.0.1/graphiql.min.js".to_owned(),
        "/graphql/assets/".to_owned(),
        "/graphql/assets".to_owned(),
    ] {
        let response = platform
            .client
            .get(platform.url(&path))
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert_eq!(
            header_text(response.headers(), &header::CONTENT_TYPE),
            "application/problem+json",
            "{path}"
        );
        let body: Value = response.json().await.unwrap();
        common::assert_problem(status, &body, 404, "ROUTE_NOT_FOUND");
    }
}

#[tokio::test]
async fn files_reject_other_methods() {
    let platform = start().await;
    let html = page_html(&platform).await;
    let script = attribute_values(&html, "src")[0].to_owned();

    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let (status, body) = platform.call(method.clone(), &script, None).await;
        common::assert_problem(status, &body, 405, "METHOD_NOT_ALLOWED");
    }
}

#[tokio::test]
async fn unknown_files_add_no_metric_series() {
    let platform = start().await;
    let html = page_html(&platform).await;
    let script = attribute_values(&html, "src")[0].to_owned();
    platform
        .client
        .get(platform.url(&script))
        .send()
        .await
        .unwrap();

    let template = format!("route=\"{script}\"");
    let served =
        format!("http_server_requests_total{{method=\"GET\",{template},status_class=\"2xx\"}}");
    assert_eq!(platform.metric(&served).await, 1.0);

    let unmatched =
        "http_server_requests_total{method=\"GET\",route=\"unmatched\",status_class=\"4xx\"}";
    for index in 0..20 {
        platform
            .get(&format!("/graphql/assets/graphiql-{index}/file-{index}.js"))
            .await;
    }
    assert_eq!(platform.metric(unmatched).await, 20.0);
    let text = platform
        .client
        .get(platform.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("file-"), "a raw path became a label: {text}");
}

#[tokio::test]
async fn json_get_still_executes_queries() {
    let platform = start().await;
    let response = platform
        .client
        .get(platform.url("/graphql?query=%7B__typename%7D"))
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
}
