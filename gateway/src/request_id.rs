//! Request ids at the HTTP edge: keep a caller's valid `x-request-id`, or
//! make one, and echo it in the response.

use std::future::Future;

use axum::extract::{FromRequestParts, Request};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::response::Response;
use lintas_common::metadata::{REQUEST_ID_KEY, is_valid_request_id};

/// The id of the request being served.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Middleware that assigns the request id before any handler runs.
pub async fn assign<F>(mut request: Request, next: impl FnOnce(Request) -> F) -> Response
where
    F: Future<Output = Response>,
{
    let id = request
        .headers()
        .get(REQUEST_ID_KEY)
        .and_then(|value| value.to_str().ok())
        .filter(|value| is_valid_request_id(value))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    request.extensions_mut().insert(RequestId(id.clone()));

    let mut response = next(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_KEY, value);
    }
    response
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The middleware runs on every route; a fresh id covers a handler
        // mounted without it.
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(uuid::Uuid::new_v4().to_string())))
    }
}
