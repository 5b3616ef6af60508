//! Client-facing types shared by REST and GraphQL, and their conversions
//! from the backends' protobuf messages.
//!
//! JSON field names are the protos' snake_case names; GraphQL uses the same
//! fields in camelCase. Enum values are the proto names without their type
//! prefix (`PENDING`, not `ORDER_STATUS_PENDING`). Every int64 is an
//! [`Int64`], which travels as a string.

use async_graphql::{Enum, SimpleObject};
use lintas_proto::order::v1 as order_pb;
use lintas_proto::user::v1 as user_pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::int64::Int64;

/// Status of a user account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UserStatus {
    Active,
    Suspended,
}

/// Status of an order. See the order state machine in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentMethod {
    Card,
    BankTransfer,
    Wallet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    Succeeded,
    Failed,
    Refunded,
}

/// Sort direction of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SortDirection {
    Asc,
    Desc,
}

#[derive(Debug, Clone, Serialize, ToSchema, SimpleObject)]
#[graphql(complex)]
pub struct User {
    /// UUID of the user.
    #[schema(value_type = String, format = Uuid)]
    pub id: async_graphql::ID,
    pub name: String,
    pub email: String,
    pub status: UserStatus,
    /// RFC 3339 instant.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339 instant.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Starts at 1 and grows by one with every update.
    pub version: Int64,
}

#[derive(Debug, Clone, Serialize, ToSchema, SimpleObject)]
pub struct OrderItem {
    pub sku: String,
    pub quantity: i32,
    /// Price of one unit in the currency's minor units.
    pub unit_price: Int64,
}

#[derive(Debug, Clone, Serialize, ToSchema, SimpleObject)]
pub struct Address {
    pub recipient: String,
    pub line1: String,
    pub line2: String,
    pub city: String,
    pub region: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 code.
    pub country: String,
}

#[derive(Debug, Clone, Serialize, ToSchema, SimpleObject)]
pub struct Payment {
    #[schema(value_type = String, format = Uuid)]
    pub id: async_graphql::ID,
    /// Amount in minor units.
    pub amount: Int64,
    pub currency: String,
    pub method: PaymentMethod,
    pub status: PaymentStatus,
    /// Reason the charge was declined; empty unless the status is FAILED.
    pub failure_reason: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, ToSchema, SimpleObject)]
#[graphql(complex)]
pub struct Order {
    #[schema(value_type = String, format = Uuid)]
    pub id: async_graphql::ID,
    #[schema(value_type = String, format = Uuid)]
    pub user_id: async_graphql::ID,
    pub items: Vec<OrderItem>,
    /// ISO 4217 code.
    pub currency: String,
    /// Sum of quantity times unit price over the items, in minor units.
    pub total: Int64,
    pub status: OrderStatus,
    pub shipping_address: Option<Address>,
    pub payments: Vec<Payment>,
    /// True once a paid order was cancelled and its payment refunded.
    pub refunded: bool,
    pub cancel_reason: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub version: Int64,
}

#[derive(Debug, Clone, Serialize, ToSchema, SimpleObject)]
pub struct UserStatusCount {
    pub status: UserStatus,
    pub count: Int64,
}

/// Business numbers about users.
#[derive(Debug, Clone, Serialize, ToSchema, SimpleObject)]
pub struct UserMetrics {
    pub total_users: Int64,
    pub users_by_status: Vec<UserStatusCount>,
    /// Users created within the 24 hours before the call.
    pub users_created_last_24h: Int64,
}

#[derive(Debug, Clone, Serialize, ToSchema, SimpleObject)]
pub struct OrderStatusCount {
    pub status: OrderStatus,
    pub count: Int64,
}

#[derive(Debug, Clone, Serialize, ToSchema, SimpleObject)]
pub struct CurrencyAmount {
    pub currency: String,
    pub amount: Int64,
}

/// Business numbers about orders and payments.
#[derive(Debug, Clone, Serialize, ToSchema, SimpleObject)]
pub struct OrderMetrics {
    pub total_orders: Int64,
    pub orders_by_status: Vec<OrderStatusCount>,
    /// Totals of PAID, SHIPPED and DELIVERED orders, per currency.
    pub revenue_by_currency: Vec<CurrencyAmount>,
    pub payments_succeeded: Int64,
    pub payments_failed: Int64,
}

fn rfc3339(timestamp: Option<prost_types::Timestamp>) -> String {
    timestamp.map(|value| value.to_string()).unwrap_or_default()
}

impl UserStatus {
    pub fn from_proto(value: i32) -> Self {
        match user_pb::UserStatus::try_from(value) {
            Ok(user_pb::UserStatus::Suspended) => Self::Suspended,
            _ => Self::Active,
        }
    }

    pub fn to_proto(self) -> user_pb::UserStatus {
        match self {
            Self::Active => user_pb::UserStatus::Active,
            Self::Suspended => user_pb::UserStatus::Suspended,
        }
    }
}

impl OrderStatus {
    pub fn from_proto(value: i32) -> Self {
        match order_pb::OrderStatus::try_from(value) {
            Ok(order_pb::OrderStatus::Paid) => Self::Paid,
            Ok(order_pb::OrderStatus::Shipped) => Self::Shipped,
            Ok(order_pb::OrderStatus::Delivered) => Self::Delivered,
            Ok(order_pb::OrderStatus::Cancelled) => Self::Cancelled,
            _ => Self::Pending,
        }
    }

