//! The query string of a GraphQL GET or HEAD request, with the parameter
//! names of GraphQL over HTTP: `query`, `operationName`, `variables` and
//! `extensions`. async-graphql's own parser reads `operation_name` instead
//! and ignores `operationName`.

use async_graphql::{Request, Variables};
use axum::extract::Query;
use axum::http::Uri;
use serde::Deserialize;

use crate::error::ApiError;
use crate::rest::extract::parse_unique_keys;

/// Parameters of a GET request. `variables` and `extensions` are JSON text.
#[derive(Deserialize)]
struct Parameters {
    query: Option<String>,
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
    let query = parameters
        .query
        .ok_or_else(|| invalid("the \"query\" parameter is missing".to_owned()))?;
    let variables = match parameters.variables {
        Some(text) => variables(&text)?,
        None => Variables::default(),
    };
    let mut request = Request::new(query).variables(variables);
    request.operation_name = parameters.operation_name;
    if let Some(text) = parameters.extensions {
        request.extensions = serde_json::from_str(&text)
            .map_err(|error| invalid(format!("invalid extensions: {error}")))?;
    }
    Ok(request)
}

/// Parses `variables` by the rules of a POST body: a JSON object, or null, in
/// which no object gives a key twice.
fn variables(text: &str) -> Result<Variables, ApiError> {
    let value = parse_unique_keys(text.as_bytes())
        .map_err(|error| invalid(format!("invalid variables: {error}")))?;
    match value {
        serde_json::Value::Null => Ok(Variables::default()),
        serde_json::Value::Object(_) => Ok(Variables::from_json(value)),
        _ => Err(invalid(
            "invalid variables: must be a JSON object".to_owned(),
        )),
    }
}

pub(super) fn invalid(message: String) -> ApiError {
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
    fn null_variables_are_empty() {
        let request = parse_str("query=%7B__typename%7D&variables=null").unwrap();
        assert!(request.variables.is_empty());
    }

    #[test]
    fn parse_rejects_a_missing_query() {
        let error = parse_str("operationName=A").unwrap_err();
        assert!(
            error.detail.contains("\"query\" parameter is missing"),
            "{error:?}"
        );
        assert!(parse_str("").is_err());
        // An empty document is a request; its parse error comes from execution.
        assert_eq!(parse_str("query=").unwrap().query, "");
    }

    #[test]
    fn bad_parameters_are_rejected() {
        assert!(parse_str("query=%7B__typename%7D&variables=%7Bnot-json").is_err());
        assert!(parse_str("query=%7B__typename%7D&extensions=%5B1%5D").is_err());
        assert!(parse_str("query=%7B__typename%7D&operationName=A&operationName=B").is_err());
        assert!(
            parse_str("query=%7B__typename%7D&variables=%7B%22a%22%3A1%2C%22a%22%3A2%7D").is_err()
        );
        assert!(parse_str("query=%7B__typename%7D&variables=%5B1%5D").is_err());
        assert!(parse_str("query=%7B__typename%7D&variables=%22x%22").is_err());
    }
}
