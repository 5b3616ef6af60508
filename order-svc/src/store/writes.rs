//! The writes of the order store, each in one transaction from
//! [`Database::begin`](lintas_common::database::Database::begin), so a
//! failure at any step leaves nothing behind.
//!
//! Status changes and payments first read the order's row with a lock. On
//! PostgreSQL, `FOR UPDATE` waits for a concurrent writer and then reads
//! what it committed. On SQLite, `BEGIN IMMEDIATE` already holds the
//! database's only write lock. The state machine checks the status read,
//! and the `UPDATE` that follows repeats the allowed source statuses in its
//! `WHERE` clause. Of two concurrent transitions from one status, the
//! second therefore sees the first one's result and is rejected.

use lintas_common::database::{Backend, Param, SqlBuilder};
use lintas_common::idempotency::IdempotencyKey;
use lintas_common::time::{micros_to_timestamp, now_micros};
use lintas_proto::order::v1::{
    CreateOrderResponse, Order, OrderStatus, PaymentStatus, ProcessPaymentResponse,
};
use sqlx::AnyConnection;
use uuid::Uuid;

use super::idempotent::KeyedWrite;
use super::rows::{
    ORDER_COLUMNS, OrderRow, PAYMENT_COLUMNS, PaymentRow, method_column, payment_status_column,
};
use super::{OrderStore, StoreError, Written, load_order, status_of, with_details};
use crate::lifecycle::{Transition, status_name};
use crate::provider::{self, ChargeOutcome};
use crate::validate::{NewOrder, PaymentInput, StatusChange};

/// CreateOrder: the order, its items and its PENDING status.
struct InsertOrder<'a> {
    order: &'a NewOrder,
}

/// ProcessPayment: the charge, the payment row and the order's new status.
struct RecordPayment<'a> {
    payment: &'a PaymentInput,
    backend: Backend,
}

/// The columns of a locked order row that the checks need.
struct LockedOrder {
    status: OrderStatus,
    total: i64,
    currency: String,
}

impl OrderStore {
    /// Inserts a PENDING order and its items. With a key, a retry of the
    /// same request returns the first response and inserts nothing.
    #[tracing::instrument(name = "db.orders.create", skip_all, fields(otel.kind = "client", db.system.name = self.database_system(), db.operation.name = "INSERT"))]
    pub async fn create(
        &self,
        order: &NewOrder,
        key: Option<&IdempotencyKey>,
    ) -> Result<Written<CreateOrderResponse>, StoreError> {
        self.write_keyed(&InsertOrder { order }, key).await
    }

    /// Charges a PENDING order whose total and currency match the payment,
    /// records the payment, and marks the order PAID when the charge
    /// succeeded. With a key, a retry of the same request returns the first
    /// response, declined or not, and charges nothing.
    #[tracing::instrument(name = "db.orders.record_payment", skip_all, fields(otel.kind = "client", db.system.name = self.database_system(), db.operation.name = "INSERT"))]
    pub async fn record_payment(
        &self,
        payment: &PaymentInput,
        key: Option<&IdempotencyKey>,
    ) -> Result<Written<ProcessPaymentResponse>, StoreError> {
        let write = RecordPayment {
            payment,
            backend: self.database.backend,
        };
        self.write_keyed(&write, key).await
    }

