//! The REST facade under `/api/v1`, its OpenAPI 3.1 document at
//! `/api/openapi.json` and the interactive API page at `/api/docs`.

pub(crate) mod extract;
mod headers;
mod openapi;
pub mod orders;
pub mod schemas;
pub mod users;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::api::Api;
use crate::auth::Authenticator;
use openapi::ApiDoc;

/// Path of the OpenAPI document.
pub const OPENAPI_PATH: &str = "/api/openapi.json";
/// Path of the interactive API page.
pub const DOCS_PATH: &str = "/api/docs";

/// Content Security Policy of the Swagger UI page. Its scripts and styles
/// are files that the gateway serves, but Swagger UI sets inline `style`
/// attributes and shows `data:` images.
const DOCS_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; \
     script-src 'self'; \
     style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; \
     connect-src 'self'; \
     base-uri 'none'; \
     form-action 'none'; \
     frame-ancestors 'none'";

/// Builds the REST routes and the documentation pages.
pub fn router(api: Api, authenticator: Authenticator) -> Router {
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
        .route_layer(axum::middleware::from_fn_with_state(
            authenticator,
            crate::auth::authenticate,
        ))
        .with_state(api);

    let docs = Router::from(SwaggerUi::new(DOCS_PATH).url(OPENAPI_PATH, ApiDoc::openapi())).layer(
        SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            docs_page_policy as fn(&Response) -> Option<HeaderValue>,
        ),
    );
    routes.merge(docs)
}

/// Returns the policy of the Swagger UI page for its HTML responses. Its
/// other files get the gateway's default policy.
fn docs_page_policy(response: &Response) -> Option<HeaderValue> {
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/html"));
    is_html.then(|| HeaderValue::from_static(DOCS_CONTENT_SECURITY_POLICY))
}
