//! GraphQL documents against the gateway's schema and query limits.
//!
//! Input: the document, optionally followed by a NUL byte and the request's
//! variables as a JSON object. Invalid UTF-8 is replaced, as the document
//! arrives in a JSON string. The document goes through the handler's steps
//! up to validation (`gateway::fuzzing::GraphqlValidator`), with the
//! default limits, on a thread with a tokio worker's stack.
//!
//! Properties: no input panics or overflows the stack, and every error has
//! a code. A document that passes validation stays within the depth, alias
//! and directive limits, as counted here independently of async-graphql.
//! libFuzzer's `-timeout` bounds the time of one document.
//!
//! NOTE: complexity is not recounted here, because its cost of a list
//! field depends on the resolver's `first` argument.

#![no_main]

use std::collections::HashMap;
use std::sync::LazyLock;

use async_graphql::parser::parse_query;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Request, Variables};
use gateway::QueryLimits;
use gateway::fuzzing::GraphqlValidator;
use gateway_fuzz::on_worker_stack;
use libfuzzer_sys::fuzz_target;

static VALIDATOR: LazyLock<GraphqlValidator> =
    LazyLock::new(|| GraphqlValidator::new(QueryLimits::default()));

/// Counts of a document that its limits bound.
#[derive(Debug, Default)]
struct Measure {
    /// Deepest nesting of fields, with fragments spread in place.
    depth: usize,
    aliases: usize,
    /// Most directives on one field.
    directives_per_field: usize,
}

fn measure(document: &ExecutableDocument) -> Measure {
    let mut measure = Measure::default();
    let mut fragment_depths = HashMap::new();
    for (_, operation) in document.operations.iter() {
        let depth = depth_of(
            document,
            &operation.node.selection_set.node,
            &mut fragment_depths,
            0,
        );
        measure.depth = measure.depth.max(depth);
        count_in(&operation.node.selection_set.node, &mut measure);
    }
    for fragment in document.fragments.values() {
        count_in(&fragment.node.selection_set.node, &mut measure);
    }
    measure
}

/// Returns the field depth of `selection_set`, remembering each fragment's
/// depth so that fragments spread many times are walked once. `guard`
/// stops a fragment cycle, which validation rejects anyway.
fn depth_of(
    document: &ExecutableDocument,
    selection_set: &SelectionSet,
    fragment_depths: &mut HashMap<String, usize>,
    guard: usize,
) -> usize {
    if guard > 256 {
        return usize::MAX;
    }
    let mut deepest = 0;
    for selection in &selection_set.items {
        let depth = match &selection.node {
            Selection::Field(field) => {
                1 + depth_of(
                    document,
                    &field.node.selection_set.node,
                    fragment_depths,
                    guard + 1,
                )
            }
            Selection::InlineFragment(fragment) => depth_of(
                document,
                &fragment.node.selection_set.node,
                fragment_depths,
                guard + 1,
            ),
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.to_string();
                if let Some(&depth) = fragment_depths.get(&name) {
                    depth
                } else {
                    let depth = document.fragments.get(name.as_str()).map_or(0, |fragment| {
                        depth_of(
                            document,
                            &fragment.node.selection_set.node,
                            fragment_depths,
                            guard + 1,
                        )
                    });
                    fragment_depths.insert(name, depth);
                    depth
                }
            }
        };
        deepest = deepest.max(depth);
    }
    deepest
}

fn count_in(selection_set: &SelectionSet, measure: &mut Measure) {
    for selection in &selection_set.items {
        match &selection.node {
            Selection::Field(field) => {
                measure.aliases += usize::from(field.node.alias.is_some());
                measure.directives_per_field = measure
                    .directives_per_field
                    .max(field.node.directives.len());
                count_in(&field.node.selection_set.node, measure);
            }
            Selection::InlineFragment(fragment) => {
                count_in(&fragment.node.selection_set.node, measure)
            }
            Selection::FragmentSpread(_) => {}
        }
    }
}

fn check(data: &[u8]) {
    let (document, variables) = match data.iter().position(|&byte| byte == 0) {
        Some(nul) => (&data[..nul], Some(&data[nul + 1..])),
        None => (data, None),
    };
    let document = String::from_utf8_lossy(document).into_owned();
    let mut request = Request::new(document.clone());
    if let Some(variables) = variables.and_then(|json| serde_json::from_slice(json).ok()) {
        request = request.variables(Variables::from_json(variables));
    }

    let response = match VALIDATOR.check(request) {
        Ok(response) => response,
        Err(rejection) => {
            assert_eq!(rejection.code, "INVALID_ARGUMENT", "{rejection:?}");
            assert!(rejection.status.is_client_error(), "{rejection:?}");
            return;
        }
    };
    for error in &response.errors {
        let has_code = error
            .extensions
            .as_ref()
            .is_some_and(|extensions| extensions.get("code").is_some());
        assert!(has_code, "error without a code: {error:?}");
    }
    if !response.errors.is_empty() {
        return;
    }

    let parsed = parse_query(&document).expect("a document that passed validation parses");
    let measure = measure(&parsed);
    let limits = QueryLimits::default();
    assert!(
        measure.depth <= limits.max_depth,
        "{measure:?} passed validation"
    );
    assert!(
        measure.aliases <= limits.max_aliases,
        "{measure:?} passed validation"
    );
    assert!(
        measure.directives_per_field <= limits.max_directives,
        "{measure:?} passed validation"
    );
}

fuzz_target!(|data: &[u8]| {
    on_worker_stack(|| check(data));
});
