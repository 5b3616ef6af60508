//! Database rows and their conversion to protobuf messages, plus the text
//! stored for each enum value.

use lintas_common::time::micros_to_timestamp;
use lintas_proto::order::v1::{Address, Order, OrderItem, Payment, PaymentMethod, PaymentStatus};

use crate::lifecycle::status_from_name;

/// Columns of `orders` in the order [`OrderRow`] reads them. `refunded` is
/// read as an integer because sqlx's `Any` driver rejects a column that
/// SQLite declares BOOLEAN, and the cast works on both databases.
pub const ORDER_COLUMNS: &str = "id, user_id, currency, total, status, \
     CAST(refunded AS INTEGER) AS refunded, cancel_reason, \
     ship_recipient, ship_line1, ship_line2, ship_city, ship_region, ship_postal_code, \
     ship_country, created_at, updated_at, version";

/// Columns of `payments` in the order [`PaymentRow`] reads them.
pub const PAYMENT_COLUMNS: &str =
    "id, order_id, amount, currency, method, status, failure_reason, created_at";

#[derive(Debug, sqlx::FromRow)]
pub struct OrderRow {
    pub id: String,
    pub user_id: String,
    pub currency: String,
    pub total: i64,
    pub status: String,
    /// 1 when a PAID order was cancelled and refunded, else 0.
    pub refunded: i64,
    pub cancel_reason: String,
    pub ship_recipient: String,
    pub ship_line1: String,
    pub ship_line2: String,
    pub ship_city: String,
    pub ship_region: String,
    pub ship_postal_code: String,
    pub ship_country: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

#[derive(Debug, sqlx::FromRow)]
pub struct ItemRow {
    pub order_id: String,
    pub sku: String,
    pub quantity: i32,
    pub unit_price: i64,
}

#[derive(Debug, sqlx::FromRow)]
pub struct PaymentRow {
    pub id: String,
    pub order_id: String,
    pub amount: i64,
    pub currency: String,
    pub method: String,
    pub status: String,
    pub failure_reason: String,
    pub created_at: i64,
}

impl OrderRow {
    pub fn is_refunded(&self) -> bool {
        self.refunded != 0
    }

    pub fn into_order(self, items: Vec<OrderItem>, payments: Vec<Payment>) -> Order {
        // The CHECK constraint on `status` keeps unknown names out of the table.
        let status = status_from_name(&self.status).unwrap_or_default();
        Order {
            id: self.id,
            user_id: self.user_id,
            items,
            currency: self.currency,
            total: self.total,
            status: status as i32,
            shipping_address: Some(Address {
                recipient: self.ship_recipient,
                line1: self.ship_line1,
                line2: self.ship_line2,
                city: self.ship_city,
                region: self.ship_region,
                postal_code: self.ship_postal_code,
                country: self.ship_country,
            }),
            payments,
            refunded: self.refunded != 0,
            cancel_reason: self.cancel_reason,
            created_at: Some(micros_to_timestamp(self.created_at)),
            updated_at: Some(micros_to_timestamp(self.updated_at)),
            version: self.version,
        }
    }
}

impl ItemRow {
    pub fn into_item(self) -> OrderItem {
        OrderItem {
            sku: self.sku,
            quantity: self.quantity,
            unit_price: self.unit_price,
        }
    }
}

impl PaymentRow {
    pub fn into_payment(self) -> Payment {
        Payment {
            id: self.id,
            amount: self.amount,
            currency: self.currency,
            method: method_from_column(&self.method) as i32,
            status: payment_status_from_column(&self.status) as i32,
            failure_reason: self.failure_reason,
            created_at: Some(micros_to_timestamp(self.created_at)),
        }
    }
}

pub fn method_column(method: PaymentMethod) -> &'static str {
    match method {
        PaymentMethod::Unspecified => "UNSPECIFIED",
        PaymentMethod::Card => "CARD",
        PaymentMethod::BankTransfer => "BANK_TRANSFER",
        PaymentMethod::Wallet => "WALLET",
    }
}

fn method_from_column(value: &str) -> PaymentMethod {
    match value {
        "CARD" => PaymentMethod::Card,
        "BANK_TRANSFER" => PaymentMethod::BankTransfer,
        "WALLET" => PaymentMethod::Wallet,
        _ => PaymentMethod::Unspecified,
    }
}

pub fn payment_status_column(status: PaymentStatus) -> &'static str {
    match status {
        PaymentStatus::Unspecified => "UNSPECIFIED",
        PaymentStatus::Succeeded => "SUCCEEDED",
        PaymentStatus::Failed => "FAILED",
        PaymentStatus::Refunded => "REFUNDED",
    }
}

fn payment_status_from_column(value: &str) -> PaymentStatus {
    match value {
        "SUCCEEDED" => PaymentStatus::Succeeded,
        "FAILED" => PaymentStatus::Failed,
        "REFUNDED" => PaymentStatus::Refunded,
        _ => PaymentStatus::Unspecified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_columns_round_trip() {
        for method in [
            PaymentMethod::Card,
            PaymentMethod::BankTransfer,
            PaymentMethod::Wallet,
        ] {
            assert_eq!(method_from_column(method_column(method)), method);
        }
        for status in [
            PaymentStatus::Succeeded,
            PaymentStatus::Failed,
            PaymentStatus::Refunded,
        ] {
            assert_eq!(
                payment_status_from_column(payment_status_column(status)),
                status
            );
        }
    }
}
