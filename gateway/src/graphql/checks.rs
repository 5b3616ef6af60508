//! The document limits that async-graphql does not check, and the rewrites
//! of its responses (null propagation, key order), run by the handler
//! around the schema.
//!
//! They are not a schema extension because async-graphql passes every
//! field resolution through each registered extension, boxing a future and
//! looking up the field's type, even when the extension only looks at the
//! whole request. A page of 50 users with their orders resolves about a
//! thousand fields. Without an extension, the gateway's CPU per GraphQL
//! request fell by 10 to 20% in alternating `lintas-bench` runs on a 2-core
//! machine (an estimate, because the runs spread widely).

use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::registry::Registry;
use async_graphql::{OutputType, Response, ServerError, ServerResult};

use super::mutation::Mutation;
use super::query::Query;
use super::selections::Fragments;
use super::{QueryLimits, key_order, limits, literal_keys, nulls};

/// Limits of one document and the schema's types for null propagation.
pub struct DocumentChecks {
    max_expanded: usize,
    max_aliases: usize,
    registry: Registry,
}

impl DocumentChecks {
    /// Creates the checks with the alias limit of `query_limits`.
    pub fn new(query_limits: QueryLimits) -> Self {
        Self {
            max_expanded: limits::MAX_EXPANDED_SELECTIONS,
            max_aliases: query_limits.max_aliases,
            registry: registry(),
        }
    }

    /// Rejects a document that expands to too many selections, selects
    /// fields that cannot merge, has too many aliases, or gives a field of
    /// an input object literal twice. `document` is `query` parsed. Runs
    /// before the schema, whose parse step expands every fragment spread.
    pub fn check(&self, document: &ExecutableDocument, query: &str) -> ServerResult<()> {
        limits::check_expansion(document, self.max_expanded)?;
        limits::check_aliases(document, self.max_aliases)?;
        literal_keys::check(query)?;
        check_mutation_fields(document)
    }

    /// Rewrites a response of `document` to the specification's shape: one
    /// error per failed field, each failed field null (see
    /// [`nulls::propagate`]) and every object's keys in selection order (see
    /// [`key_order`]).
    pub fn finish(
        &self,
        response: &mut Response,
        document: &ExecutableDocument,
        operation_name: Option<&str>,
    ) {
        drop_repeated_errors(response);
        if response.errors.iter().any(|error| !error.path.is_empty()) {
            nulls::propagate(response, document, operation_name, &self.registry);
        }
        key_order::restore(&mut response.data, document, operation_name);
    }
}

/// Drops an error that repeats an earlier one's path and message.
/// async-graphql resolves a field once per selection, so a field selected
/// plainly and through a fragment reports its failure twice.
fn drop_repeated_errors(response: &mut Response) {
    if response.errors.len() < 2 {
        return;
    }
    let mut seen = std::collections::HashSet::new();
    response.errors.retain(|error| {
        error.path.is_empty()
            || seen.insert((
                serde_json::to_string(&error.path).unwrap_or_default(),
                error.message.clone(),
            ))
    });
}

/// Rejects a mutation that selects one response key twice at its root, as
/// in `createUser(...) { id } ... on Mutation { createUser(...) { id } }`.
/// The specification merges the two into one write, but async-graphql 7.2
/// runs each selection, so the write would happen twice and the second
/// would report an error for the first.
fn check_mutation_fields(document: &ExecutableDocument) -> ServerResult<()> {
    let fragments = Fragments { document };
    for (_, operation) in document.operations.iter() {
        if operation.node.ty != OperationType::Mutation {
            continue;
        }
        if let Some(field) = fragments.repeated_key(&operation.node.selection_set.node) {
            return Err(ServerError::new(
                format!(
                    "the mutation selects \"{}\" more than once; each selection would run the \
                     write, so select it once",
                    field.node.response_key().node
                ),
                Some(field.pos),
            ));
        }
    }
    Ok(())
}

/// Builds the registry of the schema's root types and every type they
/// reach, as the schema builds its own, which async-graphql keeps private.
fn registry() -> Registry {
    let mut registry = Registry {
        query_type: Query::type_name().into_owned(),
        mutation_type: Some(Mutation::type_name().into_owned()),
        ..Registry::default()
    };
    Query::create_type_info(&mut registry);
    Mutation::create_type_info(&mut registry);
    registry
}
