//! Request headers of writes: `Idempotency-Key`, and `If-Match` with the
//! `ETag` that reads return.
//!
//! A user's ETag is its version in quotes (`"3"`), so `If-Match: "3"` on a
//! PATCH or DELETE applies the change only while the user is at version 3.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use utoipa::IntoParams;

use super::schemas;
use crate::error::ApiError;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The `Idempotency-Key` request header, as the OpenAPI document describes
/// it. Handlers read the header with [`idempotency_key`].
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IdempotencyKeyHeader {
    #[param(rename = "Idempotency-Key", schema_with = schemas::idempotency_key)]
    key: Option<String>,
}

/// The `If-Match` request header, as the OpenAPI document describes it.
/// Handlers read the header with [`if_match`].
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IfMatchHeader {
    #[param(rename = "If-Match", schema_with = schemas::if_match)]
    version: Option<String>,
}

/// Rejects a header sent more than once: which copy counts would be a
/// guess, and a proxy may have merged two requests' headers.
fn reject_repeated(headers: &HeaderMap, name: &str, display: &str) -> Result<(), ApiError> {
    if headers.get_all(name).iter().nth(1).is_some() {
        return Err(ApiError::invalid_argument(format!(
            "{display}: send the header once"
        )));
    }
    Ok(())
}

/// Returns the `Idempotency-Key` header, if any.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    reject_repeated(headers, IDEMPOTENCY_KEY, "Idempotency-Key")?;
    headers
        .get(IDEMPOTENCY_KEY)
        .map(|value| {
            value.to_str().map(str::to_owned).map_err(|_| {
                ApiError::invalid_argument("Idempotency-Key: must be visible ASCII characters")
            })
        })
        .transpose()
}

/// Returns the version an `If-Match` header requires; `*` or no header
/// require none.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    reject_repeated(headers, axum::http::header::IF_MATCH.as_str(), "If-Match")?;
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::invalid_argument("If-Match: expected one ETag such as \"3\", as returned by GET")
    };
    let text = value.to_str().map_err(|_| invalid())?.trim();
    if text == "*" {
        return Ok(None);
    }
    let tag = text.strip_prefix("W/").unwrap_or(text);
    let version = tag
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .and_then(|digits| digits.parse::<i64>().ok())
        .filter(|version| *version >= 1)
        .ok_or_else(invalid)?;
    Ok(Some(version))
}

/// Formats the ETag of a resource version.
pub fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\""))
        .expect("a quoted integer is a valid header value")
}

/// Turns a version conflict of a conditional request into 412.
pub fn precondition_failed(error: ApiError, conditional: bool) -> ApiError {
    if conditional && error.code == "ABORTED" {
        return ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "PRECONDITION_FAILED",
            error.detail,
        );
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn repeated_headers_are_rejected() {
        let mut headers = HeaderMap::new();
        headers.append(IDEMPOTENCY_KEY, HeaderValue::from_static("a"));
        assert_eq!(idempotency_key(&headers).unwrap().as_deref(), Some("a"));
        headers.append(IDEMPOTENCY_KEY, HeaderValue::from_static("b"));
        assert_eq!(
            idempotency_key(&headers).unwrap_err().code,
            "INVALID_ARGUMENT"
        );

        let mut headers = HeaderMap::new();
        headers.append(
            axum::http::header::IF_MATCH,
            HeaderValue::from_static("\"1\""),
        );
        headers.append(
            axum::http::header::IF_MATCH,
            HeaderValue::from_static("\"2\""),
        );
        assert!(if_match(&headers).is_err());
    }

    #[test]
    fn if_match_forms() {
        assert_eq!(if_match(&HeaderMap::new()).unwrap(), None);
        assert_eq!(if_match(&headers("if-match", "*")).unwrap(), None);
        assert_eq!(if_match(&headers("if-match", "\"3\"")).unwrap(), Some(3));
        assert_eq!(
            if_match(&headers("if-match", "W/\"12\"")).unwrap(),
            Some(12)
        );
        for invalid in ["3", "\"x\"", "\"0\"", "\"1\", \"2\"", "\"-1\""] {
            let mut map = HeaderMap::new();
            map.insert("if-match", HeaderValue::from_str(invalid).unwrap());
            assert_eq!(
                if_match(&map).unwrap_err().code,
                "INVALID_ARGUMENT",
                "{invalid}"
            );
        }
    }

    #[test]
    fn only_conditional_conflicts_become_412() {
        let conflict = ApiError::new(StatusCode::CONFLICT, "ABORTED", "version: expected 1");
        assert_eq!(
            precondition_failed(conflict.clone(), true).status,
            StatusCode::PRECONDITION_FAILED
        );
        assert_eq!(
            precondition_failed(conflict, false).status,
            StatusCode::CONFLICT
        );
    }
}