    /// Applies `change` if the order's current status allows it. Cancelling
    /// a PAID order marks it refunded and its succeeded payments REFUNDED.
    #[tracing::instrument(name = "db.orders.change_status", skip_all, fields(otel.kind = "client", db.system.name = self.database_system(), db.operation.name = "UPDATE"))]
    pub async fn change_status(
        &self,
        id: Uuid,
        change: &StatusChange,
    ) -> Result<Order, StoreError> {
        let transition = change.transition();
        let mut transaction = self.database.begin().await?;
        let current = lock_order(&mut transaction, self.database.backend, id).await?;
        transition.check(current.status)?;

        let mut sql = SqlBuilder::new("UPDATE orders SET status = ");
        sql.bind(Param::Text(status_name(transition.target()).to_owned()))
            .push(", updated_at = ")
            .bind(Param::Integer(now_micros()))
            .push(", version = version + 1");
        if let StatusChange::Cancel { reason } = change {
            // Evaluated against the old row, so only a PAID order is refunded.
            sql.push(", refunded = (status = 'PAID'), cancel_reason = ")
                .bind(Param::Text(reason.clone()));
        }
        sql.push(" WHERE id = ").bind(Param::Text(id.to_string()));
        push_status_guard(&mut sql, transition);
        sql.push(&format!(" RETURNING {ORDER_COLUMNS}"));
        let updated: Option<OrderRow> = sql.query_as().fetch_optional(&mut *transaction).await?;
        // The row is locked, so the guard matches whenever the check passed.
        let row = updated.ok_or(StoreError::Conflict)?;

        if matches!(change, StatusChange::Cancel { .. }) && row.is_refunded() {
            let mut refund = SqlBuilder::new("UPDATE payments SET status = ");
            refund
                .bind(Param::Text(
                    payment_status_column(PaymentStatus::Refunded).to_owned(),
                ))
                .push(" WHERE order_id = ")
                .bind(Param::Text(row.id.clone()))
                .push(" AND status = ")
                .bind(Param::Text(
                    payment_status_column(PaymentStatus::Succeeded).to_owned(),
                ));
            refund.query().execute(&mut *transaction).await?;
        }
        let order = with_details(&mut transaction, vec![row]).await?.remove(0);
        transaction.commit().await?;
        Ok(order)
    }
}

impl KeyedWrite for InsertOrder<'_> {
    type Response = CreateOrderResponse;

    async fn apply(
        &self,
        connection: &mut AnyConnection,
    ) -> Result<CreateOrderResponse, StoreError> {
        let order = self.order;
        let id = Uuid::now_v7().to_string();
        let now = now_micros();
        let address = &order.shipping_address;

        let mut insert = SqlBuilder::new(
            "INSERT INTO orders (id, user_id, currency, total, status, refunded, cancel_reason, \
             ship_recipient, ship_line1, ship_line2, ship_city, ship_region, ship_postal_code, \
             ship_country, created_at, updated_at, version) VALUES (",
        );
        let values = [
            Param::Text(id.clone()),
            Param::Text(order.user_id.to_string()),
            Param::Text(order.currency.clone()),
            Param::Integer(order.total),
            Param::Text(status_name(OrderStatus::Pending).to_owned()),
        ];
        push_values(&mut insert, values);
        insert.push(", FALSE, '', ");
        let values = [
            Param::Text(address.recipient.clone()),
            Param::Text(address.line1.clone()),
            Param::Text(address.line2.clone()),
            Param::Text(address.city.clone()),
            Param::Text(address.region.clone()),
            Param::Text(address.postal_code.clone()),
            Param::Text(address.country.clone()),
            Param::Integer(now),
            Param::Integer(now),
        ];
        push_values(&mut insert, values);
        insert.push(", 1)");
        insert.query().execute(&mut *connection).await?;

        let mut items = SqlBuilder::new(
            "INSERT INTO order_items (order_id, line_number, sku, quantity, unit_price) VALUES ",
        );
        for (line_number, item) in order.items.iter().enumerate() {
            if line_number > 0 {
                items.push(", ");
            }
            items.push("(");
            let values = [
                Param::Text(id.clone()),
                Param::Integer(line_number as i64),
                Param::Text(item.sku.clone()),
                Param::Integer(i64::from(item.quantity)),
                Param::Integer(item.unit_price),
            ];
            push_values(&mut items, values);
            items.push(")");
        }
        items.query().execute(&mut *connection).await?;

        let created = Order {
            id,
            user_id: order.user_id.to_string(),
            items: order.items.clone(),
            currency: order.currency.clone(),
            total: order.total,
            status: OrderStatus::Pending as i32,
            shipping_address: Some(order.shipping_address.clone()),
            payments: Vec::new(),
            refunded: false,
            cancel_reason: String::new(),
            created_at: Some(micros_to_timestamp(now)),
            updated_at: Some(micros_to_timestamp(now)),
            version: 1,
        };
        Ok(CreateOrderResponse {
            order: Some(created),
            metadata: None,
        })
    }
}

