//! Null propagation for failed fields, as the GraphQL specification's
//! "Handling Field Errors" asks.
//!
//! async-graphql 7.2 leaves a failed field out of its parent object. The
//! specification wants the field to be null, and a null in a non-null
//! position to make its nearest nullable ancestor null, up to `data`
//! itself. Typed clients depend on that: a missing key fails their parsing
//! where a null does not. [`propagate`] rewrites the response so, from the
//! request's extension (see `extension`).

use async_graphql::parser::types::{ExecutableDocument, Field, Selection, SelectionSet};
use async_graphql::registry::{MetaTypeName, Registry};
use async_graphql::{Name, PathSegment, Positioned, Response, Value};

/// Deepest nesting of fragment spreads followed; validation has already
/// rejected cycles.
const MAX_FRAGMENT_DEPTH: usize = 32;

/// Rewrites `response` so that every failed field is null and every null in
/// a non-null position moves up to the nearest nullable one.
pub fn propagate(
    response: &mut Response,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    registry: &Registry,
) {
    let failed: Vec<Vec<PathSegment>> = response
        .errors
        .iter()
        .filter(|error| !error.path.is_empty())
        .map(|error| error.path.clone())
        .collect();
    if failed.is_empty() {
        return;
    }
    let Some(operation) = select_operation(document, operation_name) else {
        return;
    };
    let root = match operation.node.ty {
        async_graphql::parser::types::OperationType::Mutation => registry.mutation_type.as_deref(),
        _ => Some(registry.query_type.as_str()),
    };
    let Some(root) = root else {
        return;
    };
    // Every root field failed: async-graphql then returns null data, which
    // is right only when one of them is non-null.
    if response.data == Value::Null {
        response.data = Value::Object(Default::default());
    }
    let walk = Walk { document, registry };
    for path in failed {
        let Some(nullable) = walk.nullability(root, &operation.node.selection_set.node, &path)
        else {
            continue;
        };
        match nullable.iter().rposition(|nullable| *nullable) {
            Some(position) => {
                let path = &path[..=position];
                let order = || walk.sibling_keys(&operation.node.selection_set.node, path);
                set_null(&mut response.data, path, order);
            }
            None => response.data = Value::Null,
        }
    }
}

fn select_operation<'a>(
    document: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<&'a Positioned<async_graphql::parser::types::OperationDefinition>> {
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

struct Walk<'a> {
    document: &'a ExecutableDocument,
    registry: &'a Registry,
}

