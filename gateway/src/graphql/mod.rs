//! The GraphQL facade at `/graphql`: POST and GET per the GraphQL-over-HTTP
//! specification, and the GraphiQL playground (`playground`) for browsers
//! that GET the same path.

mod checks;
mod field_merge;
mod key_order;
mod limits;
mod literal_keys;
mod loaders;
mod mutation;
mod nulls;
pub(crate) mod operation_span;
pub mod playground;
mod prefetch;
mod query;
mod query_string;
mod selections;

use async_graphql::ParseRequestError;
use async_graphql::dataloader::{DataLoader, HashMapCache};
use async_graphql::{Context, EmptySubscription, Schema, SchemaBuilder};
use async_graphql_axum::GraphQLResponse;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::{IntoResponse, Response};

use tracing::Instrument;

use crate::api::Api;
use crate::auth::Call;
use crate::error::ApiError;

pub use checks::DocumentChecks;
use loaders::{OrdersLoader, UserLoader};
use mutation::Mutation;
use query::Query;

pub type GatewaySchema = Schema<Query, Mutation, EmptySubscription>;

/// How long a DataLoader waits for more keys before it calls the backend.
/// async-graphql's 1 ms default split one page's keys into two batches now
/// and then on a loaded machine; 5 ms adds that much latency per level of
/// nesting in exchange for one call per level.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(5);

/// Path of the GraphQL endpoint and playground.
pub const GRAPHQL_PATH: &str = "/graphql";

/// Bounds on a GraphQL document, checked before anything runs.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    pub max_depth: usize,
    /// Each field costs 1, multiplied by the page size on list fields.
    pub max_complexity: usize,
    pub max_aliases: usize,
    pub max_directives: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        // A page of 100 users with 10 orders each and every field selected
        // stays well under the complexity limit.
        Self {
            // GraphiQL's introspection query nests `ofType` nine levels deep
            // inside `__schema { types { fields { type ... } } }`.
            max_depth: 16,
            max_complexity: 50_000,
            max_aliases: 30,
            max_directives: 30,
        }
    }
}

/// State of the GraphQL handler.
#[derive(Clone)]
pub struct GraphqlState {
    pub schema: GatewaySchema,
    /// Limits that the schema does not check, and null propagation.
    pub checks: std::sync::Arc<DocumentChecks>,
    pub api: Api,
}

/// Builds the schema with its limits.
pub fn schema(api: Api, limits: QueryLimits) -> GatewaySchema {
    schema_builder(limits).data(api).finish()
}

/// Starts the schema with its limits and without the data its resolvers
/// read.
pub fn schema_builder(limits: QueryLimits) -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query, Mutation, EmptySubscription)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_directives(limits.max_directives)
        .limit_recursive_depth(limits::MAX_RECURSIVE_DEPTH)
}

/// Rejects a document that must not reach the parser. The parser recurses
/// once per nested list or object value, and a few thousand levels overflow
/// the stack and abort the process, so deep nesting is rejected before
/// anything parses the document.
pub fn check_document(query: &str) -> Result<(), ApiError> {
    if limits::nesting_depth(query) > limits::MAX_NESTING {
        return Err(ApiError::invalid_argument(format!(
            "query: brackets nest deeper than {} levels",
            limits::MAX_NESTING
        )));
    }
    Ok(())
}

