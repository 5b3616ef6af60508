//! Entry points for the fuzz targets in `gateway/fuzz`, compiled only with
//! the `fuzzing` feature. Each one runs the code that a handler runs on the
//! same input. Nothing here is a stable API.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::graphql::{self, GatewaySchema, QueryLimits};
use crate::inputs::{
    CancelInput, CreateOrderInput, CreateUserInput, PaymentInput, StatusChangeInput,
    UpdateUserInput,
};
use crate::rest::extract::{ApiJson, optional_json};

/// A JSON request body that a REST write handler decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteBody {
    /// `POST /api/v1/users`
    CreateUser,
    /// `PATCH /api/v1/users/{id}`
    UpdateUser,
    /// `POST /api/v1/orders`
    CreateOrder,
    /// `POST /api/v1/orders/{id}/payments`
    Payment,
    /// `POST /api/v1/orders/{id}/status`
    StatusChange,
    /// `POST /api/v1/orders/{id}/cancel`, whose body may be empty.
    Cancel,
}

impl WriteBody {
    pub const ALL: [Self; 6] = [
        Self::CreateUser,
        Self::UpdateUser,
        Self::CreateOrder,
        Self::Payment,
        Self::StatusChange,
        Self::Cancel,
    ];
}

/// An error response as the client receives it.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub status: StatusCode,
    /// The problem's `code`, the same as GraphQL `extensions.code`.
    pub code: &'static str,
    /// The problem's `detail`.
    pub detail: String,
}

impl From<ApiError> for Rejection {
    fn from(error: ApiError) -> Self {
        Self {
            status: error.status,
            code: error.code,
            detail: error.detail,
        }
    }
}

/// Decodes `body`, sent with `Content-Type: application/json`, as the
/// handler of `kind` does before it calls a backend.
pub fn decode_write_body(kind: WriteBody, body: &[u8]) -> Result<(), Rejection> {
    let decoded = match kind {
        WriteBody::CreateUser => decode_json::<CreateUserInput>(body),
        WriteBody::UpdateUser => decode_json::<UpdateUserInput>(body),
        WriteBody::CreateOrder => decode_json::<CreateOrderInput>(body),
        WriteBody::Payment => decode_json::<PaymentInput>(body),
        WriteBody::StatusChange => decode_json::<StatusChangeInput>(body),
        WriteBody::Cancel => optional_json::<CancelInput>(&json_headers(), body).map(drop),
    };
    decoded.map_err(Rejection::from)
}

/// Runs the `ApiJson` extractor of the handlers on `body`.
fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<(), ApiError> {
    let mut request = Request::new(Body::from(body.to_vec()));
    *request.method_mut() = Method::POST;
    *request.headers_mut() = json_headers();
    // The body is in memory, so the extractor completes on its first poll.
    futures::executor::block_on(ApiJson::<T>::from_request(request, &())).map(drop)
}

fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers
}

/// The gateway's GraphQL schema with its limits, stopped after validation
/// so that no resolver runs and no backend is needed.
pub struct GraphqlValidator {
    schema: GatewaySchema,
    checks: graphql::DocumentChecks,
}

impl GraphqlValidator {
    pub fn new(limits: QueryLimits) -> Self {
        let schema = graphql::schema_builder(limits)
            .extension(StopBeforeExecution)
            .finish();
        Self {
            schema,
            checks: graphql::DocumentChecks::new(limits),
        }
    }

    /// Takes `request` through the handler's steps that read its document:
    /// the check before parsing, the document checks, the operation span,
    /// and the schema's parsing, limits and validation. A document rejected before parsing
    /// gets the REST-style error the handler sends. Any other gets the
    /// GraphQL response, whose errors carry `extensions.code`.
    pub fn check(
        &self,
        request: async_graphql::Request,
    ) -> Result<async_graphql::Response, Rejection> {
        graphql::check_document(&request.query)?;
        let mut rejection = None;
        if let Ok(document) = async_graphql::parser::parse_query(&request.query) {
            rejection = self.checks.check(&document, &request.query).err();
            let _span = graphql::operation_span::span_for(&document, &request);
            let _fields = graphql::operation_span::root_fields(&document, &request);
            let _target = graphql::operation_span::target_argument(&document, &request);
        }
        let mut response = match rejection {
            Some(error) => async_graphql::Response::from_errors(vec![error]),
            // Resolvers are never reached, so nothing waits on a runtime.
            None => futures::executor::block_on(self.schema.execute(request)),
        };
        graphql::label_validation_errors(&mut response);
        Ok(response)
    }
}

/// Ends every request after validation with an empty response.
struct StopBeforeExecution;

impl ExtensionFactory for StopBeforeExecution {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(StopBeforeExecution)
    }
}

#[async_trait::async_trait]
impl Extension for StopBeforeExecution {
    async fn execute(
        &self,
        _ctx: &ExtensionContext<'_>,
        _operation_name: Option<&str>,
        _next: NextExecute<'_>,
    ) -> async_graphql::Response {
        async_graphql::Response::new(async_graphql::Value::Null)
    }
}
