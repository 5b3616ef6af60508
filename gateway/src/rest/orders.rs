//! REST routes of orders: `/api/v1/orders...` and `/api/v1/metrics/orders`.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiPath, ApiQuery, optional_json};
use super::headers::{IdempotencyKeyHeader, idempotency_key};
use crate::api::Api;
use crate::auth::Call;
use crate::error::{ApiError, Problem};
use crate::inputs::{
    CancelInput, CreateOrderInput, OrderListParams, PaymentInput, StatusChangeInput,
};
use crate::model::{Order, OrderMetrics, Payment};

/// One page of orders.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    /// Pass as `page_token` to get the next page; empty on the last page.
    pub next_page_token: String,
}

/// Outcome of a payment attempt. A declined charge is a FAILED payment and
/// leaves the order PENDING.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentResult {
    pub order: Order,
    pub payment: Payment,
}

/// List orders, filtered and sorted.
#[utoipa::path(get, path = "/api/v1/orders", operation_id = "list_orders", tag = "orders", params(OrderListParams),
    responses(
        (status = 200, description = "One page of orders", body = OrderPage),
        (status = 400, description = "A parameter is invalid, `created_before` is not later than `created_after`, or `page_token` is malformed, expired or was issued for other filters. Code INVALID_ARGUMENT.", body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(api): State<Api>,
    call: Call,
    ApiQuery(params): ApiQuery<OrderListParams>,
) -> Result<Json<OrderPage>, ApiError> {
    let page = api.list_orders(&call, params).await?;
    Ok(Json(OrderPage {
        orders: page.items,
        next_page_token: page.next_page_token,
    }))
}

/// Place an order for an active user.
#[utoipa::path(post, path = "/api/v1/orders", operation_id = "create_order", tag = "orders",
    params(IdempotencyKeyHeader), request_body = CreateOrderInput,
    responses(
        (status = 201, description = "The new PENDING order; a retry with the same Idempotency-Key and body returns the first order", body = Order,
            headers(("Location" = String, description = "Path of the new order"))),
        (status = 400, description = "A field or the Idempotency-Key is invalid (INVALID_ARGUMENT), or the body is not JSON (MALFORMED_JSON).", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The user does not exist or is SUSPENDED, or the Idempotency-Key was used with another body. Code FAILED_PRECONDITION.", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(api): State<Api>,
    call: Call,
    headers: HeaderMap,
    ApiJson(input): ApiJson<CreateOrderInput>,
) -> Result<impl IntoResponse, ApiError> {
    let key = idempotency_key(&headers)?;
    let order = api.create_order(&call, input, key).await?;
    let location = format!("/api/v1/orders/{}", order.id.as_str());
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(order),
    ))
}

/// Get an order by id.
#[utoipa::path(get, path = "/api/v1/orders/{id}", operation_id = "get_order", tag = "orders", params(("id" = uuid::Uuid, Path, description = "Order UUID")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 400, description = "The id is not a UUID. Code INVALID_ARGUMENT.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No order has this id. Code NOT_FOUND.", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(api): State<Api>,
    call: Call,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Order>, ApiError> {
    Ok(Json(api.get_order(&call, &id).await?))
}

/// Move an order to SHIPPED, DELIVERED or CANCELLED.
#[utoipa::path(post, path = "/api/v1/orders/{id}/status", operation_id = "update_order_status", tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "Order UUID")), request_body = StatusChangeInput,
    responses(
        (status = 200, description = "The order in its new status", body = Order),
        (status = 400, description = "The id or the status is invalid (INVALID_ARGUMENT), or the body is not JSON (MALFORMED_JSON).", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No order has this id. Code NOT_FOUND.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order's status does not allow this change (FAILED_PRECONDITION), or a concurrent write changed the order first (ABORTED).", body = Problem, content_type = "application/problem+json")))]
pub async fn change_status(
    State(api): State<Api>,
    call: Call,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<StatusChangeInput>,
) -> Result<Json<Order>, ApiError> {
    Ok(Json(
        api.update_order_status(&call, &id, input.status).await?,
    ))
}

/// Cancel a PENDING or PAID order; a PAID order is refunded.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", operation_id = "cancel_order", tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "Order UUID")),
    request_body(content = Option<CancelInput>, description = "Optional; an empty body cancels without a reason"),
    responses(
        (status = 200, description = "The CANCELLED order; `refunded` is true when a payment was refunded", body = Order),
        (status = 400, description = "The id or the reason is invalid (INVALID_ARGUMENT), or the body is not JSON (MALFORMED_JSON).", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No order has this id. Code NOT_FOUND.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order is SHIPPED, DELIVERED or already CANCELLED (FAILED_PRECONDITION), or a concurrent write changed it first (ABORTED).", body = Problem, content_type = "application/problem+json")))]
pub async fn cancel(
    State(api): State<Api>,
    call: Call,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<Order>, ApiError> {
    let body = body.map_err(|rejection| ApiError::from(JsonRejection::from(rejection)))?;
    let input: CancelInput = optional_json(&headers, &body)?;
    Ok(Json(api.cancel_order(&call, &id, input.reason).await?))
}

/// Pay a PENDING order.
#[utoipa::path(post, path = "/api/v1/orders/{id}/payments", operation_id = "process_payment", tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "Order UUID"), IdempotencyKeyHeader), request_body = PaymentInput,
    responses(
        (status = 200, description = "Payment attempted: the order is PAID when `payment.status` is SUCCEEDED and stays PENDING when it is FAILED", body = PaymentResult),
        (status = 400, description = "A field or the Idempotency-Key is invalid, or the amount or currency differs from the order's (INVALID_ARGUMENT); or the body is not JSON (MALFORMED_JSON).", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No order has this id. Code NOT_FOUND.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order is not PENDING, the Idempotency-Key was used with another body (FAILED_PRECONDITION), or a concurrent write changed the order first (ABORTED).", body = Problem, content_type = "application/problem+json")))]
pub async fn pay(
    State(api): State<Api>,
    call: Call,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<PaymentInput>,
) -> Result<Json<PaymentResult>, ApiError> {
    let key = idempotency_key(&headers)?;
    let (order, payment) = api.process_payment(&call, &id, input, key).await?;
    Ok(Json(PaymentResult { order, payment }))
}

/// Business numbers about orders and payments.
#[utoipa::path(get, path = "/api/v1/metrics/orders", operation_id = "get_order_metrics", tag = "metrics",
    responses((status = 200, description = "Order counts, revenue and payment outcomes", body = OrderMetrics)))]
pub async fn metrics(State(api): State<Api>, call: Call) -> Result<Json<OrderMetrics>, ApiError> {
    Ok(Json(api.order_metrics(&call).await?))
}
