//! Walks over the selection sets of a parsed document that look into
//! fragments, for the response rewrites that run after execution.

use async_graphql::Positioned;
use async_graphql::parser::types::{
    ExecutableDocument, Field, OperationDefinition, Selection, SelectionSet,
};

/// Deepest nesting of fragment spreads followed. Validation has already
/// rejected cycles, so this bound only stops a walk that went wrong.
const MAX_FRAGMENT_DEPTH: usize = 32;

/// Returns the operation that `operation_name` names, or the only one.
pub fn select_operation<'a>(
    document: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<&'a Positioned<OperationDefinition>> {
    match operation_name {
        Some(wanted) => document
            .operations
            .iter()
            .find(|(name, _)| name.is_some_and(|name| name.as_str() == wanted))
            .map(|(_, operation)| operation),
        None => {
            let mut operations = document.operations.iter();
            match (operations.next(), operations.next()) {
                (Some((_, only)), None) => Some(only),
                _ => None,
            }
        }
    }
}

/// The fragments of one document.
#[derive(Clone, Copy)]
pub struct Fragments<'a> {
    pub document: &'a ExecutableDocument,
}

impl<'a> Fragments<'a> {
    /// Adds the response keys of `set` that `keys` lacks, in selection
    /// order, looking into fragments.
    pub fn response_keys(self, set: &'a SelectionSet, keys: &mut Vec<&'a str>) {
        self.visit_fields(set, 0, &mut |field| {
            let key = field.node.response_key().node.as_str();
            if !keys.contains(&key) {
                keys.push(key);
            }
        });
    }

    /// Returns the first field of `set`, fragments included, whose response
    /// key an earlier field already has.
    pub fn repeated_key(self, set: &'a SelectionSet) -> Option<&'a Positioned<Field>> {
        let mut fields = Vec::new();
        self.visit_fields(set, 0, &mut |field| fields.push(field));
        fields.iter().enumerate().find_map(|(index, field)| {
            let key = &field.node.response_key().node;
            fields[..index]
                .iter()
                .any(|earlier| earlier.node.response_key().node == *key)
                .then_some(*field)
        })
    }

    /// Adds the fields of `set` whose response key is `key`, looking into
    /// fragments.
    pub fn collect(self, set: &'a SelectionSet, key: &str, found: &mut Vec<&'a Positioned<Field>>) {
        self.visit_fields(set, 0, &mut |field| {
            if field.node.response_key().node.as_str() == key {
                found.push(field);
            }
        });
    }

    /// Calls `visit` on each field of `set` in selection order, looking into
    /// fragments down to [`MAX_FRAGMENT_DEPTH`].
    fn visit_fields(
        self,
        set: &'a SelectionSet,
        depth: usize,
        visit: &mut impl FnMut(&'a Positioned<Field>),
    ) {
        if depth > MAX_FRAGMENT_DEPTH {
            return;
        }
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => visit(field),
                other => {
                    if let Some(inner) = self.fragment_set(other) {
                        self.visit_fields(inner, depth + 1, visit);
                    }
                }
            }
        }
    }

    /// Returns the selection set of a fragment spread or inline fragment.
    fn fragment_set(self, selection: &'a Selection) -> Option<&'a SelectionSet> {
        match selection {
            Selection::Field(_) => None,
            Selection::FragmentSpread(spread) => self
                .document
                .fragments
                .get(&spread.node.fragment_name.node)
                .map(|fragment| &fragment.node.selection_set.node),
            Selection::InlineFragment(fragment) => Some(&fragment.node.selection_set.node),
        }
    }
}