/// Serves GraphiQL to a browser's plain GET, and executes everything else.
/// axum routes HEAD here too and drops the response body, so HEAD is
/// handled exactly like GET.
pub async fn handle(
    State(state): State<GraphqlState>,
    call: Call,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let is_get = matches!(method, Method::GET | Method::HEAD);
    if is_get && wants_html(&headers) {
        return playground::page();
    }
    if method == Method::POST && !is_json(&headers) {
        return ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "GraphQL requests must be JSON with Content-Type: application/json",
        )
        .into_response();
    }
    // GET and HEAD carry the request in the query string, and a HEAD
    // request's body is not read.
    let request = if is_get {
        query_string::parse(&uri)
    } else {
        read_body(body).await
    };
    let request = match request {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    if let Err(error) = check_document(&request.query) {
        return error.into_response();
    }
    // Parsed once here for the span and the audit line, then handed to the
    // schema. A document that does not parse is left to the schema, which
    // reports the syntax error.
    let document = async_graphql::parser::parse_query(&request.query).ok();
    let rejection = document
        .as_ref()
        .and_then(|document| state.checks.check(document, &request.query).err());
    let mutation = document
        .as_ref()
        .is_some_and(|document| operation_span::is_mutation(document, &request));
    if is_get && mutation {
        let mut response = ApiError::new(
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "mutations must be sent with POST",
        )
        .into_response();
        // RFC 9110 requires a 405 to list the methods that the request may use.
        response
            .headers_mut()
            .insert(header::ALLOW, axum::http::HeaderValue::from_static("POST"));
        return response;
    }

    let api = state.api.clone();
    let mut request = request
        .data(call.clone())
        .data(
            DataLoader::with_cache(
                UserLoader {
                    api: api.clone(),
                    call: call.clone(),
                },
                spawn_in_current_span,
                HashMapCache::default(),
            )
            .delay(BATCH_WINDOW),
        )
        .data(
            DataLoader::with_cache(
                OrdersLoader { api, call },
                spawn_in_current_span,
                HashMapCache::default(),
            )
            .delay(BATCH_WINDOW),
        );

    let (span, operation, argument, shape) = match document {
        Some(document) => {
            let span = operation_span::span_for(&document, &request);
            let operation = operation_span::root_fields(&document, &request);
            let argument = operation_span::target_argument(&document, &request);
            request = request.data(prefetch::OrderDetails::of(&document));
            // The schema takes the document, so a copy is kept for the response
            // rewrites after execution.
            let shape = document.clone();
            request.set_parsed_query(document);
            (span, operation, argument, Some(shape))
        }
        None => (operation_span::unnamed_span(), None, None, None),
    };
    let mut response = match rejection {
        Some(error) => async_graphql::Response::from_errors(vec![error]),
        None => {
            let operation_name = request.operation_name.clone();
            let mut response = state.schema.execute(request).instrument(span).await;
            if let Some(document) = &shape {
                state
                    .checks
                    .finish(&mut response, document, operation_name.as_deref());
            }
            response
        }
    };
    label_validation_errors(&mut response);
    let outcome = audit_outcome(&response);
    let target_id = argument.or_else(|| created_id(&response));
    let mut response = GraphQLResponse::from(response).into_response();
    if let Some((kind, fields)) = operation {
        response
            .extensions_mut()
            .insert(crate::audit::GraphqlOperation {
                kind,
                fields,
                outcome,
                target_id,
            });
    }
    response
}

/// Reads the JSON body of a POST request. serde keeps the last of two equal
/// keys, so a body in which an object gives a key twice is rejected: with
/// `"email"` twice in the variables it would create a user with the second
/// address. Only an object with a `query` string is read, because serde
/// would read the request from an array's elements in order, so
/// `["mutation { ... }"]` would run, and `{}` would run an empty document.
async fn read_body(body: axum::body::Body) -> Result<async_graphql::Request, ApiError> {
    // The route's body limit applies while the body is read.
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|error| ApiError::from(ParseRequestError::Io(std::io::Error::other(error))))?;
    let value = crate::rest::extract::parse_unique_keys(&bytes)
        .map_err(crate::rest::extract::body_error)?;
    // A body without a `query` string would run as an empty document.
    if !value.get("query").is_some_and(serde_json::Value::is_string) {
        return Err(not_an_object());
    }
    let wrong = |key: &str, fits: fn(&serde_json::Value) -> bool| {
        value
            .get(key)
            .is_some_and(|field| !field.is_null() && !fits(field))
    };
    if wrong("variables", serde_json::Value::is_object) {
        return Err(query_string::invalid(
            "invalid variables: must be a JSON object".to_owned(),
        ));
    }
    if wrong("operationName", serde_json::Value::is_string) {
        return Err(query_string::invalid(
            "invalid operationName: must be a string".to_owned(),
        ));
    }
    serde_json::from_value(value).map_err(|_| not_an_object())
}