impl KeyedWrite for RecordPayment<'_> {
    type Response = ProcessPaymentResponse;

    async fn apply(
        &self,
        connection: &mut AnyConnection,
    ) -> Result<ProcessPaymentResponse, StoreError> {
        let payment = self.payment;
        let order_id = payment.order_id.to_string();

        // Checks the order before anything is charged.
        let current = lock_order(connection, self.backend, payment.order_id).await?;
        Transition::Pay.check(current.status)?;
        if current.total != payment.amount {
            return Err(StoreError::AmountMismatch {
                expected: current.total,
                actual: payment.amount,
            });
        }
        if current.currency != payment.currency {
            return Err(StoreError::CurrencyMismatch {
                expected: current.currency,
                actual: payment.currency.clone(),
            });
        }

        let (order_status, payment_status, failure_reason) = match provider::charge(&payment.token)
        {
            ChargeOutcome::Succeeded => {
                (OrderStatus::Paid, PaymentStatus::Succeeded, String::new())
            }
            ChargeOutcome::Declined { reason } => {
                (OrderStatus::Pending, PaymentStatus::Failed, reason)
            }
        };

        // A declined charge leaves the order PENDING but still counts as a
        // change: its version grows and it gains a payment.
        let now = now_micros();
        let mut update = SqlBuilder::new("UPDATE orders SET status = ");
        update
            .bind(Param::Text(status_name(order_status).to_owned()))
            .push(", updated_at = ")
            .bind(Param::Integer(now))
            .push(", version = version + 1 WHERE id = ")
            .bind(Param::Text(order_id.clone()));
        push_status_guard(&mut update, Transition::Pay);
        let updated = update.query().execute(&mut *connection).await?;
        // The row is locked, so the guard matches whenever the check passed.
        if updated.rows_affected() != 1 {
            return Err(StoreError::Conflict);
        }

        let mut insert =
            SqlBuilder::new(format!("INSERT INTO payments ({PAYMENT_COLUMNS}) VALUES ("));
        let values = [
            Param::Text(Uuid::now_v7().to_string()),
            Param::Text(order_id),
            Param::Integer(payment.amount),
            Param::Text(payment.currency.clone()),
            Param::Text(method_column(payment.method).to_owned()),
            Param::Text(payment_status_column(payment_status).to_owned()),
            Param::Text(failure_reason),
            Param::Integer(now),
        ];
        push_values(&mut insert, values);
        insert.push(&format!(") RETURNING {PAYMENT_COLUMNS}"));
        let payment_row: PaymentRow = insert.query_as().fetch_one(&mut *connection).await?;

        let order = load_order(connection, payment.order_id).await?;
        Ok(ProcessPaymentResponse {
            order: Some(order),
            payment: Some(payment_row.into_payment()),
            metadata: None,
        })
    }
}

/// Reads the order that the transaction is about to change and locks its
/// row until the transaction ends.
async fn lock_order(
    connection: &mut AnyConnection,
    backend: Backend,
    id: Uuid,
) -> Result<LockedOrder, StoreError> {
    let mut sql = SqlBuilder::new("SELECT status, total, currency FROM orders WHERE id = ");
    sql.bind(Param::Text(id.to_string()));
    // SQLite has no FOR UPDATE, and its BEGIN IMMEDIATE already holds the lock.
    if backend == Backend::Postgres {
        sql.push(" FOR UPDATE");
    }
    let row: Option<(String, i64, String)> = sql.query_as().fetch_optional(connection).await?;
    let (status, total, currency) = row.ok_or(StoreError::NotFound(id))?;
    Ok(LockedOrder {
        status: status_of(&status),
        total,
        currency,
    })
}

/// Appends placeholders for `values`, separated by commas.
fn push_values<const N: usize>(sql: &mut SqlBuilder, values: [Param; N]) {
    for (index, value) in values.into_iter().enumerate() {
        if index > 0 {
            sql.push(", ");
        }
        sql.bind(value);
    }
}

/// Adds `AND status IN (...)` with the statuses `transition` may start from.
fn push_status_guard(sql: &mut SqlBuilder, transition: Transition) {
    sql.push(" AND status IN (");
    for (index, status) in transition.sources().iter().enumerate() {
        if index > 0 {
            sql.push(", ");
        }
        sql.bind(Param::Text(status_name(*status).to_owned()));
    }
    sql.push(")");
}

#[cfg(test)]
mod tests {
    use lintas_common::database::MigrationMode;
    use lintas_common::testing::fresh_database_url;
    use lintas_proto::order::v1::{Address, OrderItem, PaymentMethod};
    use tempfile::TempDir;

    use super::*;

    async fn open_store(dir: &TempDir) -> OrderStore {
        let url = fresh_database_url(dir.path(), "orders").await;
        let settings = crate::Settings::new(url, "http://127.0.0.1:1");
        let database = crate::open_database(&settings, MigrationMode::Apply)
            .await
            .expect("open database");
        OrderStore::new(database, settings.idempotency_ttl)
    }

