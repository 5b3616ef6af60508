//! The audit log: one line under the `audit` log target for every write
//! and every denied request, so that it can be routed and kept apart from
//! the other logs.
//!
//! A line names the actor, the action (method and route template, or the
//! GraphQL mutation's root fields), the target id, the outcome, the client
//! address and the trace id. Request bodies, tokens and emails never
//! appear in it.

use std::net::IpAddr;

use axum::http::{HeaderMap, Method, StatusCode, header};

use crate::auth::Caller;

/// Log target of audit lines.
pub const TARGET: &str = "audit";

/// Maximum length of a target id; longer path segments are cut.
const MAX_TARGET_LEN: usize = 64;

/// Error code of a GraphQL field that the caller may not see or change.
pub const FORBIDDEN: &str = "FORBIDDEN";

/// The GraphQL operation behind a response, which the GraphQL handler
/// attaches to the response for the audit line.
#[derive(Debug, Clone)]
pub struct GraphqlOperation {
    /// `query` or `mutation`.
    pub kind: &'static str,
    /// Root fields of the operation, for example `createUser`.
    pub fields: String,
    /// `ok`, or the `extensions.code` of the first error.
    pub outcome: String,
    /// The id the operation acted on, when it has one root field.
    pub target_id: Option<String>,
}

/// One served request, with the fields of its audit line.
pub struct Served<'a> {
    pub method: &'a Method,
    pub route: &'a str,
    pub path: &'a str,
    pub status: StatusCode,
    pub response_headers: &'a HeaderMap,
    pub graphql: Option<&'a GraphqlOperation>,
    /// Who sent the request; none when it was rejected before
    /// authentication or needs none.
    pub caller: Option<&'a Caller>,
    /// The client's address, as `TRUSTED_PROXY_HOPS` finds it.
    pub client: Option<IpAddr>,
    pub trace_id: &'a str,
    pub request_id: &'a str,
}

/// Writes the audit line of `served` when it was a write or was denied.
pub fn record(served: &Served<'_>) {
    let denied = is_denied(served.status)
        || served
            .graphql
            .is_some_and(|operation| operation.outcome == FORBIDDEN);
    let write = match served.graphql {
        Some(operation) => operation.kind == "mutation",
        None => is_write(served.method) && served.route != crate::graphql::GRAPHQL_PATH,
    };
    if !write && !denied {
        return;
    }
    let action = match served.graphql {
        Some(operation) => format!("graphql {} {}", operation.kind, operation.fields),
        None => format!("{} {}", served.method, served.route),
    };
    let outcome = match (served.graphql, denied) {
        (_, true) => "denied".to_owned(),
        (Some(operation), false) => operation.outcome.clone(),
        (None, false) if served.status.is_success() => "ok".to_owned(),
        (None, false) => format!("failed {}", served.status.as_u16()),
    };
    let target = match served.graphql {
        Some(operation) => operation
            .target_id
            .as_deref()
            .unwrap_or("-")
            .chars()
            .take(MAX_TARGET_LEN)
            .collect(),
        None => target_id(served.route, served.path, served.response_headers),
    };
    let client = served
        .client
        .map_or_else(|| "unknown".to_owned(), |address| address.to_string());
    let actor = served.caller.map_or("anonymous", Caller::actor);
    tracing::info!(
        target: TARGET,
        actor = %actor,
        action = %action,
        target_id = %target,
        outcome = %outcome,
        status = served.status.as_u16(),
        client_address = %client,
        trace_id = %served.trace_id,
        request_id = %served.request_id,
        "audit"
    );
}

fn is_write(method: &Method) -> bool {
    [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(method)
}

/// Tells whether the gateway refused the request for who sent it or how
/// often, rather than for what it asked.
fn is_denied(status: StatusCode) -> bool {
    [
        StatusCode::UNAUTHORIZED,
        StatusCode::FORBIDDEN,
        StatusCode::TOO_MANY_REQUESTS,
    ]
    .contains(&status)
}

/// Takes the id from the path where the route template has `{id}`, else
/// the last segment of a `Location` header (a created resource), else `-`.
fn target_id(route: &str, path: &str, headers: &HeaderMap) -> String {
    let from_path = route
        .split('/')
        .zip(path.split('/'))
        .find(|(template, _)| *template == "{id}")
        .map(|(_, segment)| segment);
    let from_location = || {
        headers
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|location| location.rsplit('/').next())
    };
    let id = from_path.or_else(from_location).unwrap_or("-");
    id.chars().take(MAX_TARGET_LEN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_id_comes_from_path_or_location() {
        let empty = HeaderMap::new();
        assert_eq!(
            target_id(
                "/api/v1/orders/{id}/cancel",
                "/api/v1/orders/abc/cancel",
                &empty
            ),
            "abc"
        );
        let mut created = HeaderMap::new();
        created.insert(header::LOCATION, "/api/v1/users/0190".parse().unwrap());
        assert_eq!(
            target_id("/api/v1/users", "/api/v1/users", &created),
            "0190"
        );
        assert_eq!(target_id("/api/v1/users", "/api/v1/users", &empty), "-");
        let long = format!("/api/v1/users/{}", "x".repeat(500));
        assert_eq!(
            target_id("/api/v1/users/{id}", &long, &empty).len(),
            MAX_TARGET_LEN
        );
    }

    #[test]
    fn denied_statuses() {
        assert!(is_denied(StatusCode::TOO_MANY_REQUESTS));
        assert!(is_denied(StatusCode::FORBIDDEN));
        assert!(!is_denied(StatusCode::NOT_FOUND));
        assert!(!is_denied(StatusCode::SERVICE_UNAVAILABLE));
    }
}
