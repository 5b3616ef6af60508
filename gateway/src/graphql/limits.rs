//! Query limits that async-graphql does not enforce itself: the bracket
//! nesting of the document text, the number of aliases per document, and
//! the size of its operations once fragment spreads are expanded. Depth,
//! complexity and directive limits are set on the schema builder.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult};

use super::field_merge;

/// Deepest bracket nesting (`{`, `[`, `(`) accepted in a GraphQL document.
pub const MAX_NESTING: usize = 64;

/// Deepest nesting of fields, inline fragments and fragment spreads that
/// async-graphql accepts before validation. It is async-graphql's default.
pub const MAX_RECURSIVE_DEPTH: usize = 32;

/// Most selections the operations of a document may have once every
/// fragment spread is replaced by the fragment's selections. async-graphql
/// expands spreads again on every check, so a few short fragments that
/// each spread the next one twice would cost it 2^n steps. The bundled
/// GraphiQL's introspection query, with every optional field, expands to
/// 237 selections.
pub const MAX_EXPANDED_SELECTIONS: usize = 10_000;

/// Returns the deepest nesting of brackets in a GraphQL document, ignoring
/// brackets inside string literals, block strings and comments. It runs
/// before parsing, so it does not recurse. Where the text is not valid
/// GraphQL it may count brackets the parser never reaches, but it never
/// skips one that the parser would nest.
pub fn nesting_depth(query: &str) -> usize {
    // Every delimiter is ASCII, and no byte of a multi-byte UTF-8
    // character is, so the bytes can be scanned one at a time.
    let bytes = query.as_bytes();
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut index = 0;
    // Once a block string runs to the end of the text, every later one
    // does too, so the search for its end is not repeated.
    let mut block_strings_can_end = true;
    while index < bytes.len() {
        index = match bytes[index] {
            b'#' => end_of_comment(bytes, index + 1),
            // An unterminated block string parses as the empty string `""`
            // followed by a string literal that starts at the third quote.
            b'"' if bytes[index..].starts_with(b"\"\"\"") => {
                let end = if block_strings_can_end {
                    end_of_block_string(bytes, index + 3)
                } else {
                    None
                };
                end.unwrap_or_else(|| {
                    block_strings_can_end = false;
                    index + 2
                })
            }
            b'"' => end_of_string(bytes, index + 1),
            b'{' | b'[' | b'(' => {
                depth += 1;
                deepest = deepest.max(depth);
                index + 1
            }
            b'}' | b']' | b')' => {
                depth = depth.saturating_sub(1);
                index + 1
            }
            _ => index + 1,
        };
    }
    deepest
}

/// Returns the index of the line terminator (`\n` or `\r`, as GraphQL
/// defines it) that ends a comment whose text starts at `start`.
pub(super) fn end_of_comment(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|&byte| byte == b'\n' || byte == b'\r')
        .map_or(bytes.len(), |offset| start + offset)
}

/// Returns the index after the quote that ends a string literal whose text
/// starts at `start`. A line terminator ends it too, and the brackets after
/// it are counted, because the parser rejects a string that contains one.
pub(super) fn end_of_string(bytes: &[u8], start: usize) -> usize {
    let mut index = start;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' => index += 2,
            b'"' => return index + 1,
            b'\n' | b'\r' => return index,
            _ => index += 1,
        }
    }
    bytes.len()
}

/// Returns the index after the `"""` that ends a block string whose text
/// starts at `start`, or `None` when no `"""` ends it. Inside a block
/// string only `\"""` is an escape.
pub(super) fn end_of_block_string(bytes: &[u8], start: usize) -> Option<usize> {
    let mut index = start;
    while index < bytes.len() {
        if bytes[index..].starts_with(b"\\\"\"\"") {
            index += 4;
        } else if bytes[index..].starts_with(b"\"\"\"") {
            return Some(index + 3);
        } else {
            index += 1;
        }
    }
    None
}

/// Rejects a document whose operations expand to more than `max`
/// selections, before async-graphql walks the expanded operations, and then
/// a document with fields that cannot merge (see [`field_merge`]).
pub fn check_expansion(document: &ExecutableDocument, max: usize) -> ServerResult<()> {
    if expanded_selections(document, max) > max {
        return Err(too_complex(format!(
            "query has more than {max} selections once its fragments are expanded"
        )));
    }
    match field_merge::find_conflict(document, max) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Counts the selections of every operation in `document`, with each
/// fragment spread replaced by the fragment's selections, and stops once
/// the count passes `limit`. It follows spreads to one level past
/// [`MAX_RECURSIVE_DEPTH`], which covers every selection that
/// async-graphql walks before it rejects a deeper document.
pub fn expanded_selections(document: &ExecutableDocument, limit: usize) -> usize {
    let mut expansion = Expansion {
        document,
        count: 0,
        limit,
    };
    for (_, operation) in document.operations.iter() {
        if !expansion.walk(&operation.node.selection_set.node, 0) {
            break;
        }
    }
    expansion.count
}

struct Expansion<'a> {
    document: &'a ExecutableDocument,
    count: usize,
    limit: usize,
}

impl Expansion<'_> {
    /// Counts the selections under `selection_set`, which sits `depth`
    /// levels deep. Returns false once the count has passed the limit, so
    /// the walk costs at most `limit` steps, however often fragments are
    /// spread.
    fn walk(&mut self, selection_set: &SelectionSet, depth: usize) -> bool {
        if depth > MAX_RECURSIVE_DEPTH + 1 {
            return true;
        }
        for selection in &selection_set.items {
            self.count += 1;
            if self.count > self.limit {
                return false;
            }
            let children = match &selection.node {
                Selection::Field(field) => Some(&field.node.selection_set.node),
                Selection::InlineFragment(fragment) => Some(&fragment.node.selection_set.node),
                Selection::FragmentSpread(spread) => self
                    .document
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .map(|fragment| &fragment.node.selection_set.node),
            };
            if let Some(children) = children
                && !self.walk(children, depth + 1)
            {
                return false;
            }
        }
        true
    }
}

