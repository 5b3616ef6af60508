//! The gateway's one error type and the one mapping from gRPC status codes
//! to HTTP statuses and stable error codes.
//!
//! REST responds with RFC 9457 `application/problem+json`; GraphQL puts the
//! same code in `extensions.code`. Both come from [`ApiError`], so a client
//! sees the same code for the same failure on either facade.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Content type of problem details bodies (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// `Retry-After` of a 503, in seconds.
///
/// NOTE: a fixed hint. The gateway does not know when a backend recovers;
/// an open circuit breaker fails calls fast until its cooldown ends.
const RETRY_AFTER_SECONDS: &str = "1";

/// A failure to report to a client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable SCREAMING_SNAKE code that clients match on.
    pub code: &'static str,
    /// Plain description of what failed and on which value.
    pub detail: String,
}

/// RFC 9457 problem details body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Problem type URI. Always `about:blank`, so `title` is the HTTP
    /// status phrase and `code` distinguishes problems.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub problem_type: String,
    /// Short summary of the problem type.
    #[schema(example = "Invalid argument")]
    pub title: String,
    /// HTTP status code.
    #[schema(example = 400, minimum = 400, maximum = 599)]
    pub status: u16,
    /// Description of what failed and on which value.
    #[schema(example = "email: not a valid address")]
    pub detail: String,
    /// Stable machine-readable code, the same as GraphQL `extensions.code`.
    #[schema(example = "INVALID_ARGUMENT")]
    pub code: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
        }
    }

    pub fn invalid_argument(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", detail)
    }

    /// Maps a backend's gRPC status. Unexpected codes are logged here, once,
    /// and reach the client as a generic internal error.
    pub fn from_status(status: &tonic::Status) -> Self {
        use tonic::Code;
        let message = status.message().to_owned();
        match status.code() {
            Code::NotFound => Self::not_found(message),
            Code::InvalidArgument | Code::OutOfRange => Self::invalid_argument(message),
            Code::AlreadyExists => Self::new(StatusCode::CONFLICT, "ALREADY_EXISTS", message),
            Code::FailedPrecondition => {
                Self::new(StatusCode::CONFLICT, "FAILED_PRECONDITION", message)
            }
            Code::Aborted => Self::new(StatusCode::CONFLICT, "ABORTED", message),
            Code::Unavailable => {
                tracing::warn!(error = %message, "backend unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "a backend service is unavailable, retry later",
                )
            }
            Code::DeadlineExceeded | Code::Cancelled => {
                tracing::warn!(error = %message, "backend call timed out");
                Self::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "DEADLINE_EXCEEDED",
                    "a backend service did not answer in time",
                )
            }
            Code::ResourceExhausted => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED", message)
            }
            Code::PermissionDenied => {
                Self::new(StatusCode::FORBIDDEN, "PERMISSION_DENIED", message)
            }
            Code::Unauthenticated => {
                Self::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
            }
            code => {
                tracing::error!(grpc_code = ?code, error = %message, "backend call failed");
                Self::internal()
            }
        }
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "internal error",
        )
    }

    fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }

    /// Builds the problem details body.
    pub fn problem(&self) -> Problem {
        Problem {
            problem_type: "about:blank".to_owned(),
            title: self.title().to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
        }
    }

    /// Converts to a GraphQL error carrying the code in `extensions.code`.
    pub fn into_graphql(self) -> async_graphql::Error {
        use async_graphql::ErrorExtensions;
        async_graphql::Error::new(self.detail.clone()).extend_with(|_, extensions| {
            extensions.set("code", self.code);
            extensions.set("status", self.status.as_u16());
        })
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        Self::from_status(&status)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.problem())).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "request body must be JSON with Content-Type: application/json",
            ),
            JsonRejection::JsonSyntaxError(error) => Self::new(
                StatusCode::BAD_REQUEST,
                "MALFORMED_JSON",
                format!("request body is not valid JSON: {}", source_text(&error)),
            ),
            JsonRejection::JsonDataError(error) => {
                Self::invalid_argument(format!("request body: {}", source_text(&error)))
            }
            JsonRejection::BytesRejection(error)
                if error.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Self::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PAYLOAD_TOO_LARGE",
                    "request body is larger than the gateway accepts",
                )
            }
            other => Self::new(other.status(), "INVALID_REQUEST", other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        let detail = match &rejection {
            QueryRejection::FailedToDeserializeQueryString(error) => source_text(error),
            other => other.body_text(),
        };
        Self::invalid_argument(format!("query string: {detail}"))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::invalid_argument(format!("path: {}", rejection.body_text()))
    }
}

/// Returns the innermost error message, which names the field and position
/// (for example "unknown field `nmae`, expected ... at line 1 column 8").
fn source_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// Middleware that gives a problem+json body to the bare 413 responses of
/// layers outside the handlers (the GraphQL body limit).
pub async fn problem_for_bare_errors<F>(
    request: axum::extract::Request,
    next: impl FnOnce(axum::extract::Request) -> F,
) -> Response
where
    F: std::future::Future<Output = Response>,
{
    let response = next(request).await;
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_problem {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            "request body is larger than the gateway accepts",
        )
        .into_response();
    }
    response
}

/// Responds to a request that matched no route.
pub async fn route_not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "ROUTE_NOT_FOUND",
        format!("no route for path {}", uri.path()),
    )
}

/// Responds to a request whose route exists but not for its method.
pub async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("method {method} is not allowed on this route"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn grpc_codes_map_to_http() {
        let table = [
            (Code::NotFound, 404, "NOT_FOUND"),
            (Code::InvalidArgument, 400, "INVALID_ARGUMENT"),
            (Code::AlreadyExists, 409, "ALREADY_EXISTS"),
            (Code::FailedPrecondition, 409, "FAILED_PRECONDITION"),
            (Code::Aborted, 409, "ABORTED"),
            (Code::Unavailable, 503, "UNAVAILABLE"),
            (Code::DeadlineExceeded, 504, "DEADLINE_EXCEEDED"),
            (Code::Internal, 500, "INTERNAL"),
            (Code::Unknown, 500, "INTERNAL"),
            (Code::DataLoss, 500, "INTERNAL"),
        ];
        for (code, http, expected) in table {
            let error = ApiError::from_status(&tonic::Status::new(code, "m"));
            assert_eq!(error.status.as_u16(), http, "{code:?}");
            assert_eq!(error.code, expected, "{code:?}");
        }
    }

    #[test]
    fn client_errors_keep_the_backend_message() {
        let error = ApiError::from_status(&tonic::Status::invalid_argument(
            "email: not a valid address",
        ));
        assert_eq!(error.detail, "email: not a valid address");
    }

    #[test]
    fn internal_errors_hide_the_backend_message() {
        let error = ApiError::from_status(&tonic::Status::internal("disk I/O error at /var/db"));
        assert_eq!(error.detail, "internal error");
    }

    #[test]
    fn problem_has_rfc9457_fields() {
        let problem = ApiError::not_found("user not found").problem();
        let json = serde_json::to_value(&problem).unwrap();
        assert_eq!(json["type"], "about:blank");
        assert_eq!(json["title"], "Not Found");
        assert_eq!(json["status"], 404);
        assert_eq!(json["detail"], "user not found");
        assert_eq!(json["code"], "NOT_FOUND");
    }
}
