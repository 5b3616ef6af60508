//! REST routes of users: `/api/v1/users...` and `/api/v1/metrics/users`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::Api;
use crate::error::{ApiError, Problem};
use crate::inputs::{CreateUserInput, PageParams, UpdateUserInput, UserListParams};
use crate::model::{User, UserMetrics};
use crate::request_id::RequestId;

use super::orders::OrderPage;

/// One page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    pub users: Vec<User>,
    /// Pass as `page_token` to get the next page; empty on the last page.
    pub next_page_token: String,
}

/// List users, filtered and sorted.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserListParams),
    responses((status = 200, body = UserPage), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(api): State<Api>,
    RequestId(request_id): RequestId,
    ApiQuery(params): ApiQuery<UserListParams>,
) -> Result<Json<UserPage>, ApiError> {
    let page = api.list_users(&request_id, params).await?;
    Ok(Json(UserPage {
        users: page.items,
        next_page_token: page.next_page_token,
    }))
}

/// Create a user.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUserInput,
    responses((status = 201, body = User, headers(("location" = String, description = "URL of the new user"))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "Email address already in use")))]
pub async fn create(
    State(api): State<Api>,
    RequestId(request_id): RequestId,
    ApiJson(input): ApiJson<CreateUserInput>,
) -> Result<impl IntoResponse, ApiError> {
    let user = api.create_user(&request_id, input).await?;
    let location = format!("/api/v1/users/{}", user.id.as_str());
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(user),
    ))
}

/// Get a user by id.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path, description = "User UUID")),
    responses((status = 200, body = User), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(api): State<Api>,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(api.get_user(&request_id, &id).await?))
}

/// Change some fields of a user.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path, description = "User UUID")),
    request_body = UpdateUserInput,
    responses((status = 200, body = User), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn update(
    State(api): State<Api>,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<UpdateUserInput>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(api.update_user(&request_id, &id, input).await?))
}

/// Delete a user.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path, description = "User UUID")),
    responses((status = 204), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(api): State<Api>,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    api.delete_user(&request_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List a user's orders, newest first.
#[utoipa::path(get, path = "/api/v1/users/{id}/orders", tag = "orders",
    params(("id" = String, Path, description = "User UUID"), PageParams),
    responses((status = 200, body = OrderPage), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn orders(
    State(api): State<Api>,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<OrderPage>, ApiError> {
    let page = api
        .orders_by_user(&request_id, &id, params.page_size, params.page_token)
        .await?;
    Ok(Json(OrderPage {
        orders: page.items,
        next_page_token: page.next_page_token,
    }))
}

/// Business numbers about users.
#[utoipa::path(get, path = "/api/v1/metrics/users", tag = "metrics", responses((status = 200, body = UserMetrics)))]
pub async fn metrics(
    State(api): State<Api>,
    RequestId(request_id): RequestId,
) -> Result<Json<UserMetrics>, ApiError> {
    Ok(Json(api.user_metrics(&request_id).await?))
}
