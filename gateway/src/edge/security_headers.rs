//! Security headers on every response, errors and 404s included.
//!
//! Responses are JSON for programs, so the defaults forbid everything a
//! browser could do with them: render them in a frame, sniff another content
//! type, load anything (CSP `default-src 'none'`), or store them. Headers
//! that a handler sets itself are kept: the browser pages (GraphiQL at
//! `/graphql` and Swagger UI at `/api/docs`) set their own
//! `Content-Security-Policy`, and their files set their own `Cache-Control`.

use axum::Router;
use axum::http::{HeaderValue, header};
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;

/// Content Security Policy of responses that set none: JSON loads nothing
/// and may not be framed.
pub const DEFAULT_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// `Strict-Transport-Security` sent when clients reach the gateway over
/// HTTPS: browsers use only HTTPS for the host for one year. It leaves out
/// `includeSubDomains`, because other hosts under the same domain are not
/// the gateway's to decide.
const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

/// Adds the security headers to every response of `router`. It sends
/// `Strict-Transport-Security` only when `behind_tls` is true, which means
/// that clients reach the gateway over HTTPS through a proxy that
/// terminates TLS.
pub fn apply(router: Router, behind_tls: bool) -> Router {
    let strict_transport_security =
        behind_tls.then(|| HeaderValue::from_static(STRICT_TRANSPORT_SECURITY));
    router.layer(
        ServiceBuilder::new()
            .layer(SetResponseHeaderLayer::overriding(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            // Both browser pages are the gateway's own and are never framed.
            .layer(SetResponseHeaderLayer::overriding(
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("DENY"),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(DEFAULT_CONTENT_SECURITY_POLICY),
            ))
            // API responses describe the state at one moment, often of one
            // user, so no browser or proxy cache may keep them.
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::STRICT_TRANSPORT_SECURITY,
                strict_transport_security,
            )),
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{HeaderMap, Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    const PAGE_POLICY: &str = "default-src 'self'";

    fn router(behind_tls: bool) -> Router {
        let routes = Router::new()
            .route("/json", get(|| async { axum::Json(serde_json::json!({})) }))
            .route(
                "/page",
                get(|| async {
                    (
                        [
                            (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
                            (header::CACHE_CONTROL, "max-age=60"),
                        ],
                        axum::response::Html("<p>page</p>"),
                    )
                }),
            )
            .fallback(|| async { StatusCode::NOT_FOUND });
        apply(routes, behind_tls)
    }

    async fn response_headers(router: Router, path: &str) -> HeaderMap {
        let request = Request::get(path).body(Body::empty()).unwrap();
        router.oneshot(request).await.unwrap().headers().clone()
    }

    fn assert_defaults(headers: &HeaderMap) {
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            DEFAULT_CONTENT_SECURITY_POLICY
        );
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    }

    #[tokio::test]
    async fn json_response_gets_every_default() {
        let headers = response_headers(router(false), "/json").await;
        assert_defaults(&headers);
    }

    #[tokio::test]
    async fn unmatched_path_gets_every_default() {
        let headers = response_headers(router(false), "/missing").await;
        assert_defaults(&headers);
    }

    #[tokio::test]
    async fn handler_policy_and_caching_are_kept() {
        let headers = response_headers(router(false), "/page").await;
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], PAGE_POLICY);
        assert_eq!(headers[header::CACHE_CONTROL], "max-age=60");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    }

    #[tokio::test]
    async fn strict_transport_security_only_behind_tls() {
        let headers = response_headers(router(false), "/json").await;
        assert!(!headers.contains_key(header::STRICT_TRANSPORT_SECURITY));

        let headers = response_headers(router(true), "/json").await;
        assert_eq!(
            headers[header::STRICT_TRANSPORT_SECURITY],
            STRICT_TRANSPORT_SECURITY
        );
    }
}
