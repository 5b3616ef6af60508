//! Rejects documents that select one response key with different fields or
//! different arguments, as GraphQL's "field selection merging" rule requires.
//!
//! async-graphql checks this rule only between fields under the same type
//! condition, so `orders(first: 1)` beside `... on User { orders(first: 2) }`
//! passed, and the executor merged the two lists item by item. Every type of
//! this schema is an object type, so fields that share a response key always
//! share their parent type, and type conditions can be ignored here.

use std::collections::HashMap;

use async_graphql::parser::types::{ExecutableDocument, Field, Selection, SelectionSet};
use async_graphql::{Pos, Positioned, ServerError};

use super::limits::MAX_RECURSIVE_DEPTH;

/// Returns the error of the first response key in `document` whose fields
/// cannot be merged, or `None` when every key can be. The walk collects at
/// most `max_fields` fields and then gives up, returning `None`.
///
/// Each field is collected once, unless a fragment spreads itself, which
/// validation rejects later. Such a fragment, spread several times in its
/// own selection, would otherwise make the walk grow exponentially.
pub fn find_conflict(document: &ExecutableDocument, max_fields: usize) -> Option<ServerError> {
    walk(document, max_fields).0
}

/// Runs the check and also returns how many fields it collected.
fn walk(document: &ExecutableDocument, max_fields: usize) -> (Option<ServerError>, usize) {
    let mut merge = Merge {
        document,
        remaining: max_fields,
    };
    let conflict = document
        .operations
        .iter()
        .find_map(|(_, operation)| merge.check(&[&operation.node.selection_set.node], 0));
    (conflict, max_fields - merge.remaining)
}

struct Merge<'a> {
    document: &'a ExecutableDocument,
    /// Fields the walk may still collect.
    remaining: usize,
}

/// The fields that share one response key, in document order.
type Groups<'a> = Vec<(&'a str, Vec<&'a Positioned<Field>>)>;

impl<'a> Merge<'a> {
    /// Checks the fields that the selection sets in `sets` merge into, then
    /// the sub-selections of each response key, merged the same way.
    fn check(&mut self, sets: &[&'a SelectionSet], depth: usize) -> Option<ServerError> {
        if depth > MAX_RECURSIVE_DEPTH + 1 {
            return None;
        }
        let mut groups = Groups::new();
        let mut index = HashMap::new();
        for set in sets {
            self.collect(set, &mut groups, &mut index, depth);
        }
        if self.remaining == 0 {
            return None;
        }
        for (key, fields) in &groups {
            let first = fields[0];
            for other in &fields[1..] {
                if let Some(error) = conflict(key, first, other) {
                    return Some(error);
                }
            }
            let children: Vec<&SelectionSet> = fields
                .iter()
                .map(|field| &field.node.selection_set.node)
                .collect();
            if let Some(error) = self.check(&children, depth + 1) {
                return Some(error);
            }
            if self.remaining == 0 {
                return None;
            }
        }
        None
    }

    /// Adds the fields of `set` to `groups` by response key, with the
    /// fields of its fragments in place of the fragments.
    fn collect(
        &mut self,
        set: &'a SelectionSet,
        groups: &mut Groups<'a>,
        index: &mut HashMap<&'a str, usize>,
        depth: usize,
    ) {
        if depth > MAX_RECURSIVE_DEPTH + 1 {
            return;
        }
        for selection in &set.items {
            if self.remaining == 0 {
                return;
            }
            match &selection.node {
                Selection::Field(field) => {
                    self.remaining -= 1;
                    let key = field
                        .node
                        .alias
                        .as_ref()
                        .unwrap_or(&field.node.name)
                        .node
                        .as_str();
                    match index.get(key) {
                        Some(&position) => groups[position].1.push(field),
                        None => {
                            index.insert(key, groups.len());
                            groups.push((key, vec![field]));
                        }
                    }
                }
                Selection::InlineFragment(fragment) => {
                    self.collect(&fragment.node.selection_set.node, groups, index, depth + 1);
                }
                // A spread of an unknown fragment is left to the schema's
                // validation, which reports it.
                Selection::FragmentSpread(spread) => {
                    if let Some(fragment) =
                        self.document.fragments.get(&spread.node.fragment_name.node)
                    {
                        self.collect(&fragment.node.selection_set.node, groups, index, depth + 1);
                    }
                }
            }
        }
    }
}

/// Returns the error for two fields under response key `key` that differ
/// in name or arguments.
fn conflict(
    key: &str,
    first: &Positioned<Field>,
    other: &Positioned<Field>,
) -> Option<ServerError> {
    let reason = if first.node.name.node != other.node.name.node {
        format!(
            "\"{}\" and \"{}\" are different fields",
            first.node.name.node, other.node.name.node
        )
    } else if !same_arguments(&first.node, &other.node) {
        "they have different arguments".to_owned()
    } else {
        return None;
    };
    Some(error_at(
        format!(
            "Fields \"{key}\" conflict because {reason}. Use different aliases on the fields to fetch both."
        ),
        [first.pos, other.pos],
    ))
}

/// Compares the arguments of two fields by name, in any order.
fn same_arguments(first: &Field, other: &Field) -> bool {
    first.arguments.len() == other.arguments.len()
        && first.arguments.iter().all(|(name, value)| {
            other
                .get_argument(&name.node)
                .is_some_and(|other_value| other_value.node == value.node)
        })
}

fn error_at(message: String, positions: [Pos; 2]) -> ServerError {
    let mut error = ServerError::new(message, None);
    error.locations = positions.to_vec();
    error
}

#[cfg(test)]
mod tests {
    use super::{find_conflict, walk};

