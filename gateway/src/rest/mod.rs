//! The REST facade under `/api/v1`, its OpenAPI 3.1 document at
//! `/api/openapi.json` and the interactive API page at `/api/docs`.

mod extract;
mod headers;
pub mod orders;
pub mod users;

use axum::Router;
use axum::routing::{get, post};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::api::Api;

/// Path of the OpenAPI document.
pub const OPENAPI_PATH: &str = "/api/openapi.json";
/// Path of the interactive API page.
pub const DOCS_PATH: &str = "/api/docs";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lintas gateway REST API",
        description = "Users and orders over REST. Errors are RFC 9457 problem details whose `code` matches GraphQL `extensions.code`. Every int64 is a decimal string.",
    ),
    paths(
        users::list, users::create, users::get, users::update, users::delete, users::orders, users::metrics,
        orders::list, orders::create, orders::get, orders::change_status, orders::cancel, orders::pay, orders::metrics,
    ),
    tags(
        (name = "users", description = "User accounts"),
        (name = "orders", description = "Orders and payments"),
        (name = "metrics", description = "Business numbers"),
    )
)]
pub struct ApiDoc;

/// Builds the REST routes and the documentation pages.
pub fn router(api: Api) -> Router {
    let routes = Router::new()
        .route("/api/v1/users", get(users::list).post(users::create))
        .route(
            "/api/v1/users/{id}",
            get(users::get).patch(users::update).delete(users::delete),
        )
        .route("/api/v1/users/{id}/orders", get(users::orders))
        .route("/api/v1/orders", get(orders::list).post(orders::create))
        .route("/api/v1/orders/{id}", get(orders::get))
        .route("/api/v1/orders/{id}/status", post(orders::change_status))
        .route("/api/v1/orders/{id}/cancel", post(orders::cancel))
        .route("/api/v1/orders/{id}/payments", post(orders::pay))
        .route("/api/v1/metrics/users", get(users::metrics))
        .route("/api/v1/metrics/orders", get(orders::metrics))
        .with_state(api);

    routes.merge(SwaggerUi::new(DOCS_PATH).url(OPENAPI_PATH, ApiDoc::openapi()))
}