    pub fn to_proto(self) -> order_pb::OrderStatus {
        match self {
            Self::Pending => order_pb::OrderStatus::Pending,
            Self::Paid => order_pb::OrderStatus::Paid,
            Self::Shipped => order_pb::OrderStatus::Shipped,
            Self::Delivered => order_pb::OrderStatus::Delivered,
            Self::Cancelled => order_pb::OrderStatus::Cancelled,
        }
    }
}

impl PaymentMethod {
    pub fn from_proto(value: i32) -> Self {
        match order_pb::PaymentMethod::try_from(value) {
            Ok(order_pb::PaymentMethod::BankTransfer) => Self::BankTransfer,
            Ok(order_pb::PaymentMethod::Wallet) => Self::Wallet,
            _ => Self::Card,
        }
    }

    pub fn to_proto(self) -> order_pb::PaymentMethod {
        match self {
            Self::Card => order_pb::PaymentMethod::Card,
            Self::BankTransfer => order_pb::PaymentMethod::BankTransfer,
            Self::Wallet => order_pb::PaymentMethod::Wallet,
        }
    }
}

impl PaymentStatus {
    fn from_proto(value: i32) -> Self {
        match order_pb::PaymentStatus::try_from(value) {
            Ok(order_pb::PaymentStatus::Failed) => Self::Failed,
            Ok(order_pb::PaymentStatus::Refunded) => Self::Refunded,
            _ => Self::Succeeded,
        }
    }
}

impl SortDirection {
    pub fn to_proto(direction: Option<Self>) -> i32 {
        use lintas_proto::common::v1::SortDirection as Proto;
        let proto = match direction {
            None => Proto::Unspecified,
            Some(Self::Asc) => Proto::Asc,
            Some(Self::Desc) => Proto::Desc,
        };
        proto as i32
    }
}

impl From<user_pb::User> for User {
    fn from(user: user_pb::User) -> Self {
        Self {
            id: user.id.into(),
            name: user.name,
            email: user.email,
            status: UserStatus::from_proto(user.status),
            created_at: rfc3339(user.created_at),
            updated_at: rfc3339(user.updated_at),
            version: user.version.into(),
        }
    }
}

impl From<order_pb::Order> for Order {
    fn from(order: order_pb::Order) -> Self {
        Self {
            id: order.id.into(),
            user_id: order.user_id.into(),
            items: order
                .items
                .into_iter()
                .map(|item| OrderItem {
                    sku: item.sku,
                    quantity: item.quantity,
                    unit_price: item.unit_price.into(),
                })
                .collect(),
            currency: order.currency,
            total: order.total.into(),
            status: OrderStatus::from_proto(order.status),
            shipping_address: order.shipping_address.map(|address| Address {
                recipient: address.recipient,
                line1: address.line1,
                line2: address.line2,
                city: address.city,
                region: address.region,
                postal_code: address.postal_code,
                country: address.country,
            }),
            payments: order.payments.into_iter().map(Payment::from).collect(),
            refunded: order.refunded,
            cancel_reason: order.cancel_reason,
            created_at: rfc3339(order.created_at),
            updated_at: rfc3339(order.updated_at),
            version: order.version.into(),
        }
    }
}

impl From<order_pb::Payment> for Payment {
    fn from(payment: order_pb::Payment) -> Self {
        Self {
            id: payment.id.into(),
            amount: payment.amount.into(),
            currency: payment.currency,
            method: PaymentMethod::from_proto(payment.method),
            status: PaymentStatus::from_proto(payment.status),
            failure_reason: payment.failure_reason,
            created_at: rfc3339(payment.created_at),
        }
    }
}

impl From<user_pb::GetUserMetricsResponse> for UserMetrics {
    fn from(metrics: user_pb::GetUserMetricsResponse) -> Self {
        Self {
            total_users: metrics.total_users.into(),
            users_by_status: metrics
                .users_by_status
                .into_iter()
                .map(|entry| UserStatusCount {
                    status: UserStatus::from_proto(entry.status),
                    count: entry.count.into(),
                })
                .collect(),
            users_created_last_24h: metrics.users_created_last_24h.into(),
        }
    }
}

impl From<order_pb::GetOrderMetricsResponse> for OrderMetrics {
    fn from(metrics: order_pb::GetOrderMetricsResponse) -> Self {
        Self {
            total_orders: metrics.total_orders.into(),
            orders_by_status: metrics
                .orders_by_status
                .into_iter()
                .map(|entry| OrderStatusCount {
                    status: OrderStatus::from_proto(entry.status),
                    count: entry.count.into(),
                })
                .collect(),
            revenue_by_currency: metrics
                .revenue_by_currency
                .into_iter()
                .map(|entry| CurrencyAmount {
                    currency: entry.currency,
                    amount: entry.amount.into(),
                })
                .collect(),
            payments_succeeded: metrics.payments_succeeded.into(),
            payments_failed: metrics.payments_failed.into(),
        }
    }
}