    const MAX_FIELDS: usize = 10_000;

    fn message_of(query: &str) -> Option<String> {
        let document = async_graphql::parser::parse_query(query).unwrap();
        find_conflict(&document, MAX_FIELDS).map(|error| error.message)
    }

    #[test]
    fn conflicts_through_fragments_and_nesting() {
        let conflicting = [
            "{ me { orders(first: 1) { id } ... on User { orders(first: 2) { id } } } }",
            "{ me { orders(first: 1) { id } ...More } } fragment More on User { orders(first: 2) { id } }",
            "{ me { a: orders { id } a: email } }",
            "{ a: me { orders(first: 1) { id } } a: me { orders(first: 2) { id } } }",
            "{ me { orders(first: 1) { id } orders { id } } }",
            "query($n: Int) { me { orders(first: $n) { id } ... on User { orders(first: 2) { id } } } }",
        ];
        for query in conflicting {
            let message = message_of(query);
            assert!(
                message
                    .as_deref()
                    .is_some_and(|text| text.contains("conflict")),
                "{query}: {message:?}"
            );
        }
    }

    #[test]
    fn mergeable_fields_pass() {
        let mergeable = [
            "{ me { orders(first: 1) { id } ... on User { orders(first: 1) { items { sku } } } } }",
            "{ me { id id email } }",
            "{ a: user(id: \"1\") { id } b: user(id: \"2\") { id } }",
            "{ user(id: \"1\", extra: 2) { id } ... on Query { user(extra: 2, id: \"1\") { id } } }",
            "{ me { ...Cycle } } fragment Cycle on User { id ...Cycle }",
            "{ me { ...Missing } }",
        ];
        for query in mergeable {
            assert_eq!(message_of(query), None, "{query}");
        }
    }

    #[test]
    fn conflict_names_both_locations() {
        let document = async_graphql::parser::parse_query(
            "{ me { orders(first: 1) { id }\n ... on User { orders(first: 2) { id } } } }",
        )
        .unwrap();
        let error = find_conflict(&document, MAX_FIELDS).unwrap();
        assert_eq!(error.locations.len(), 2);
        assert_eq!(error.locations[1].line, 2);
        assert!(
            error.message.contains("different arguments"),
            "{}",
            error.message
        );
    }

    #[test]
    fn fragment_spread_thrice_stops_at_budget() {
        let bomb = "query { me { ...F } } fragment F on User { ... on User { ... on User \
                    { ... on User { orders { user { ...F ...F ...F } } } } } }";
        let document = async_graphql::parser::parse_query(bomb).unwrap();
        let (conflict, collected) = walk(&document, MAX_FIELDS);
        assert!(conflict.is_none());
        assert_eq!(collected, MAX_FIELDS);
    }

    #[test]
    fn each_field_is_collected_once() {
        let document = async_graphql::parser::parse_query(
            "{ me { id ...Names orders { id } } } fragment Names on User { name email }",
        )
        .unwrap();
        assert_eq!(walk(&document, MAX_FIELDS).1, 6);
    }
}