/// Rejects a document with more than `max` field aliases.
pub fn check_aliases(document: &ExecutableDocument, max: usize) -> ServerResult<()> {
    let count = count_aliases(document);
    if count > max {
        return Err(too_complex(format!(
            "query has {count} aliases, the maximum is {max}"
        )));
    }
    Ok(())
}

/// Builds the error of a document over a limit, with the code
/// `QUERY_TOO_COMPLEX`.
fn too_complex(message: String) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", "QUERY_TOO_COMPLEX");
    error.extensions = Some(extensions);
    error
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
    fn comment_ends_at_carriage_return() {
        // GraphQL ends a comment at `\r` as well as at `\n`, so the
        // brackets after it are parsed.
        let query = format!(
            "{{ users(first: #\r{}1{}) {{ nodes {{ id }} }} }}",
            "[".repeat(3000),
            "]".repeat(3000)
        );
        assert_eq!(nesting_depth(&query), 3002);
        assert_eq!(nesting_depth("{ a # [[[\r[[1]] }"), 3);
    }

    #[test]
    fn block_string_ends_at_triple_quote() {
        // A lone quote inside a block string does not end it.
        assert_eq!(nesting_depth(r#"{ a(x: """ " """, y: [[1]]) }"#), 4);
        assert_eq!(nesting_depth(r#"{ a(x: """ [[[ \""" [[[ """) }"#), 2);
    }

    #[test]
    fn unterminated_block_string_is_empty_string() {
        // Without a closing `"""`, the parser reads `""` and then a string
        // literal from the third quote, so the list after it is parsed.
        let query = format!(
            r#"{{ a(x: [""" x" {}1{}]) }}"#,
            "[".repeat(3000),
            "]".repeat(3000)
        );
        assert_eq!(nesting_depth(&query), 3003);
    }

    #[test]
    fn nesting_scan_is_linear() {
        // Every `"""` here is unterminated, because each later one is
        // escaped, and a search for its end from each would be quadratic.
        let query = "\\\"\"\"\n".repeat(20_000);
        let started = std::time::Instant::now();
        assert_eq!(nesting_depth(&query), 0);
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    /// A document whose fragments each spread the next one twice, so its
    /// operation expands to 2^`levels` fields.
    fn fragment_bomb(levels: usize) -> String {
        let mut document = String::from("{ ...F0 }");
        for level in 0..levels {
            let next = level + 1;
            document.push_str(&format!(
                " fragment F{level} on Query {{ ...F{next} ...F{next} }}"
            ));
        }
        document.push_str(&format!(" fragment F{levels} on Query {{ __typename }}"));
        document
    }

    #[test]
    fn expansion_count_stops_at_limit() {
        let document = async_graphql::parser::parse_query(fragment_bomb(60)).unwrap();
        assert_eq!(expanded_selections(&document, 1000), 1001);
    }

    #[test]
    fn checks_reject_fragment_bomb() {
        let checks = super::super::DocumentChecks::new(super::super::QueryLimits::default());
        let query = fragment_bomb(16);
        let document = async_graphql::parser::parse_query(&query).unwrap();
        let error = checks.check(&document, &query).unwrap_err();
        let code = error
            .extensions
            .as_ref()
            .and_then(|extensions| extensions.get("code"))
            .map(ToString::to_string);
        assert_eq!(code.as_deref(), Some("\"QUERY_TOO_COMPLEX\""));
    }

    #[test]
    fn introspection_query_fits_expansion_limit() {
        let document = async_graphql::parser::parse_query(INTROSPECTION_QUERY).unwrap();
        let count = expanded_selections(&document, MAX_EXPANDED_SELECTIONS);
        assert!(count < MAX_EXPANDED_SELECTIONS / 10, "{count} selections");
    }

    /// The introspection query of the bundled GraphiQL
    /// (`assets/graphiql/graphiql.min.js`), with every optional field it
    /// can ask for.
    const INTROSPECTION_QUERY: &str = "
        query IntrospectionQuery {
          __schema {
            description
            queryType { name }
            mutationType { name }
            subscriptionType { name }
            types { ...FullType }
            directives {
              name description isRepeatable locations
              args(includeDeprecated: true) { ...InputValue }
            }
          }
        }
        fragment FullType on __Type {
          kind name description specifiedByURL isOneOf
          fields(includeDeprecated: true) {
            name description args(includeDeprecated: true) { ...InputValue }
            type { ...TypeRef } isDeprecated deprecationReason
          }
          inputFields(includeDeprecated: true) { ...InputValue }
          interfaces { ...TypeRef }
          enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
          possibleTypes { ...TypeRef }
        }
        fragment InputValue on __InputValue {
          name description type { ...TypeRef } defaultValue isDeprecated deprecationReason
        }
        fragment TypeRef on __Type {
          kind name ofType { kind name ofType { kind name ofType { kind name ofType {
            kind name ofType { kind name ofType { kind name ofType { kind name ofType {
              kind name ofType { kind name } } } } } } } } }
        }";

    #[test]
    fn no_aliases_counts_zero() {
        let document =
            async_graphql::parser::parse_query("{ users { nodes { id name } } }").unwrap();
        assert_eq!(count_aliases(&document), 0);
    }
}
