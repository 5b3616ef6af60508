//! Axum extractors whose rejections are problem+json [`ApiError`]s instead
//! of axum's plain-text bodies.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, StatusCode, header};
use std::fmt;

use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::ApiError;

/// JSON object body; a wrong content type, malformed JSON, a body that is
/// not an object, an unknown, missing or mistyped field and an oversized
/// body each get a clear error.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(UniqueKeys(value)) =
            axum::Json::<UniqueKeys>::from_request(request, state).await?;
        parse_object(value).map(ApiJson)
    }
}

/// Query string, with unknown parameters rejected.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Path parameters.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Decodes an optional JSON body: an empty body gives `T::default()`, any
/// other body follows the same rules as [`ApiJson`].
pub fn optional_json<T: DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "request body must be JSON with Content-Type: application/json",
        ));
    }
    let value = parse_unique_keys(body).map_err(body_error)?;
    parse_object(value)
}

/// Maps a JSON body that [`parse_unique_keys`] rejected to its error: a key
/// given twice is INVALID_ARGUMENT, text that is not JSON MALFORMED_JSON,
/// both with serde's line and column.
pub fn body_error(error: serde_json::Error) -> ApiError {
    if error.is_data() {
        ApiError::invalid_argument(format!("request body: {error}"))
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED_JSON",
            format!("request body is not valid JSON: {error}"),
        )
    }
}

/// Parses JSON text, failing on an object that gives a key twice.
pub fn parse_unique_keys(text: &[u8]) -> serde_json::Result<Value> {
    serde_json::from_slice::<UniqueKeys>(text).map(|UniqueKeys(value)| value)
}

/// A JSON value read with duplicate object keys rejected. `serde_json`
/// keeps the last of two equal keys, so `{"name":"a","name":"b"}` would
/// otherwise be accepted as `"b"`.
struct UniqueKeys(Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(UniqueKeysVisitor)
            .map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key \"{key}\"")));
            }
            let UniqueKeys(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Maps a JSON value onto `T`, naming the field of any mismatch. Only an
/// object is accepted, because serde would otherwise read an array as the
/// struct's fields by position.
fn parse_object<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::invalid_argument(
            "request body: expected a JSON object",
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let cause = error.into_inner();
        if path == "." {
            ApiError::invalid_argument(format!("request body: {cause}"))
        } else {
            ApiError::invalid_argument(format!("{path}: {cause}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Default, Debug)]
    #[serde(deny_unknown_fields)]
    struct Body {
        name: String,
    }

    #[test]
    fn arrays_are_not_objects() {
        let error = parse_object::<Body>(serde_json::json!(["positional"])).unwrap_err();
        assert_eq!(error.code, "INVALID_ARGUMENT");
        assert_eq!(error.detail, "request body: expected a JSON object");
    }

    #[test]
    fn mistyped_field_is_named() {
        let error = parse_object::<Body>(serde_json::json!({ "name": 3 })).unwrap_err();
        assert!(error.detail.starts_with("name: "), "{}", error.detail);
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let error = optional_json::<Body>(&headers, br#"{"name":"a","name":"b"}"#).unwrap_err();
        assert_eq!(error.code, "INVALID_ARGUMENT");
        assert!(
            error.detail.contains("duplicate key \"name\""),
            "{}",
            error.detail
        );
        let nested = br#"{"name":"a","extra":{"x":1,"x":2}}"#;
        let error = optional_json::<Body>(&headers, nested).unwrap_err();
        assert!(
            error.detail.contains("duplicate key \"x\""),
            "{}",
            error.detail
        );
        let body: Body = optional_json(&headers, br#"{"name":"a"}"#).unwrap();
        assert_eq!(body.name, "a");
    }

    #[test]
    fn empty_optional_body_is_default() {
        let body: Body = optional_json(&HeaderMap::new(), b"  ").unwrap();
        assert_eq!(body.name, "");
    }
}
