//! Response keys in selection order, which the GraphQL specification
//! recommends for a serialised response.
//!
//! async-graphql 7.2 resolves the fields of a query's object concurrently
//! and inserts each as it finishes, so a field that waits on a backend comes
//! after a sibling that did not, whatever the query's order. [`restore`]
//! sorts every object of the response back into the order of its selection
//! set. An object already in order, the common case, is only read. The order
//! of one selection set is worked out once for all the objects it selected,
//! such as the items of a list.

use async_graphql::parser::types::{ExecutableDocument, SelectionSet};
use async_graphql::{Name, Value};

use super::selections::{Fragments, select_operation};

type Object = async_graphql::indexmap::IndexMap<Name, Value>;

/// Sorts the keys of every object in `data` into the order in which the
/// operation of `document` selects them.
pub fn restore(data: &mut Value, document: &ExecutableDocument, operation_name: Option<&str>) {
    let Some(operation) = select_operation(document, operation_name) else {
        return;
    };
    let fragments = Fragments { document };
    sort(fragments, vec![data], &[&operation.node.selection_set.node]);
}

/// Sorts the objects in `values`, lists included, which `sets` selected,
/// then their children.
fn sort<'a>(fragments: Fragments<'a>, values: Vec<&mut Value>, sets: &[&'a SelectionSet]) {
    let mut objects = Vec::new();
    for value in values {
        gather(value, &mut objects);
    }
    if objects.is_empty() {
        return;
    }
    let mut keys = Vec::new();
    for set in sets {
        fragments.response_keys(set, &mut keys);
    }
    for object in &mut objects {
        sort_keys(object, &keys);
    }
    for key in keys {
        let mut fields = Vec::new();
        for set in sets {
            fragments.collect(set, key, &mut fields);
        }
        let child_sets: Vec<&SelectionSet> = fields
            .iter()
            .map(|field| &field.node.selection_set.node)
            .filter(|set| !set.items.is_empty())
            .collect();
        if child_sets.is_empty() {
            continue;
        }
        let children = objects
            .iter_mut()
            .filter_map(|object| object.get_mut(key))
            .collect();
        sort(fragments, children, &child_sets);
    }
}

/// Adds the objects of `value`, looking into lists, to `objects`.
fn gather<'v>(value: &'v mut Value, objects: &mut Vec<&'v mut Object>) {
    match value {
        Value::Object(object) => objects.push(object),
        Value::List(items) => {
            for item in items {
                gather(item, objects);
            }
        }
        _ => {}
    }
}

fn sort_keys(object: &mut Object, keys: &[&str]) {
    let rank = |name: &Name| {
        keys.iter()
            .position(|key| *key == name.as_str())
            .unwrap_or(usize::MAX)
    };
    if !object.keys().map(rank).is_sorted() {
        object.sort_by_cached_key(|name, _| rank(name));
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{Name, Value};

    use super::restore;

    fn object(pairs: &[(&str, Value)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(key, value)| (Name::new(key), value.clone()))
                .collect(),
        )
    }

    fn keys(value: &Value) -> Vec<String> {
        match value {
            Value::Object(object) => object.keys().map(ToString::to_string).collect(),
            _ => panic!("not an object: {value}"),
        }
    }

    #[test]
    fn restore_sorts_nested_objects() {
        let query = "query Page { users { nodes { id ...Named orders { id status } } total } } \
                     fragment Named on User { name: fullName }";
        let document = async_graphql::parser::parse_query(query).unwrap();
        let order = || object(&[("status", Value::from("PAID")), ("id", Value::from("o1"))]);
        let user = |id: &str| {
            object(&[
                ("orders", Value::List(vec![order(), order()])),
                ("name", Value::from("Ayu")),
                ("id", Value::from(id)),
            ])
        };
        let mut data = object(&[(
            "users",
            object(&[
                ("total", Value::from(2)),
                (
                    "nodes",
                    Value::List(vec![user("u1"), Value::Null, user("u2")]),
                ),
            ]),
        )]);

        restore(&mut data, &document, Some("Page"));

        let Value::Object(root) = &data else {
            unreachable!()
        };
        let users = &root["users"];
        assert_eq!(keys(users), ["nodes", "total"]);
        let Value::Object(users) = users else {
            unreachable!()
        };
        let Value::List(nodes) = &users["nodes"] else {
            panic!("nodes is not a list")
        };
        for node in [&nodes[0], &nodes[2]] {
            assert_eq!(keys(node), ["id", "name", "orders"]);
            let Value::Object(node) = node else {
                unreachable!()
            };
            let Value::List(orders) = &node["orders"] else {
                panic!("orders is not a list")
            };
            for order in orders {
                assert_eq!(keys(order), ["id", "status"]);
            }
        }
        assert_eq!(nodes[1], Value::Null);
    }

    #[test]
    fn restore_puts_unknown_keys_last() {
        let document = async_graphql::parser::parse_query("query A { b a } query B { x }").unwrap();
        let shuffled = || {
            object(&[
                ("extra", Value::Null),
                ("a", Value::Null),
                ("b", Value::Null),
            ])
        };

        let mut data = shuffled();
        restore(&mut data, &document, Some("A"));
        assert_eq!(keys(&data), ["b", "a", "extra"]);

        // Two operations and no name: no operation is chosen.
        let mut data = shuffled();
        restore(&mut data, &document, None);
        assert_eq!(keys(&data), ["extra", "a", "b"]);
    }
}
