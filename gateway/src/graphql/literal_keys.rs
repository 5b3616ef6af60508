//! The GraphQL validation rule "Input Object Field Uniqueness": an input
//! object literal such as `{ email: "a", email: "b" }` must not give a
//! field twice.
//!
//! async-graphql's parser keeps the last of two equal fields, so after
//! parsing the repeat is gone and `createUser(input: { email: "a", email:
//! "b" })` would create a user with the second address. The rule is
//! checked on the query text, in one pass that separates object
//! literals from selection sets by what encloses them: a `{` inside
//! arguments, a list or another literal opens a literal, any other `{` a
//! selection set.

use async_graphql::{Pos, ServerError};

use super::limits::{end_of_block_string, end_of_comment, end_of_string};

/// The construct that an open bracket began.
enum Scope<'a> {
    /// Arguments or variable definitions.
    Parentheses,
    List,
    /// An input object literal, with the field names given so far.
    Literal(Vec<&'a [u8]>),
    SelectionSet,
}

/// Returns an error naming the first field that an input object literal of
/// `query` gives twice, at its second occurrence. Text that is not valid
/// GraphQL is left to the parser.
pub fn check(query: &str) -> Result<(), ServerError> {
    let bytes = query.as_bytes();
    let mut scopes: Vec<Scope> = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        index = match byte {
            b'#' => end_of_comment(bytes, index + 1),
            b'"' if bytes[index..].starts_with(b"\"\"\"") => {
                end_of_block_string(bytes, index + 3).unwrap_or(bytes.len())
            }
            b'"' => end_of_string(bytes, index + 1),
            b'(' | b'[' | b'{' => {
                let inside_value = matches!(
                    scopes.last(),
                    Some(Scope::Parentheses | Scope::List | Scope::Literal(_))
                );
                scopes.push(match byte {
                    b'(' => Scope::Parentheses,
                    b'[' => Scope::List,
                    _ if inside_value => Scope::Literal(Vec::new()),
                    _ => Scope::SelectionSet,
                });
                index + 1
            }
            b')' | b']' | b'}' => {
                scopes.pop();
                index + 1
            }
            b'_' | b'A'..=b'Z' | b'a'..=b'z' => {
                let end = end_of_name(bytes, index);
                if let Some(Scope::Literal(names)) = scopes.last_mut()
                    && next_token(bytes, end) == Some(b':')
                {
                    let name = &bytes[index..end];
                    if names.contains(&name) {
                        return Err(repeated(query, index, name));
                    }
                    names.push(name);
                }
                end
            }
            // A number: digits, sign, point and exponent, all skipped, so
            // that the `e` of `1e5` is not read as a name.
            b'-' | b'0'..=b'9' => end_of_name(bytes, index + 1),
            _ => index + 1,
        };
    }
    Ok(())
}

fn end_of_name(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|byte| {
            !(byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'+' | b'-'))
        })
        .map_or(bytes.len(), |offset| start + offset)
}

/// Returns the first byte after `start` that is not white space, a comma
/// or a comment.
fn next_token(bytes: &[u8], start: usize) -> Option<u8> {
    let mut index = start;
    while index < bytes.len() {
        match bytes[index] {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => index += 1,
            b'#' => index = end_of_comment(bytes, index + 1),
            other => return Some(other),
        }
    }
    None
}

fn repeated(query: &str, offset: usize, name: &[u8]) -> ServerError {
    let before = &query[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before[line_start..].chars().count() + 1;
    ServerError::new(
        format!(
            "an input object literal gives the field \"{}\" twice",
            String::from_utf8_lossy(name)
        ),
        Some(Pos { line, column }),
    )
}

#[cfg(test)]
mod tests {
    use super::check;

    fn repeated_at(query: &str) -> Option<(String, usize, usize)> {
        check(query).err().map(|error| {
            let position = error.locations[0];
            (error.message, position.line, position.column)
        })
    }

    #[test]
    fn check_rejects_a_field_given_twice() {
        let (message, line, column) = repeated_at(
            "mutation { createUser(input: { name: \"A\", email: \"a@x\", email: \"b@x\" }) { id } }",
        )
        .unwrap();
        assert_eq!(
            message,
            "an input object literal gives the field \"email\" twice"
        );
        assert_eq!((line, column), (1, 57));
    }

    #[test]
    fn check_covers_nested_literals() {
        for query in [
            "{ f(a: { b: { c: 1, c: 2 } }) }",
            "{ f(a: [{ x: 1 }, { y: 1, y: 2 }]) }",
            "query ($v: In = { p: 1 p: 2 }) { f(a: $v) }",
            "{ f @d(a: { k: 1, k: 2 }) }",
            "{ f(a: { k: 1, # comment\n k: 2 }) }",
        ] {
            assert!(repeated_at(query).is_some(), "{query}");
        }
    }

    #[test]
    fn check_passes_distinct_fields() {
        for query in [
            // Repeated aliases and fields of selection sets: other rules.
            "{ a: user(id: 1) { id id } a: user(id: 1) { id } }",
            "{ f(a: { x: 1, y: { x: 2 } }, b: { x: 3 }) }",
            "{ f(a: [{ x: 1 }, { x: 2 }]) }",
            "{ f(a: \"{ x: 1, x: 2 }\") }",
            "{ f(a: \"\"\"{ x: 1, x: 2 }\"\"\") }",
            "# { x: 1, x: 2 }\n{ f }",
            "{ f(a: { n: 1e5, e: 2, m: -1.5E-3 }) }",
            "{ f(a: { x: ENUM_X, y: x }) }",
        ] {
            assert_eq!(repeated_at(query), None, "{query}");
        }
    }
}
