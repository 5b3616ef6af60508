//! Loads the nested data of a whole page in one batch before the page's
//! items are resolved.
//!
//! The executor resolves the items of a list in groups and yields to the
//! runtime between groups. Under load the DataLoader's batch window can
//! close before every item has requested its key, which splits one batch
//! into several backend calls. A page resolver therefore loads every item's
//! key at once, so the nested resolvers read the loader's per-request cache.

use std::collections::BTreeSet;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Context, Value};

use super::loaders::{OrdersDataLoader, UserDataLoader, UserOrdersKey};
use crate::model::{Order, User};

/// Default of `User.orders(first:)`.
pub const DEFAULT_ORDERS_PER_USER: i32 = 10;

/// Returns the number of orders per user that `User.orders(first:)`
/// requests: the default when `first` is missing or 0, as for the other
/// lists.
pub fn orders_limit(first: Option<i32>) -> i32 {
    match first {
        None | Some(0) => DEFAULT_ORDERS_PER_USER,
        Some(first) => first,
    }
}

/// Loads the orders of every user on the page when the query selects
/// `nodes { orders }`, once per distinct `first` argument.
pub async fn orders_of_page(ctx: &Context<'_>, users: &[User], max_per_user: i32) {
    if users.is_empty() {
        return;
    }
    let with_details = with_details(ctx);
    let mut limits = BTreeSet::new();
    for field in ctx
        .look_ahead()
        .field("nodes")
        .field("orders")
        .selection_fields()
    {
        let first = field.arguments().ok().and_then(|arguments| {
            arguments
                .into_iter()
                .find(|(name, _)| name.as_str() == "first")
                .and_then(|(_, value)| match value {
                    Value::Number(number) => number.as_i64(),
                    _ => None,
                })
        });
        // An invalid limit is left to the field's resolver to reject.
        let limit = match first.map(i32::try_from) {
            None => Some(orders_limit(None)),
            Some(Ok(first)) => Some(orders_limit(Some(first))),
            Some(Err(_)) => None,
        };
        if let Some(limit) = limit
            && (1..=max_per_user).contains(&limit)
        {
            limits.insert(limit);
        }
    }
    let keys: Vec<UserOrdersKey> = limits
        .into_iter()
        .flat_map(|limit| {
            users.iter().map(move |user| UserOrdersKey {
                user_id: user.id.to_string(),
                limit,
                with_details,
            })
        })
        .collect();
    if keys.is_empty() {
        return;
    }
    let loader = ctx.data_unchecked::<OrdersDataLoader>();
    // A failure is not cached, so each nested resolver reports it again.
    let _ = loader.load_many(keys).await;
}

/// Whether the request's document selects `items` or `payments` anywhere,
/// which only a `ListOrdersByUsers` call with details fills. Every
/// `User.orders` load of the request follows it, so that two `orders`
/// fields merged under one response key come from the same call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderDetails(pub bool);

impl OrderDetails {
    /// Walks every operation and fragment of `document` once, without
    /// following spreads, since each fragment is walked on its own.
    pub fn of(document: &ExecutableDocument) -> Self {
        let mut pending: Vec<&SelectionSet> = document
            .operations
            .iter()
            .map(|(_, operation)| &operation.node.selection_set.node)
            .chain(
                document
                    .fragments
                    .values()
                    .map(|fragment| &fragment.node.selection_set.node),
            )
            .collect();
        while let Some(selection_set) = pending.pop() {
            for selection in &selection_set.items {
                match &selection.node {
                    Selection::Field(field) => {
                        if matches!(field.node.name.node.as_str(), "items" | "payments") {
                            return Self(true);
                        }
                        pending.push(&field.node.selection_set.node);
                    }
                    Selection::InlineFragment(fragment) => {
                        pending.push(&fragment.node.selection_set.node);
                    }
                    Selection::FragmentSpread(_) => {}
                }
            }
        }
        Self(false)
    }
}

/// Reads the request's [`OrderDetails`], or returns true when the handler
/// set none.
pub fn with_details(ctx: &Context<'_>) -> bool {
    ctx.data_opt::<OrderDetails>()
        .is_none_or(|details| details.0)
}

/// Loads the user of every order on the page when the query selects
/// `nodes { user }`.
pub async fn users_of_page(ctx: &Context<'_>, orders: &[Order]) {
    if orders.is_empty() || !ctx.look_ahead().field("nodes").field("user").exists() {
        return;
    }
    let ids: BTreeSet<String> = orders
        .iter()
        .map(|order| order.user_id.to_string())
        .collect();
    let loader = ctx.data_unchecked::<UserDataLoader>();
    // A failure is not cached, so each nested resolver reports it again.
    let _ = loader.load_many(ids).await;
}

#[cfg(test)]
mod tests {
    use super::OrderDetails;

    fn details_of(query: &str) -> bool {
        let document = async_graphql::parser::parse_query(query).unwrap();
        OrderDetails::of(&document).0
    }

    #[test]
    fn details_follow_the_whole_document() {
        let cases = [
            ("{ users { nodes { orders { id total } } } }", false),
            ("{ users { nodes { orders { id items { sku } } } } }", true),
            ("{ me { orders { payments { id } } } }", true),
            ("{ me { ... on User { orders { items { sku } } } } }", true),
            (
                "{ me { orders { ...Lines } } } fragment Lines on Order { items { sku } }",
                true,
            ),
            (
                "{ me { orders { ...Brief } } } fragment Brief on Order { id }",
                false,
            ),
        ];
        for (query, expected) in cases {
            assert_eq!(details_of(query), expected, "{query}");
        }
    }
}
