//! Request bodies and list parameters shared by REST and GraphQL.
//!
//! REST decodes them from JSON with unknown fields rejected; GraphQL takes
//! them as input objects. The gateway checks only what it must to build a
//! gRPC request; the services validate every field.

use async_graphql::{Enum, InputObject};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::int64::Int64;
use crate::model::{OrderStatus, PaymentMethod, SortDirection, UserStatus};

#[derive(Debug, Clone, Deserialize, ToSchema, InputObject)]
#[serde(deny_unknown_fields)]
pub struct CreateUserInput {
    /// 1 to 100 characters.
    pub name: String,
    pub email: String,
    /// ACTIVE when left out.
    #[serde(default)]
    pub status: Option<UserStatus>,
}

/// Fields to change; at least one is required.
#[derive(Debug, Clone, Default, Deserialize, ToSchema, InputObject)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub status: Option<UserStatus>,
}

#[derive(Debug, Clone, Deserialize, ToSchema, InputObject)]
#[serde(deny_unknown_fields)]
pub struct OrderItemInput {
    pub sku: String,
    #[serde(deserialize_with = "crate::int64::deserialize_i32")]
    pub quantity: i32,
    /// Price of one unit in minor units.
    pub unit_price: Int64,
}

#[derive(Debug, Clone, Deserialize, ToSchema, InputObject)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    pub recipient: String,
    pub line1: String,
    #[serde(default)]
    #[graphql(default)]
    pub line2: String,
    pub city: String,
    #[serde(default)]
    #[graphql(default)]
    pub region: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 code.
    pub country: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema, InputObject)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderInput {
    pub user_id: String,
    /// ISO 4217 code, for example "IDR".
    pub currency: String,
    pub items: Vec<OrderItemInput>,
    pub shipping_address: AddressInput,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChangeInput {
    /// SHIPPED, DELIVERED or CANCELLED. PAID is reached by paying.
    pub status: OrderStatus,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelInput {
    /// Optional, at most 500 characters.
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema, InputObject)]
#[serde(deny_unknown_fields)]
pub struct PaymentInput {
    /// Must equal the order's total.
    pub amount: Int64,
    /// Must equal the order's currency.
    pub currency: String,
    pub method: PaymentMethod,
    /// Token from the payment provider. The built-in test provider declines
    /// tokens that start with "tok_decline".
    pub payment_token: String,
}

/// Column a user listing is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema, Enum)]
#[serde(rename_all = "snake_case")]
pub enum UserOrderField {
    CreatedAt,
    Name,
    Email,
}

/// Column an order listing is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema, Enum)]
#[serde(rename_all = "snake_case")]
pub enum OrderOrderField {
    CreatedAt,
    Total,
    UpdatedAt,
}

/// Query parameters of `GET /users`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserListParams {
    /// 1 to 100, default 20. Larger values are rejected.
    pub page_size: Option<i32>,
    /// `next_page_token` of the previous page.
    pub page_token: Option<String>,
    /// Case-insensitive substring of the name.
    pub name_contains: Option<String>,
    /// Case-insensitive substring of the email address.
    pub email_contains: Option<String>,
    pub status: Option<UserStatus>,
    /// created_at (default, newest first), name or email.
    pub order_by: Option<UserOrderField>,
    /// ASC or DESC.
    pub direction: Option<SortDirection>,
}

/// Query parameters of `GET /orders`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderListParams {
    /// 1 to 100, default 20. Larger values are rejected.
    pub page_size: Option<i32>,
    /// `next_page_token` of the previous page.
    pub page_token: Option<String>,
    pub user_id: Option<String>,
    pub status: Option<OrderStatus>,
    /// RFC 3339 instant; orders created at or after it.
    pub created_after: Option<String>,
    /// RFC 3339 instant; orders created before it.
    pub created_before: Option<String>,
    /// Orders whose total is at least this many minor units.
    #[param(value_type = Option<String>)]
    pub min_total: Option<Int64>,
    /// created_at (default, newest first), total or updated_at.
    pub order_by: Option<OrderOrderField>,
    /// ASC or DESC.
    pub direction: Option<SortDirection>,
}

/// Query parameters of `GET /users/{id}/orders`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1 to 100, default 20. Larger values are rejected.
    pub page_size: Option<i32>,
    /// `next_page_token` of the previous page.
    pub page_token: Option<String>,
}
