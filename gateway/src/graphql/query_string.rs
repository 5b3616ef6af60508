//! The query string of a GraphQL GET or HEAD request, with the parameter
//! names of GraphQL over HTTP: `query`, `operationName`, `variables` and
//! `extensions`. async-graphql's own parser reads `operation_name` instead
//! and ignores `operationName`.

use async_graphql::{Request, Variables};
use axum::extract::Query;
use axum::http::Uri;
use serde::Deserialize;

use crate::error::ApiError;

/// Parameters of a GET request. `variables` and `extensions` are JSON text.
#[derive(Deserialize)]
struct Parameters {
    #[serde(default)]
    query: String,
    /// `operation_name` is accepted too, as async-graphql's parser read it.
    #[serde(rename = "operationName", alias = "operation_name")]
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

/// Parses the query string of `uri` into a GraphQL request.
pub fn parse(uri: &Uri) -> Result<Request, ApiError> {
    let Query(parameters) = Query::<Parameters>::try_from_uri(uri)
        .map_err(|rejection| invalid(format!("invalid query string: {}", rejection.body_text())))?;
    let variables = match parameters.variables {
        Some(text) => serde_json::from_str::<serde_json::Value>(&text)
            .map(Variables::from_json)
            .map_err(|error| invalid(format!("invalid variables: {error}")))?,
        None => Variables::default(),
    };
    let mut request = Request::new(parameters.query).variables(variables);
    request.operation_name = parameters.operation_name;
    if let Some(text) = parameters.extensions {
        request.extensions = serde_json::from_str(&text)
            .map_err(|error| invalid(format!("invalid extensions: {error}")))?;
    }
    Ok(request)
}

fn invalid(message: String) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::BAD_REQUEST,
        "BAD_REQUEST",
        format!("invalid GraphQL request: {message}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(query_string: &str) -> Result<Request, ApiError> {
        parse(&format!("/graphql?{query_string}").parse().unwrap())
    }

    #[test]
    fn parameters_follow_graphql_over_http() {
        let request = parse_str(
            "query=query%20A%20%7B%20__typename%20%7D&operationName=A&variables=%7B%22n%22%3A1%7D",
        )
        .unwrap();
        assert_eq!(request.query, "query A { __typename }");
        assert_eq!(request.operation_name.as_deref(), Some("A"));
        assert_eq!(
            request
                .variables
                .get("n")
                .map(ToString::to_string)
                .as_deref(),
            Some("1")
        );
    }

    #[test]
    fn snake_case_operation_name_still_works() {
        let request = parse_str("query=%7B__typename%7D&operation_name=B").unwrap();
        assert_eq!(request.operation_name.as_deref(), Some("B"));
    }

    #[test]
    fn bad_parameters_are_rejected() {
        assert!(parse_str("query=%7B__typename%7D&variables=%7Bnot-json").is_err());
        assert!(parse_str("query=%7B__typename%7D&extensions=%5B1%5D").is_err());
        assert!(parse_str("query=%7B__typename%7D&operationName=A&operationName=B").is_err());
    }
}
