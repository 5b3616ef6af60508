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
use crate::rest::schemas;

#[derive(Debug, Clone, Deserialize, ToSchema, InputObject)]
#[serde(deny_unknown_fields)]
pub struct CreateUserInput {
    #[schema(schema_with = schemas::user_name)]
    pub name: String,
    #[schema(schema_with = schemas::email)]
    pub email: String,
    /// ACTIVE when left out.
    #[serde(default)]
    pub status: Option<UserStatus>,
}

/// Fields to change; at least one is required. A field that is missing or
/// null keeps its value. The schema is written by hand in `rest::schemas`
/// because "at least one non-null field" needs `anyOf`.
#[derive(Debug, Clone, Default, Deserialize, InputObject)]
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
    #[schema(schema_with = schemas::sku)]
    pub sku: String,
    #[serde(deserialize_with = "crate::int64::deserialize_i32")]
    #[schema(schema_with = schemas::quantity)]
    pub quantity: i32,
    #[schema(schema_with = schemas::unit_price)]
    pub unit_price: Int64,
}

#[derive(Debug, Clone, Deserialize, ToSchema, InputObject)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    #[schema(schema_with = schemas::recipient)]
    pub recipient: String,
    #[schema(schema_with = schemas::address_line1)]
    pub line1: String,
    #[serde(default)]
    #[graphql(default)]
    #[schema(schema_with = schemas::address_line2)]
    pub line2: String,
    #[schema(schema_with = schemas::city)]
    pub city: String,
    #[serde(default)]
    #[graphql(default)]
    #[schema(schema_with = schemas::region)]
    pub region: String,
    #[schema(schema_with = schemas::postal_code)]
    pub postal_code: String,
    #[schema(schema_with = schemas::country)]
    pub country: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema, InputObject)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderInput {
    /// UUID of an ACTIVE user.
    #[schema(format = Uuid)]
    pub user_id: String,
    #[schema(schema_with = schemas::currency)]
    pub currency: String,
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<OrderItemInput>,
    pub shipping_address: AddressInput,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChangeInput {
    #[schema(schema_with = schemas::status_change_target)]
    pub status: OrderStatus,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelInput {
    #[serde(default)]
    #[schema(schema_with = schemas::cancel_reason)]
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema, InputObject)]
#[serde(deny_unknown_fields)]
pub struct PaymentInput {
    #[schema(schema_with = schemas::payment_amount)]
    pub amount: Int64,
    /// Must equal the order's currency.
    #[schema(schema_with = schemas::currency)]
    pub currency: String,
    pub method: PaymentMethod,
    #[schema(schema_with = schemas::payment_token)]
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
    #[param(schema_with = schemas::page_size)]
    pub page_size: Option<i32>,
    #[param(schema_with = schemas::page_token)]
    pub page_token: Option<String>,
    #[param(schema_with = schemas::name_filter)]
    pub name_contains: Option<String>,
    #[param(schema_with = schemas::email_filter)]
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
    #[param(schema_with = schemas::page_size)]
    pub page_size: Option<i32>,
    #[param(schema_with = schemas::page_token)]
    pub page_token: Option<String>,
    #[param(schema_with = schemas::user_id_filter)]
    pub user_id: Option<String>,
    pub status: Option<OrderStatus>,
    /// RFC 3339 instant; orders created at or after it.
    #[param(format = DateTime)]
    pub created_after: Option<String>,
    /// RFC 3339 instant; orders created before it, which must be later
    /// than `created_after`.
    #[param(format = DateTime)]
    pub created_before: Option<String>,
    #[param(schema_with = schemas::min_total)]
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
    #[param(schema_with = schemas::page_size)]
    pub page_size: Option<i32>,
    #[param(schema_with = schemas::page_token)]
    pub page_token: Option<String>,
}