/// Returns the `id` of what a one-field mutation such as `createUser`
/// returned.
fn created_id(response: &async_graphql::Response) -> Option<String> {
    let async_graphql::Value::Object(data) = &response.data else {
        return None;
    };
    let mut fields = data.values();
    let (Some(async_graphql::Value::Object(result)), None) = (fields.next(), fields.next()) else {
        return None;
    };
    match result.get("id") {
        Some(async_graphql::Value::String(id)) => Some(id.clone()),
        _ => None,
    }
}

/// Returns `ok`, or the `extensions.code` of the response's first error;
/// `FORBIDDEN` wins over other codes, so a denied field is never hidden
/// behind another error.
fn audit_outcome(response: &async_graphql::Response) -> String {
    let codes: Vec<String> = response
        .errors
        .iter()
        .map(|error| {
            error
                .extensions
                .as_ref()
                .and_then(|extensions| extensions.get("code"))
                .map_or_else(
                    || "error".to_owned(),
                    |code| code.to_string().trim_matches('"').to_owned(),
                )
        })
        .collect();
    if codes.iter().any(|code| code == crate::audit::FORBIDDEN) {
        return crate::audit::FORBIDDEN.to_owned();
    }
    codes.into_iter().next().unwrap_or_else(|| "ok".to_owned())
}

/// Spawns a DataLoader batch inside the current span, so its backend calls
/// stay in the request's trace.
fn spawn_in_current_span<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let deadline = crate::resilience::deadline::current();
    tokio::spawn(crate::resilience::deadline::scope(
        deadline,
        future.instrument(tracing::Span::current()),
    ))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Tells whether a request asks for the GraphiQL page rather than for a
/// GraphQL operation.
pub fn is_playground_request(request: &axum::extract::Request) -> bool {
    matches!(*request.method(), Method::GET | Method::HEAD) && wants_html(request.headers())
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

impl From<ParseRequestError> for ApiError {
    fn from(error: ParseRequestError) -> Self {
        match error {
            ParseRequestError::PayloadTooLarge => payload_too_large(),
            // A chunked body has no length to check up front, so the body
            // limit stops it while async-graphql reads it.
            ParseRequestError::Io(error) if is_length_limit(&error) => payload_too_large(),
            // serde's own text names internal types ("untagged enum
            // BatchRequest"), which tell a client nothing.
            ParseRequestError::InvalidRequest(_) => not_an_object(),
            other => ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                format!("invalid GraphQL request: {other}"),
            ),
        }
    }
}

fn not_an_object() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::BAD_REQUEST,
        "BAD_REQUEST",
        "invalid GraphQL request: the body must be a JSON object with a \"query\" string \
         and optional \"operationName\" string and \"variables\" object",
    )
}

fn payload_too_large() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        "request body is larger than the gateway accepts",
    )
}

/// Returns true when reading the body failed at the body size limit.
/// async-graphql-axum keeps only the text of a body error, so the text of
/// `http_body_util::LengthLimitError` is what identifies it.
fn is_length_limit(error: &std::io::Error) -> bool {
    error.to_string() == "length limit exceeded"
}

/// Gives errors raised before execution (parse, validation and limit errors)
/// the code `GRAPHQL_VALIDATION_FAILED`, so that every error has a code.
pub(crate) fn label_validation_errors(response: &mut async_graphql::Response) {
    for error in &mut response.errors {
        let has_code = error
            .extensions
            .as_ref()
            .is_some_and(|extensions| extensions.get("code").is_some());
        if !has_code {
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", "GRAPHQL_VALIDATION_FAILED");
        }
    }
}

fn api<'a>(ctx: &Context<'a>) -> &'a Api {
    ctx.data_unchecked::<Api>()
}

fn call<'a>(ctx: &Context<'a>) -> &'a Call {
    ctx.data_unchecked::<Call>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_id_comes_from_the_one_root_field() {
        let created = async_graphql::Response::new(async_graphql::value!({
            "createUser": { "id": "u-1", "name": "Ayu" }
        }));
        assert_eq!(created_id(&created).as_deref(), Some("u-1"));
        let two = async_graphql::Response::new(async_graphql::value!({
            "a": { "id": "u-1" }, "b": { "id": "u-2" }
        }));
        assert_eq!(created_id(&two), None);
        assert_eq!(
            created_id(&async_graphql::Response::new(async_graphql::Value::Null)),
            None
        );
    }
}
