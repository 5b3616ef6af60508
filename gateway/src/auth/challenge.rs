//! Responses to requests without valid credentials: 401 with a
//! `WWW-Authenticate` challenge (RFC 6750), as problem+json on REST and as
//! a GraphQL error on `/graphql`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ApiError;

/// Realm named in every challenge.
const REALM: &str = "lintas";

/// What was wrong with the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not `Bearer <token>`.
    MalformedHeader,
    /// A bearer token that failed verification.
    InvalidToken,
}

/// Which facade the response is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Facade {
    Rest,
    Graphql,
}

/// Builds the 401 response.
pub fn unauthorized(facade: Facade, problem: Problem, detail: &str) -> Response {
    let challenge = match problem {
        Problem::Missing => format!("Bearer realm=\"{REALM}\""),
        Problem::MalformedHeader => {
            format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_request\", error_description=\"{}\"",
                quoted(detail)
            )
        }
        Problem::InvalidToken => {
            format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
                quoted(detail)
            )
        }
    };
    let error = ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", detail);
    let mut response = respond(facade, error);
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// Builds the response to an error found before any handler ran.
pub fn respond(facade: Facade, error: ApiError) -> Response {
    match facade {
        Facade::Rest => error.into_response(),
        Facade::Graphql => {
            let body = json!({
                "errors": [{ "message": error.detail, "extensions": { "code": error.code } }]
            });
            (error.status, Json(body)).into_response()
        }
    }
}

/// Keeps a description safe inside a quoted header parameter: RFC 6750
/// allows visible ASCII except `"` and `\`.
fn quoted(detail: &str) -> String {
    detail
        .chars()
        .map(|char| match char {
            '"' | '\\' => '\'',
            ' '..='~' => char,
            _ => '?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_names_the_error() {
        let response = unauthorized(Facade::Rest, Problem::InvalidToken, "token has \"expired\"");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"lintas\", error=\"invalid_token\", error_description=\"token has 'expired'\""
        );
        let missing = unauthorized(Facade::Graphql, Problem::Missing, "no token");
        assert_eq!(
            missing.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"lintas\""
        );
    }
}
