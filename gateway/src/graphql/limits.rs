//! Query limits that async-graphql does not enforce itself: the number of
//! aliases per document. Depth, complexity and directive limits are set on
//! the schema builder.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Variables};

/// Deepest bracket nesting (`{`, `[`, `(`) accepted in a GraphQL document.
pub const MAX_NESTING: usize = 64;

/// Returns the deepest nesting of brackets in a GraphQL document, ignoring
/// brackets inside string literals and comments. It runs before parsing,
/// so it does not recurse.
pub fn nesting_depth(query: &str) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut in_string = false;
    let mut in_comment = false;
    let mut escaped = false;
    for character in query.chars() {
        if in_comment {
            in_comment = character != '\n';
            continue;
        }
        if in_string {
            match (escaped, character) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match character {
            '#' => in_comment = true,
            '"' => in_string = true,
            '{' | '[' | '(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            '}' | ']' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Rejects documents with more than `max` field aliases.
pub struct AliasLimit {
    pub max: usize,
}

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimitExtension { max: self.max })
    }
}

struct AliasLimitExtension {
    max: usize,
}

#[async_trait::async_trait]
impl Extension for AliasLimitExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let count = count_aliases(&document);
        if count > self.max {
            let mut error = ServerError::new(
                format!("query has {count} aliases, the maximum is {}", self.max),
                None,
            );
            let mut extensions = async_graphql::ErrorExtensionValues::default();
            extensions.set("code", "QUERY_TOO_COMPLEX");
            error.extensions = Some(extensions);
            return Err(error);
        }
        Ok(document)
    }
}

/// Counts aliased fields in every operation and fragment of a document.
pub fn count_aliases(document: &ExecutableDocument) -> usize {
    let in_operations: usize = document
        .operations
        .iter()
        .map(|(_, operation)| count_in(&operation.node.selection_set.node))
        .sum();
    let in_fragments: usize = document
        .fragments
        .values()
        .map(|fragment| count_in(&fragment.node.selection_set.node))
        .sum();
    in_operations + in_fragments
}

fn count_in(selection_set: &SelectionSet) -> usize {
    selection_set
        .items
        .iter()
        .map(|selection| match &selection.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some()) + count_in(&field.node.selection_set.node)
            }
            Selection::InlineFragment(fragment) => count_in(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_nested_and_fragment_aliases() {
        let document = async_graphql::parser::parse_query(
            "{ a: user(id: \"1\") { b: name ... on User { c: email } } ...F } fragment F on Query { d: users { nodes { id } } }",
        )
        .unwrap();
        assert_eq!(count_aliases(&document), 4);
    }

    #[test]
    fn nesting_ignores_strings_and_comments() {
        assert_eq!(nesting_depth("{ a(x: [[1]]) { b } }"), 4);
        assert_eq!(nesting_depth("{ a(x: \"[[[[\") } # [[[[\n"), 2);
        assert_eq!(
            nesting_depth(&format!(
                "{{ a(x: {}{}) }}",
                "[".repeat(3000),
                "]".repeat(3000)
            )),
            3002
        );
    }

    #[test]
    fn no_aliases_counts_zero() {
        let document =
            async_graphql::parser::parse_query("{ users { nodes { id name } } }").unwrap();
        assert_eq!(count_aliases(&document), 0);
    }
}
