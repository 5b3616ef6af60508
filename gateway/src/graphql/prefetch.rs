//! Loads the nested data of a whole page in one batch before the page's
//! items are resolved.
//!
//! The executor resolves the items of a list in groups and yields to the
//! runtime between groups. Under load the DataLoader's batch window can
//! close before every item has requested its key, which splits one batch
//! into several backend calls. A page resolver therefore loads every item's
//! key at once, so the nested resolvers read the loader's per-request cache.

use std::collections::BTreeSet;

use async_graphql::{Context, Lookahead, Value};

use super::loaders::{OrdersDataLoader, UserDataLoader, UserOrdersKey};
use crate::model::{Order, User};

/// Default of `User.orders(first:)`.
pub const DEFAULT_ORDERS_PER_USER: i32 = 10;

/// Loads the orders of every user on the page when the query selects
/// `nodes { orders }`, once per distinct `first` argument and choice of
/// details.
pub async fn orders_of_page(ctx: &Context<'_>, users: &[User], max_per_user: i32) {
    if users.is_empty() {
        return;
    }
    let mut calls = BTreeSet::new();
    for field in ctx
        .look_ahead()
        .field("nodes")
        .field("orders")
        .selection_fields()
    {
        let with_details = selects_details(&Lookahead::from(field));
        let first = field.arguments().ok().and_then(|arguments| {
            arguments
                .into_iter()
                .find(|(name, _)| name.as_str() == "first")
                .and_then(|(_, value)| match value {
                    Value::Number(number) => number.as_i64(),
                    _ => None,
                })
        });
        let limit = first.unwrap_or(i64::from(DEFAULT_ORDERS_PER_USER));
        // An invalid limit is left to the field's resolver to reject.
        if let Ok(limit) = i32::try_from(limit)
            && (1..=max_per_user).contains(&limit)
        {
            calls.insert((limit, with_details));
        }
    }
    let keys: Vec<UserOrdersKey> = calls
        .into_iter()
        .flat_map(|(limit, with_details)| {
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

/// Checks whether a selection of `User.orders` includes items or payments,
/// which only a call with details fills.
pub fn selects_details(orders: &Lookahead<'_>) -> bool {
    orders.field("items").exists() || orders.field("payments").exists()
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