    async fn count_rows(store: &OrderStore, table: &str) -> i64 {
        let (count,): (i64,) = SqlBuilder::new(format!("SELECT COUNT(*) FROM {table}"))
            .query_as()
            .fetch_one(&store.database.pool)
            .await
            .expect("count rows");
        count
    }

    fn item(sku: &str, quantity: i32) -> OrderItem {
        OrderItem {
            sku: sku.to_owned(),
            quantity,
            unit_price: 100,
        }
    }

    fn new_order(items: Vec<OrderItem>) -> NewOrder {
        NewOrder {
            user_id: Uuid::now_v7(),
            total: items
                .iter()
                .map(|item| i64::from(item.quantity) * item.unit_price)
                .sum(),
            items,
            currency: "IDR".to_owned(),
            shipping_address: Address {
                recipient: "Ada Lovelace".to_owned(),
                line1: "Jl. Sudirman 1".to_owned(),
                line2: String::new(),
                city: "Jakarta".to_owned(),
                region: String::new(),
                postal_code: "10220".to_owned(),
                country: "ID".to_owned(),
            },
        }
    }

    fn key(name: &str) -> IdempotencyKey {
        let request = prost_types::Timestamp::default();
        IdempotencyKey::parse("Test", name, &request)
            .expect("valid key")
            .expect("key is set")
    }

    #[tokio::test]
    async fn failed_item_insert_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir).await;
        // Validation would reject quantity 0. Here it reaches the database,
        // whose CHECK on order_items fails after the order row is inserted.
        let broken = new_order(vec![item("A-1", 1), item("B-2", 0)]);

        let error = store
            .create(&broken, Some(&key("create-1")))
            .await
            .unwrap_err();

        assert!(matches!(error, StoreError::Database(_)), "{error:?}");
        assert_eq!(count_rows(&store, "orders").await, 0);
        assert_eq!(count_rows(&store, "order_items").await, 0);
        assert_eq!(count_rows(&store, "idempotency_keys").await, 0);

        // The key was not kept, so a retry with it runs the write.
        let written = store
            .create(&new_order(vec![item("A-1", 1)]), Some(&key("create-1")))
            .await
            .unwrap();
        assert!(!written.is_replay());
        assert_eq!(count_rows(&store, "orders").await, 1);
        assert_eq!(count_rows(&store, "order_items").await, 1);
    }

    #[tokio::test]
    async fn failed_payment_insert_leaves_order_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir).await;
        let created = store
            .create(&new_order(vec![item("A-1", 2)]), None)
            .await
            .unwrap()
            .into_inner()
            .order
            .unwrap();
        let order_id: Uuid = created.id.parse().unwrap();
        // The CHECK on payments.method rejects UNSPECIFIED after the order
        // row was updated and marked PAID.
        let payment = PaymentInput {
            order_id,
            amount: created.total,
            currency: created.currency.clone(),
            method: PaymentMethod::Unspecified,
            token: "tok_visa".to_owned(),
        };

        let error = store
            .record_payment(&payment, Some(&key("pay-1")))
            .await
            .unwrap_err();

        assert!(matches!(error, StoreError::Database(_)), "{error:?}");
        assert_eq!(store.get(order_id).await.unwrap(), created);
        assert_eq!(count_rows(&store, "payments").await, 0);
        assert_eq!(count_rows(&store, "idempotency_keys").await, 0);
    }

    #[tokio::test]
    async fn replay_returns_stored_response() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir).await;
        let order = new_order(vec![item("A-1", 1)]);

        let first = store.create(&order, Some(&key("create-1"))).await.unwrap();
        let second = store.create(&order, Some(&key("create-1"))).await.unwrap();
        let found: Option<CreateOrderResponse> = store.find_replay(&key("create-1")).await.unwrap();

        assert!(!first.is_replay());
        assert!(second.is_replay());
        assert_eq!(second.clone().into_inner(), first.into_inner());
        assert_eq!(found, Some(second.into_inner()));
        assert_eq!(count_rows(&store, "orders").await, 1);
        assert!(
            store
                .find_replay::<CreateOrderResponse>(&key("unused"))
                .await
                .unwrap()
                .is_none()
        );
    }
}
