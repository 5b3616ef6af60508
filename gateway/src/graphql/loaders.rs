//! DataLoaders that batch the backend calls behind `Order.user` and
//! `User.orders`, so that a page of users with their orders costs a fixed
//! number of backend calls instead of one per user.
//!
//! Loaders are created per GraphQL request with a cache of that request
//! only, so nothing is cached across requests or callers.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};

use crate::api::Api;
use crate::auth::Call;
use crate::error::ApiError;
use crate::model::{Order, User};

/// The per-request loader of users, as resolvers find it in the context.
pub type UserDataLoader = DataLoader<UserLoader, HashMapCache>;

/// The per-request loader of each user's orders.
pub type OrdersDataLoader = DataLoader<OrdersLoader, HashMapCache>;

/// Loads users by id through `BatchGetUsers`.
pub struct UserLoader {
    pub api: Api,
    pub call: Call,
}

impl Loader<String> for UserLoader {
    type Value = User;
    type Error = Arc<ApiError>;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, User>, Self::Error> {
        let mut found = HashMap::with_capacity(keys.len());
        // BatchGetUsers takes at most 100 ids per call.
        for chunk in keys.chunks(100) {
            let users = self
                .api
                .batch_get_users(&self.call, chunk.to_vec())
                .await
                .map_err(Arc::new)?;
            found.extend(users.into_iter().map(|user| (user.id.to_string(), user)));
        }
        Ok(found)
    }
}

/// Key of [`OrdersLoader`]: a user, how many of their newest orders to
/// load, and whether with their items and payments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserOrdersKey {
    pub user_id: String,
    pub limit: i32,
    pub with_details: bool,
}

/// Loads each user's newest orders through `ListOrdersByUsers`, one call per
/// distinct limit and 100 users.
pub struct OrdersLoader {
    pub api: Api,
    pub call: Call,
}

impl Loader<UserOrdersKey> for OrdersLoader {
    type Value = Vec<Order>;
    type Error = Arc<ApiError>;

    async fn load(
        &self,
        keys: &[UserOrdersKey],
    ) -> Result<HashMap<UserOrdersKey, Vec<Order>>, Self::Error> {
        let mut by_call: HashMap<(i32, bool), Vec<String>> = HashMap::new();
        for key in keys {
            by_call
                .entry((key.limit, key.with_details))
                .or_default()
                .push(key.user_id.clone());
        }

        let mut loaded = HashMap::with_capacity(keys.len());
        for ((limit, with_details), user_ids) in by_call {
            for chunk in user_ids.chunks(100) {
                let results = self
                    .api
                    .orders_of_users(&self.call, chunk.to_vec(), limit, with_details)
                    .await
                    .map_err(Arc::new)?;
                for (user_id, orders) in results {
                    let key = UserOrdersKey {
                        user_id,
                        limit,
                        with_details,
                    };
                    loaded.insert(key, orders);
                }
            }
        }
        Ok(loaded)
    }
}
