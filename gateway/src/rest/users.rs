//! REST routes of users: `/api/v1/users...` and `/api/v1/metrics/users`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::headers::{
    IdempotencyKeyHeader, IfMatchHeader, etag, idempotency_key, if_match, precondition_failed,
};
use crate::api::Api;
use crate::auth::Call;
use crate::error::{ApiError, Problem};
use crate::inputs::{CreateUserInput, PageParams, UpdateUserInput, UserListParams};
use crate::model::{User, UserMetrics};

use super::orders::OrderPage;

/// One page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    pub users: Vec<User>,
    /// Pass as `page_token` to get the next page; empty on the last page.
    pub next_page_token: String,
}

/// List users, filtered and sorted.
#[utoipa::path(get, path = "/api/v1/users", operation_id = "list_users", tag = "users", params(UserListParams),
    responses(
        (status = 200, description = "One page of users", body = UserPage),
        (status = 400, description = "A parameter is invalid, or `page_token` is malformed, expired or was issued for other filters. Code INVALID_ARGUMENT.", body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(api): State<Api>,
    call: Call,
    ApiQuery(params): ApiQuery<UserListParams>,
) -> Result<Json<UserPage>, ApiError> {
    let page = api.list_users(&call, params).await?;
    Ok(Json(UserPage {
        users: page.items,
        next_page_token: page.next_page_token,
    }))
}

/// Create a user.
#[utoipa::path(post, path = "/api/v1/users", operation_id = "create_user", tag = "users",
    params(IdempotencyKeyHeader), request_body = CreateUserInput,
    responses(
        (status = 201, description = "The new user; a retry with the same Idempotency-Key and body returns the first result", body = User,
            headers(("Location" = String, description = "Path of the new user"), ("ETag" = String, description = "The user's version, for If-Match"))),
        (status = 400, description = "A field or the Idempotency-Key is invalid (INVALID_ARGUMENT), or the body is not JSON (MALFORMED_JSON).", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The email address is in use (ALREADY_EXISTS), or the Idempotency-Key was used with another body (FAILED_PRECONDITION).", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(api): State<Api>,
    call: Call,
    headers: HeaderMap,
    ApiJson(input): ApiJson<CreateUserInput>,
) -> Result<impl IntoResponse, ApiError> {
    let key = idempotency_key(&headers)?;
    let user = api.create_user(&call, input, key).await?;
    let location = format!("/api/v1/users/{}", user.id.as_str());
    let tag = etag(user.version.0);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        [(header::ETAG, tag)],
        Json(user),
    ))
}

/// Get a user by id.
#[utoipa::path(get, path = "/api/v1/users/{id}", operation_id = "get_user", tag = "users", params(("id" = uuid::Uuid, Path, description = "User UUID")),
    responses(
        (status = 200, description = "The user", body = User, headers(("ETag" = String, description = "The user's version, for If-Match"))),
        (status = 400, description = "The id is not a UUID. Code INVALID_ARGUMENT.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No user has this id. Code NOT_FOUND.", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(api): State<Api>,
    call: Call,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let user = api.get_user(&call, &id).await?;
    Ok(([(header::ETAG, etag(user.version.0))], Json(user)))
}

/// Change some fields of a user.
#[utoipa::path(patch, path = "/api/v1/users/{id}", operation_id = "update_user", tag = "users",
    params(("id" = uuid::Uuid, Path, description = "User UUID"), IfMatchHeader), request_body = UpdateUserInput,
    responses(
        (status = 200, description = "The changed user", body = User, headers(("ETag" = String, description = "The new version"))),
        (status = 400, description = "The id, a field or If-Match is invalid (INVALID_ARGUMENT), or the body is not JSON (MALFORMED_JSON).", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No user has this id. Code NOT_FOUND.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The email address is in use (ALREADY_EXISTS), or a concurrent write changed the user first (ABORTED): read it again and retry.", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match names another version than the user's. Code PRECONDITION_FAILED.", body = Problem, content_type = "application/problem+json")))]
pub async fn update(
    State(api): State<Api>,
    call: Call,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<UpdateUserInput>,
) -> Result<impl IntoResponse, ApiError> {
    let expected_version = if_match(&headers)?;
    let user = api
        .update_user(&call, &id, input, expected_version)
        .await
        .map_err(|error| precondition_failed(error, expected_version.is_some()))?;
    Ok(([(header::ETAG, etag(user.version.0))], Json(user)))
}

/// Delete a user who has no open order.
#[utoipa::path(delete, path = "/api/v1/users/{id}", operation_id = "delete_user", tag = "users",
    params(("id" = uuid::Uuid, Path, description = "User UUID"), IfMatchHeader),
    responses(
        (status = 204, description = "The user is deleted"),
        (status = 400, description = "The id or If-Match is invalid. Code INVALID_ARGUMENT.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No user has this id. Code NOT_FOUND.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The user has PENDING, PAID or SHIPPED orders (FAILED_PRECONDITION), or a concurrent write changed the user first (ABORTED).", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match names another version than the user's. Code PRECONDITION_FAILED.", body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(api): State<Api>,
    call: Call,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let expected_version = if_match(&headers)?;
    api.delete_user(&call, &id, expected_version)
        .await
        .map_err(|error| precondition_failed(error, expected_version.is_some()))?;
    Ok(StatusCode::NO_CONTENT)
}

/// List a user's orders, newest first.
#[utoipa::path(get, path = "/api/v1/users/{id}/orders", operation_id = "list_user_orders", tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "User UUID"), PageParams),
    responses(
        (status = 200, description = "One page of the user's orders, newest first", body = OrderPage),
        (status = 400, description = "The id or a parameter is invalid, or `page_token` is malformed, expired or was issued for another listing. Code INVALID_ARGUMENT.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No user has this id. Code NOT_FOUND.", body = Problem, content_type = "application/problem+json")))]
pub async fn orders(
    State(api): State<Api>,
    call: Call,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<OrderPage>, ApiError> {
    let page = api
        .orders_by_user(&call, &id, params.page_size, params.page_token)
        .await?;
    Ok(Json(OrderPage {
        orders: page.items,
        next_page_token: page.next_page_token,
    }))
}

/// Business numbers about users.
#[utoipa::path(get, path = "/api/v1/metrics/users", operation_id = "get_user_metrics", tag = "metrics",
    responses((status = 200, description = "User counts", body = UserMetrics)))]
pub async fn metrics(State(api): State<Api>, call: Call) -> Result<Json<UserMetrics>, ApiError> {
    Ok(Json(api.user_metrics(&call).await?))
}