impl Walk<'_> {
    /// Returns, for each prefix of `path`, whether the position it names may
    /// be null; `None` when the path does not fit the document or schema.
    fn nullability(
        &self,
        root: &str,
        selection: &SelectionSet,
        path: &[PathSegment],
    ) -> Option<Vec<bool>> {
        let mut nullable = Vec::with_capacity(path.len());
        let mut selections: Vec<&SelectionSet> = vec![selection];
        let mut object_type = root.to_owned();
        // The type of the current position, `[Order!]` for example.
        let mut position_type = String::new();
        for segment in path {
            match segment {
                PathSegment::Field(key) => {
                    let mut fields = Vec::new();
                    for set in &selections {
                        self.collect(set, key, &mut fields, 0);
                    }
                    let name = fields.first()?.node.name.node.as_str();
                    let meta = self.registry.types.get(&object_type)?.field_by_name(name)?;
                    let (is_nullable, inner) = unwrap_non_null(&meta.ty);
                    nullable.push(is_nullable);
                    position_type = inner.to_owned();
                    object_type = MetaTypeName::concrete_typename(&meta.ty).to_owned();
                    selections = fields
                        .iter()
                        .map(|field| &field.node.selection_set.node)
                        .collect();
                }
                PathSegment::Index(_) => {
                    let MetaTypeName::List(element) = MetaTypeName::create(&position_type) else {
                        return None;
                    };
                    let (is_nullable, inner) = unwrap_non_null(element);
                    nullable.push(is_nullable);
                    position_type = inner.to_owned();
                }
            }
        }
        Some(nullable)
    }

    /// Returns the response keys of the object that contains the last field of
    /// `path`, in the order that the query selects them.
    fn sibling_keys<'b>(
        &'b self,
        operation: &'b SelectionSet,
        path: &[PathSegment],
    ) -> Vec<&'b Name> {
        let parents = path.split_last().map_or(path, |(_, parents)| parents);
        let mut selections = vec![operation];
        for segment in parents {
            if let PathSegment::Field(key) = segment {
                let mut fields = Vec::new();
                for set in &selections {
                    self.collect(set, key, &mut fields, 0);
                }
                selections = fields
                    .iter()
                    .map(|field| &field.node.selection_set.node)
                    .collect();
            }
        }
        let mut keys = Vec::new();
        for set in selections {
            self.response_keys(set, &mut keys, 0);
        }
        keys
    }

    /// Adds the response keys of `set` that `keys` lacks, in selection
    /// order, looking into fragments.
    fn response_keys<'b>(&'b self, set: &'b SelectionSet, keys: &mut Vec<&'b Name>, depth: usize) {
        if depth > MAX_FRAGMENT_DEPTH {
            return;
        }
        for selection in &set.items {
            let inner = match &selection.node {
                Selection::Field(field) => {
                    let key = &field.node.response_key().node;
                    if !keys.contains(&key) {
                        keys.push(key);
                    }
                    continue;
                }
                Selection::FragmentSpread(spread) => self
                    .document
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .map(|fragment| &fragment.node.selection_set.node),
                Selection::InlineFragment(fragment) => Some(&fragment.node.selection_set.node),
            };
            if let Some(inner) = inner {
                self.response_keys(inner, keys, depth + 1);
            }
        }
    }

    /// Adds the fields of `set` whose response key is `key`, looking into
    /// fragments.
    fn collect<'b>(
        &'b self,
        set: &'b SelectionSet,
        key: &str,
        found: &mut Vec<&'b Positioned<Field>>,
        depth: usize,
    ) {
        if depth > MAX_FRAGMENT_DEPTH {
            return;
        }
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) if field.node.response_key().node.as_str() == key => {
                    found.push(field);
                }
                Selection::Field(_) => {}
                Selection::FragmentSpread(spread) => {
                    let name: &Name = &spread.node.fragment_name.node;
                    if let Some(fragment) = self.document.fragments.get(name) {
                        self.collect(&fragment.node.selection_set.node, key, found, depth + 1);
                    }
                }
                Selection::InlineFragment(fragment) => {
                    self.collect(&fragment.node.selection_set.node, key, found, depth + 1);
                }
            }
        }
    }
}

/// Splits `Type!` into (false, `Type`), and `Type` into (true, `Type`).
fn unwrap_non_null(ty: &str) -> (bool, &str) {
    match ty.strip_suffix('!') {
        Some(inner) => (false, inner),
        None => (true, ty),
    }
}

/// Sets the value at `path` to null, unless an ancestor is already null. A
/// field that async-graphql left out goes back in after the last present
/// key that comes before it in `order`, the parent's response keys in
/// selection order.
///
/// NOTE: async-graphql 7.2 inserts sibling fields in the order they finish,
/// so the present keys, and with them the null, may be out of selection
/// order.
fn set_null<'a>(data: &mut Value, path: &[PathSegment], order: impl FnOnce() -> Vec<&'a Name>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = data;
    for segment in parents {
        let next = match (segment, current) {
            (PathSegment::Field(key), Value::Object(object)) => object.get_mut(key.as_str()),
            (PathSegment::Index(index), Value::List(items)) => items.get_mut(*index),
            _ => None,
        };
        match next {
            Some(value) => current = value,
            None => return,
        }
    }
    match (last, current) {
        (PathSegment::Field(key), Value::Object(object)) => {
            if let Some(value) = object.get_mut(key.as_str()) {
                *value = Value::Null;
                return;
            }
            let order = order();
            let rank = |name: &str| order.iter().position(|key| key.as_str() == name);
            // After the last present key that the query selects before it.
            let position = rank(key).map_or(object.len(), |own| {
                object
                    .keys()
                    .rposition(|present| rank(present).is_some_and(|other| other < own))
                    .map_or(0, |index| index + 1)
            });
            object.shift_insert(position, Name::new(key), Value::Null);
        }
        (PathSegment::Index(index), Value::List(items)) => {
            if let Some(item) = items.get_mut(*index) {
                *item = Value::Null;
            }
        }
        _ => {}
    }
}
