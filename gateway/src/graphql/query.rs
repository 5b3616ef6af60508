//! GraphQL queries, connection types and the batched fields of `User` and
//! `Order`.

use async_graphql::{ComplexObject, Context, ID, InputObject, Object, Result, SimpleObject};

use super::{api, call};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::inputs::{OrderListParams, OrderOrderField, UserListParams, UserOrderField};
use crate::int64::Int64;
use crate::model::{
    Order, OrderMetrics, OrderStatus, SortDirection, User, UserMetrics, UserStatus,
};

use super::loaders::{OrdersDataLoader, UserDataLoader, UserOrdersKey};
use super::prefetch;

/// Most orders `User.orders` returns per user.
const MAX_ORDERS_PER_USER: i32 = 100;

#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    /// Pass as `after` to get the next page; null on the last page.
    pub end_cursor: Option<String>,
}

#[derive(SimpleObject)]
pub struct UserConnection {
    pub nodes: Vec<User>,
    pub page_info: PageInfo,
}

#[derive(SimpleObject)]
pub struct OrderConnection {
    pub nodes: Vec<Order>,
    pub page_info: PageInfo,
}

#[derive(InputObject, Default)]
pub struct UserFilter {
    /// Case-insensitive substring of the name.
    pub name_contains: Option<String>,
    /// Case-insensitive substring of the email address.
    pub email_contains: Option<String>,
    pub status: Option<UserStatus>,
}

#[derive(InputObject)]
pub struct UserOrderBy {
    pub field: UserOrderField,
    pub direction: Option<SortDirection>,
}

#[derive(InputObject, Default)]
pub struct OrderFilter {
    pub user_id: Option<ID>,
    pub status: Option<OrderStatus>,
    /// RFC 3339 instant; orders created at or after it.
    pub created_after: Option<String>,
    /// RFC 3339 instant; orders created before it.
    pub created_before: Option<String>,
    /// Minimum total in minor units.
    pub min_total: Option<Int64>,
}

#[derive(InputObject)]
pub struct OrderOrderBy {
    pub field: OrderOrderField,
    pub direction: Option<SortDirection>,
}

pub struct Query;

#[Object]
impl Query {
    /// The caller's own user record: the user whose id is the token's
    /// subject. Null for a caller that is no user, such as an admin
    /// service account, and while authentication is off.
    async fn me(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let call = call(ctx);
        let Caller::Authenticated(identity) = &call.caller else {
            return Ok(None);
        };
        if uuid::Uuid::parse_str(&identity.subject).is_err() {
            return Ok(None);
        }
        match api(ctx).get_user(call, &identity.subject).await {
            Ok(user) => Ok(Some(user)),
            Err(error) if error.code == "NOT_FOUND" => Ok(None),
            Err(error) => Err(error.into_graphql()),
        }
    }

