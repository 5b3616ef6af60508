//! Null propagation for failed fields, as the GraphQL specification's
//! "Handling Field Errors" asks.
//!
//! async-graphql 7.2 leaves a failed field out of its parent object. The
//! specification wants the field to be null, and a null in a non-null
//! position to make its nearest nullable ancestor null, up to `data`
//! itself. Typed clients depend on that: a missing key fails their parsing
//! where a null does not. [`propagate`] rewrites the response so. A null
//! that it adds goes last in its object, and `key_order` then moves it to
//! its selected place.

use async_graphql::parser::types::{ExecutableDocument, SelectionSet};
use async_graphql::registry::{MetaTypeName, Registry};
use async_graphql::{Name, PathSegment, Response, Value};

use super::selections::{Fragments, select_operation};

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
    let walk = Walk {
        fragments: Fragments { document },
        registry,
    };
    for path in failed {
        let Some(nullable) = walk.nullability(root, &operation.node.selection_set.node, &path)
        else {
            continue;
        };
        match nullable.iter().rposition(|nullable| *nullable) {
            Some(position) => set_null(&mut response.data, &path[..=position]),
            None => response.data = Value::Null,
        }
    }
}

struct Walk<'a> {
    fragments: Fragments<'a>,
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
                        self.fragments.collect(set, key, &mut fields);
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
}

/// Splits `Type!` into (false, `Type`), and `Type` into (true, `Type`).
fn unwrap_non_null(ty: &str) -> (bool, &str) {
    match ty.strip_suffix('!') {
        Some(inner) => (false, inner),
        None => (true, ty),
    }
}

/// Sets the value at `path` to null, unless an ancestor is already null. A
/// field that async-graphql left out is added at the end of its object.
fn set_null(data: &mut Value, path: &[PathSegment]) {
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
            object.insert(Name::new(key), Value::Null);
        }
        (PathSegment::Index(index), Value::List(items)) => {
            if let Some(item) = items.get_mut(*index) {
                *item = Value::Null;
            }
        }
        _ => {}
    }
}
