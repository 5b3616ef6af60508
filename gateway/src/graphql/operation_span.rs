//! The span of a GraphQL request, named after its operation as the
//! OpenTelemetry GraphQL conventions ask: `graphql.operation.type`,
//! `graphql.operation.name`, and a span name such as `query UsersWithOrders`.
//!
//! The handler parses the document before execution, because a span name
//! cannot change after the span starts. These functions read that parsed
//! document, and the schema then runs it, so it is parsed once.

use async_graphql::parser::types::{
    ExecutableDocument, OperationDefinition, OperationType, Selection,
};
use async_graphql::{Name, Positioned};

/// Creates the span for `request`; a document that does not parse, or names
/// no operation the request selects, gets a span named `graphql`.
pub fn span_for(document: &ExecutableDocument, request: &async_graphql::Request) -> tracing::Span {
    let Some((kind, name)) = operation_of(document, request) else {
        return unnamed_span();
    };
    let span_name = match &name {
        Some(name) => format!("{kind} {name}"),
        None => kind.to_owned(),
    };
    tracing::info_span!(
        "graphql",
        otel.name = %span_name,
        graphql.operation.type = kind,
        graphql.operation.name = name.as_deref().unwrap_or_default(),
    )
}

/// Creates the span of a request whose operation is unknown, because its
/// document does not parse or names no operation the request selects.
pub fn unnamed_span() -> tracing::Span {
    tracing::info_span!("graphql", otel.name = "graphql")
}

/// Tells whether the request runs a mutation.
pub fn is_mutation(document: &ExecutableDocument, request: &async_graphql::Request) -> bool {
    matches!(operation_of(document, request), Some(("mutation", _)))
}

/// Returns the kind of the operation the request runs (`query` or
/// `mutation`) and its root fields joined by commas (for example
/// `createUser,updateUser`), or `None` when no single operation is
/// selected.
pub fn root_fields(
    document: &ExecutableDocument,
    request: &async_graphql::Request,
) -> Option<(&'static str, String)> {
    let (_, operation) = selected_operation(document, request.operation_name.as_deref())?;
    let fields: Vec<&str> = operation
        .node
        .selection_set
        .node
        .items
        .iter()
        .filter_map(|selection| match &selection.node {
            Selection::Field(field) => Some(field.node.name.node.as_str()),
            _ => None,
        })
        .collect();
    Some((kind_of(operation.node.ty), fields.join(",")))
}

/// Returns the id an operation with one root field acts on: its `id` or
/// `orderId` argument, literal or variable. Creations have none until they
/// run; the caller takes theirs from the response.
pub fn target_argument(
    document: &ExecutableDocument,
    request: &async_graphql::Request,
) -> Option<String> {
    let (_, operation) = selected_operation(document, request.operation_name.as_deref())?;
    let [selection] = operation.node.selection_set.node.items.as_slice() else {
        return None;
    };
    let Selection::Field(field) = &selection.node else {
        return None;
    };
    let (_, value) = field
        .node
        .arguments
        .iter()
        .find(|(name, _)| matches!(name.node.as_str(), "id" | "orderId"))?;
    let value = value
        .node
        .clone()
        .into_const_with(|name| request.variables.get(&name).cloned().ok_or(()))
        .ok()?;
    match value {
        async_graphql::Value::String(id) => Some(id),
        _ => None,
    }
}

fn kind_of(ty: OperationType) -> &'static str {
    match ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    }
}

/// Finds the operation the request runs: the one it names, or the only one.
fn operation_of(
    document: &ExecutableDocument,
    request: &async_graphql::Request,
) -> Option<(&'static str, Option<String>)> {
    let (name, operation) = selected_operation(document, request.operation_name.as_deref())?;
    Some((
        kind_of(operation.node.ty),
        name.map(|name| name.to_string()),
    ))
}

fn selected_operation<'a>(
    document: &'a ExecutableDocument,
    requested: Option<&str>,
) -> Option<(Option<&'a Name>, &'a Positioned<OperationDefinition>)> {
    let (name, operation) = match requested {
        Some(requested) => document
            .operations
            .iter()
            .find(|(name, _)| name.is_some_and(|name| name.as_str() == requested))?,
        None => {
            let mut operations = document.operations.iter();
            match (operations.next(), operations.next()) {
                (Some(only), None) => only,
                _ => return None,
            }
        }
    };
    Some((name, operation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    /// Returns the operation of `request`, or `None` when its document does
    /// not parse, as the handler treats it.
    fn operation(request: &async_graphql::Request) -> Option<(&'static str, Option<String>)> {
        let document = parse_query(&request.query).ok()?;
        operation_of(&document, request)
    }

    #[test]
    fn named_and_anonymous_operations() {
        let request = async_graphql::Request::new("query Users { users { nodes { id } } }");
        assert_eq!(
            operation(&request),
            Some(("query", Some("Users".to_owned())))
        );
        let request = async_graphql::Request::new("mutation { deleteUser(id: \"x\") }");
        assert_eq!(operation(&request), Some(("mutation", None)));
        let request =
            async_graphql::Request::new("query A { a } query B { b }").operation_name("B");
        assert_eq!(operation(&request), Some(("query", Some("B".to_owned()))));
        let request = async_graphql::Request::new("query A { a } query B { b }");
        assert_eq!(operation(&request), None);
        assert_eq!(operation(&async_graphql::Request::new("{ broken")), None);
    }
}