    /// A user by id.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> Result<User> {
        api(ctx)
            .get_user(call(ctx), &id)
            .await
            .map_err(ApiError::into_graphql)
    }

    /// Users, newest first unless `orderBy` specifies another order.
    #[graphql(complexity = "page_size(first, 20).saturating_mul(child_complexity)")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "1 to 100, default 20 (also for 0)")] first: Option<i32>,
        #[graphql(desc = "`endCursor` of the previous page")] after: Option<String>,
        filter: Option<UserFilter>,
        order_by: Option<UserOrderBy>,
    ) -> Result<UserConnection> {
        let filter = filter.unwrap_or_default();
        let params = UserListParams {
            page_size: first,
            page_token: after,
            name_contains: filter.name_contains,
            email_contains: filter.email_contains,
            status: filter.status,
            order_by: order_by.as_ref().map(|order| order.field),
            direction: order_by.and_then(|order| order.direction),
        };
        let page = api(ctx)
            .list_users(call(ctx), params)
            .await
            .map_err(ApiError::into_graphql)?;
        prefetch::orders_of_page(ctx, &page.items, MAX_ORDERS_PER_USER).await;
        Ok(UserConnection {
            nodes: page.items,
            page_info: page_info(page.next_page_token),
        })
    }

    /// An order by id.
    async fn order(&self, ctx: &Context<'_>, id: ID) -> Result<Order> {
        api(ctx)
            .get_order(call(ctx), &id)
            .await
            .map_err(ApiError::into_graphql)
    }

    /// Orders, newest first unless `orderBy` specifies another order.
    #[graphql(complexity = "page_size(first, 20).saturating_mul(child_complexity)")]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "1 to 100, default 20 (also for 0)")] first: Option<i32>,
        #[graphql(desc = "`endCursor` of the previous page")] after: Option<String>,
        filter: Option<OrderFilter>,
        order_by: Option<OrderOrderBy>,
    ) -> Result<OrderConnection> {
        let filter = filter.unwrap_or_default();
        let params = OrderListParams {
            page_size: first,
            page_token: after,
            user_id: filter.user_id.map(|id| id.to_string()),
            status: filter.status,
            created_after: filter.created_after,
            created_before: filter.created_before,
            min_total: filter.min_total,
            order_by: order_by.as_ref().map(|order| order.field),
            direction: order_by.and_then(|order| order.direction),
        };
        let page = api(ctx)
            .list_orders(call(ctx), params)
            .await
            .map_err(ApiError::into_graphql)?;
        prefetch::users_of_page(ctx, &page.items).await;
        Ok(OrderConnection {
            nodes: page.items,
            page_info: page_info(page.next_page_token),
        })
    }

    /// Business numbers about users.
    async fn user_metrics(&self, ctx: &Context<'_>) -> Result<UserMetrics> {
        api(ctx)
            .user_metrics(call(ctx))
            .await
            .map_err(ApiError::into_graphql)
    }

    /// Business numbers about orders and payments.
    async fn order_metrics(&self, ctx: &Context<'_>) -> Result<OrderMetrics> {
        api(ctx)
            .order_metrics(call(ctx))
            .await
            .map_err(ApiError::into_graphql)
    }
}

#[ComplexObject]
impl User {
    /// The user's newest orders, batched across all users in the response.
    #[graphql(complexity = "page_size(first, 10).saturating_mul(child_complexity)")]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "1 to 100, default 10 (also for 0)")] first: Option<i32>,
    ) -> Result<Vec<Order>> {
        let limit = prefetch::orders_limit(first);
        if !(1..=MAX_ORDERS_PER_USER).contains(&limit) {
            return Err(ApiError::invalid_argument(format!(
                "first: must be between 1 and {MAX_ORDERS_PER_USER}, got {limit}"
            ))
            .into_graphql());
        }
        let key = UserOrdersKey {
            user_id: self.id.to_string(),
            limit,
            with_details: prefetch::with_details(ctx),
        };
        let loader = ctx.data_unchecked::<OrdersDataLoader>();
        let orders = loader
            .load_one(key)
            .await
            .map_err(|error| (*error).clone().into_graphql())?;
        Ok(orders.unwrap_or_default())
    }
}

#[ComplexObject]
impl Order {
    /// The user who placed the order; null if the user was deleted.
    async fn user(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let loader = ctx.data_unchecked::<UserDataLoader>();
        loader
            .load_one(self.user_id.to_string())
            .await
            .map_err(|error| (*error).clone().into_graphql())
    }
}

fn page_info(next_page_token: String) -> PageInfo {
    PageInfo {
        has_next_page: !next_page_token.is_empty(),
        end_cursor: (!next_page_token.is_empty()).then_some(next_page_token),
    }
}

/// Returns the number of items a list field with argument `first` returns,
/// for the complexity limit: `first`, or `default` when it is missing or 0,
/// as the services read it. A negative `first` is rejected when the field
/// resolves.
fn page_size(first: Option<i32>, default: usize) -> usize {
    match first {
        Some(first) if first > 0 => first as usize,
        _ => default,
    }
}
