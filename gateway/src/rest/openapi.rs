//! The OpenAPI document of the REST facade.
//!
//! The handlers' `utoipa::path` attributes list each operation's own
//! responses. [`SharedResponses`] adds the ones that every operation, or
//! every operation with a body, can return, and gives the response headers
//! their schemas.

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{SchemaType, Type};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder, Schema,
};
use utoipa::{Modify, ToSchema};

use super::{orders, schemas, users};
use crate::error::{PROBLEM_JSON, Problem};
use crate::inputs::{OrderOrderField, UserOrderField};
use crate::model::SortDirection;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Lintas gateway REST API",
        description = "Users and orders over REST. Errors are RFC 9457 problem details whose `code` matches GraphQL `extensions.code`. Every int64 is a decimal string in responses; requests accept a JSON integer or a decimal string.",
    ),
    paths(
        users::list, users::create, users::get, users::update, users::delete, users::orders, users::metrics,
        orders::list, orders::create, orders::get, orders::change_status, orders::cancel, orders::pay, orders::metrics,
    ),
    components(schemas(SortDirection, UserOrderField, OrderOrderField)),
    tags(
        (name = "users", description = "User accounts"),
        (name = "orders", description = "Orders and payments"),
        (name = "metrics", description = "Business numbers"),
    ),
    modifiers(&SharedResponses, &OptionalBodies, &BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

/// A response that many operations share, kept once under
/// `components/responses`.
struct Shared {
    status: &'static str,
    name: &'static str,
    description: &'static str,
    /// Whether only operations with a request body return it.
    body_only: bool,
}

const SHARED: [Shared; 9] = [
    Shared {
        status: "408",
        name: "RequestTimeout",
        description: "The request body did not arrive within the request's time budget (REQUEST_TIMEOUT_MS) and a second. Code REQUEST_TIMEOUT; the connection is closed.",
        body_only: true,
    },
    Shared {
        status: "401",
        name: "Unauthenticated",
        description: "The request has no bearer token, or its token is malformed, expired, not valid yet, for another issuer or audience, or badly signed. Code UNAUTHENTICATED; `WWW-Authenticate` says what was wrong.",
        body_only: false,
    },
    Shared {
        status: "403",
        name: "Forbidden",
        description: "The token is valid but its holder may not do this: a regular user touches only their own user record and orders; the rest needs the `admin` role. Code FORBIDDEN.",
        body_only: false,
    },
    Shared {
        status: "413",
        name: "PayloadTooLarge",
        description: "The request body is larger than the gateway accepts (64 KiB unless MAX_BODY_BYTES sets another limit). Code PAYLOAD_TOO_LARGE.",
        body_only: true,
    },
    Shared {
        status: "415",
        name: "UnsupportedMediaType",
        description: "The request has a body without `Content-Type: application/json`. Code UNSUPPORTED_MEDIA_TYPE.",
        body_only: true,
    },
    Shared {
        status: "429",
        name: "TooManyRequests",
        description: "The client sent more requests than its rate limit allows (RATE_LIMIT_PER_SECOND, off by default). Code RATE_LIMITED. Retry after `Retry-After` seconds.",
        body_only: false,
    },
    Shared {
        status: "500",
        name: "InternalError",
        description: "An unexpected failure; the gateway logs the cause. Code INTERNAL.",
        body_only: false,
    },
    Shared {
        status: "503",
        name: "ServiceUnavailable",
        description: "A backend service is unavailable, busy or behind an open circuit breaker (UNAVAILABLE), the keys that check tokens could not be loaded (UNAVAILABLE), or the gateway is serving as many requests as MAX_IN_FLIGHT_REQUESTS allows (OVERLOADED). Safe to retry after `Retry-After` seconds: writes with an Idempotency-Key apply once.",
        body_only: false,
    },
    Shared {
        status: "504",
        name: "GatewayTimeout",
        description: "A backend service did not respond within the request's time budget. Code DEADLINE_EXCEEDED. A write may or may not have been applied: retry it with the same Idempotency-Key.",
        body_only: false,
    },
];

/// Adds the shared error responses to every operation and sets the schemas
/// of the `ETag`, `Location` and `Retry-After` response headers.
struct SharedResponses;

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for shared in &SHARED {
            let mut response = ResponseBuilder::new()
                .description(shared.description)
                .content(PROBLEM_JSON, problem_content());
            if matches!(shared.status, "429" | "503") {
                response = response.header("Retry-After", header(schemas::retry_after()));
            }
            if shared.status == "401" {
                response = response.header("WWW-Authenticate", header(schemas::www_authenticate()));
            }
            components
                .responses
                .insert(shared.name.to_owned(), response.build().into());
        }

        for (path, item) in openapi.paths.paths.iter_mut() {
            let collection = path.trim_start_matches("/api/v1/");
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.put,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                add_shared_responses(operation);
                set_header_schemas(operation, collection);
            }
        }
    }
}

fn add_shared_responses(operation: &mut Operation) {
    let has_body = operation.request_body.is_some();
    for shared in SHARED.iter().filter(|shared| has_body || !shared.body_only) {
        operation
            .responses
            .responses
            .entry(shared.status.to_owned())
            .or_insert_with(|| {
                RefOr::Ref(Ref::new(format!("#/components/responses/{}", shared.name)))
            });
    }
}

/// Replaces the plain string schemas of known response headers, which the
/// path attributes cannot express, with their patterns.
fn set_header_schemas(operation: &mut Operation, collection: &str) {
    let collection = collection.split('/').next().unwrap_or(collection);
    for response in operation.responses.responses.values_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        for (name, header) in response.headers.iter_mut() {
            let schema = match name.to_ascii_lowercase().as_str() {
                "etag" => schemas::etag(),
                "location" => schemas::location(collection),
                "retry-after" => schemas::retry_after(),
                _ => continue,
            };
            header.schema = schema.into();
        }
    }
}

fn header(schema: utoipa::openapi::Object) -> utoipa::openapi::header::Header {
    HeaderBuilder::new().schema(schema).build()
}

fn problem_content() -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(RefOr::Ref(Ref::from_schema_name(Problem::name()))))
        .build()
}

/// Declares the bearer JWT that every operation requires.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "A JWT signed with HS256, RS256 or ES256. The `roles` claim (or the one JWT_ROLES_CLAIM names) holding `admin` grants everything; otherwise `sub` must be the caller's user id.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// Removes `null` from the schema of an optional request body: such an
/// operation takes an empty body, and a JSON `null` is rejected like any
/// other non-object. utoipa writes an `Option<T>` body as `oneOf: [null, T]`.
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.post, &mut item.patch, &mut item.put];
            for operation in operations.into_iter().flatten() {
                let Some(body) = operation.request_body.as_mut() else {
                    continue;
                };
                if body.required == Some(Required::True) {
                    continue;
                }
                for content in body.content.values_mut() {
                    if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
                        let mut items = one_of.items.iter().filter(|item| !is_null(item));
                        if let (Some(only), None) = (items.next(), items.next()) {
                            content.schema = Some(only.clone());
                        }
                    }
                }
            }
        }
    }
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(object))
        if object.schema_type == SchemaType::Type(Type::Null))
}
