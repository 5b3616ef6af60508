//! Order storage: the [`OrderStore`] interface and its SQLite implementation.
//!
//! The SQL sticks to what SQLite and PostgreSQL share: text ids, 64-bit
//! integer instants and amounts, `LIMIT`, `RETURNING`, `IN (...)` and
//! `ROW_NUMBER() OVER`.
//!
//! Every write runs in one transaction whose first statement writes, so
//! SQLite takes its write lock before anything is read and concurrent
//! writers queue behind `busy_timeout` instead of failing. Status changes
//! put the allowed source statuses in the `UPDATE`'s `WHERE` clause: of two
//! concurrent transitions from one status, the second matches no row and
//! is rejected.

mod rows;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use lintas_common::time::{micros_to_timestamp, now_micros};
use lintas_proto::order::v1::{Order, OrderStatus, Payment, PaymentMethod, PaymentStatus};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use uuid::Uuid;

use crate::lifecycle::{STATUSES, Transition, TransitionRejected, status_from_name, status_name};
use crate::provider::ChargeOutcome;
use crate::validate::{NewOrder, OrderQuery, SortField, StatusChange};
use rows::{
    ItemRow, ORDER_COLUMNS, OrderRow, PAYMENT_COLUMNS, PaymentRow, method_column,
    payment_status_column,
};

/// Statuses whose order totals count as revenue.
const REVENUE_STATUSES: [OrderStatus; 3] = [
    OrderStatus::Paid,
    OrderStatus::Shipped,
    OrderStatus::Delivered,
];

/// Failures of a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("order {0} not found")]
    NotFound(Uuid),
    #[error(transparent)]
    Transition(#[from] TransitionRejected),
    #[error("amount must equal the order total {expected}, got {actual}")]
    AmountMismatch { expected: i64, actual: i64 },
    #[error("currency must equal the order currency {expected}, got {actual}")]
    CurrencyMismatch { expected: String, actual: String },
    #[error("order was changed by a concurrent request")]
    Conflict,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// A payment to record against a PENDING order.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub order_id: Uuid,
    pub amount: i64,
    pub currency: String,
    pub method: PaymentMethod,
    pub outcome: ChargeOutcome,
}

/// Position after the last row of a page: the sort column's value and the id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cursor {
    pub key: i64,
    pub id: String,
}

/// One page of a listing, and the cursor of the next page if there is one.
#[derive(Debug)]
pub struct Page {
    pub orders: Vec<Order>,
    pub next: Option<Cursor>,
}

/// The newest orders of one user, from [`OrderStore::newest_per_user`].
#[derive(Debug, Default)]
pub struct UserOrdersPage {
    /// Newest first.
    pub orders: Vec<Order>,
    /// True when the user has more orders than were returned.
    pub has_more: bool,
}

/// Figures behind `GetOrderMetrics`.
#[derive(Debug, Default)]
pub struct OrderMetrics {
    pub total: i64,
    /// Every status, including those with no orders.
    pub by_status: Vec<(OrderStatus, i64)>,
    /// Sum of the totals of PAID, SHIPPED and DELIVERED orders per currency,
    /// sorted by currency code.
    pub revenue: Vec<(String, i64)>,
    /// Charges that went through, including those refunded later.
    pub payments_succeeded: i64,
    pub payments_failed: i64,
}

/// Storage interface of the order service.
#[async_trait]
pub trait OrderStore: Send + Sync + 'static {
    async fn get(&self, id: Uuid) -> Result<Order, StoreError>;
    async fn list(&self, query: &OrderQuery, after: Option<&Cursor>) -> Result<Page, StoreError>;
    /// Returns up to `limit` newest orders of each user, keyed by user id.
    /// Users without orders are missing from the map.
    async fn newest_per_user(
        &self,
        user_ids: &[Uuid],
        limit: i64,
    ) -> Result<HashMap<String, UserOrdersPage>, StoreError>;
    /// Inserts a PENDING order and its items in one transaction.
    async fn create(&self, order: NewOrder) -> Result<Order, StoreError>;
    /// Applies `change` if the order's current status allows it. Cancelling
    /// a PAID order marks it refunded and its succeeded payments REFUNDED.
    async fn change_status(&self, id: Uuid, change: &StatusChange) -> Result<Order, StoreError>;
    /// Records a payment of a PENDING order whose total and currency match,
    /// and marks the order PAID when the charge succeeded.
    async fn record_payment(&self, payment: NewPayment) -> Result<(Order, Payment), StoreError>;
    async fn metrics(&self) -> Result<OrderMetrics, StoreError>;
    /// Checks that the database responds.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// [`OrderStore`] on a SQLite file, with migrations embedded in the binary.
#[derive(Clone)]
pub struct SqliteOrderStore {
    pool: SqlitePool,
}

impl SqliteOrderStore {
    /// Opens (creating if needed) the database at `url` and applies pending
    /// migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl OrderStore for SqliteOrderStore {
    async fn get(&self, id: Uuid) -> Result<Order, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?");
        let row: Option<OrderRow> = sqlx::query_as(&sql)
            .bind(id.to_string())
            .fetch_optional(&mut *transaction)
            .await?;
        let row = row.ok_or(StoreError::NotFound(id))?;
        let order = with_details(&mut transaction, vec![row]).await?.remove(0);
        transaction.commit().await?;
        Ok(order)
    }

    async fn list(&self, query: &OrderQuery, after: Option<&Cursor>) -> Result<Page, StoreError> {
        let mut sql =
            QueryBuilder::<Sqlite>::new(format!("SELECT {ORDER_COLUMNS} FROM orders WHERE 1 = 1"));
        if let Some(user_id) = query.user_id {
            sql.push(" AND user_id = ").push_bind(user_id.to_string());
        }
        if let Some(status) = query.status {
            sql.push(" AND status = ").push_bind(status_name(status));
        }
        if let Some(created_after) = query.created_after {
            sql.push(" AND created_at >= ").push_bind(created_after);
        }
        if let Some(created_before) = query.created_before {
            sql.push(" AND created_at < ").push_bind(created_before);
        }
        if let Some(min_total) = query.min_total {
            sql.push(" AND total >= ").push_bind(min_total);
        }

        let column = sort_column(query.sort_field);
        let (comparison, direction) = if query.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        if let Some(cursor) = after {
            sql.push(format!(" AND ({column} {comparison} "))
                .push_bind(cursor.key)
                .push(format!(" OR ({column} = "))
                .push_bind(cursor.key)
                .push(format!(" AND id {comparison} "))
                .push_bind(cursor.id.clone())
                .push("))");
        }
        sql.push(format!(
            " ORDER BY {column} {direction}, id {direction} LIMIT "
        ))
        .push_bind(query.limit + 1);

        // One read transaction, so the orders, items and payments of the
        // page come from the same snapshot.
        let mut transaction = self.pool.begin().await?;
        let mut rows: Vec<OrderRow> = sql.build_query_as().fetch_all(&mut *transaction).await?;
        let has_more = rows.len() as i64 > query.limit;
        rows.truncate(query.limit as usize);
        let next = match (has_more, rows.last()) {
            (true, Some(last)) => Some(Cursor {
                key: sort_key_of(last, query.sort_field),
                id: last.id.clone(),
            }),
            _ => None,
        };
        let orders = with_details(&mut transaction, rows).await?;
        transaction.commit().await?;
        Ok(Page { orders, next })
    }

    async fn newest_per_user(
        &self,
        user_ids: &[Uuid],
        limit: i64,
    ) -> Result<HashMap<String, UserOrdersPage>, StoreError> {
        // Ranks each user's orders newest first and keeps one row more than
        // `limit`, which shows whether the user has more.
        let mut sql = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {ORDER_COLUMNS} FROM (SELECT {ORDER_COLUMNS}, ROW_NUMBER() OVER \
             (PARTITION BY user_id ORDER BY created_at DESC, id DESC) AS position_in_user \
             FROM orders WHERE user_id IN ("
        ));
        let mut ids = sql.separated(", ");
        for user_id in user_ids {
            ids.push_bind(user_id.to_string());
        }
        sql.push(")) AS ranked WHERE position_in_user <= ")
            .push_bind(limit + 1)
            .push(" ORDER BY user_id, position_in_user");

        let mut transaction = self.pool.begin().await?;
        let fetched: Vec<OrderRow> = sql.build_query_as().fetch_all(&mut *transaction).await?;
        let mut counts: HashMap<String, i64> = HashMap::new();
        let mut rows = Vec::with_capacity(fetched.len());
        for row in fetched {
            let count = counts.entry(row.user_id.clone()).or_default();
            *count += 1;
            if *count <= limit {
                rows.push(row);
            }
        }
        let orders = with_details(&mut transaction, rows).await?;
        transaction.commit().await?;

        let mut pages: HashMap<String, UserOrdersPage> = HashMap::new();
        for order in orders {
            pages
                .entry(order.user_id.clone())
                .or_default()
                .orders
                .push(order);
        }
        for (user_id, page) in &mut pages {
            page.has_more = counts.get(user_id).is_some_and(|count| *count > limit);
        }
        Ok(pages)
    }

    async fn create(&self, order: NewOrder) -> Result<Order, StoreError> {
        let id = Uuid::now_v7().to_string();
        let now = now_micros();
        let address = &order.shipping_address;

        let mut transaction = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO orders (id, user_id, currency, total, status, refunded, cancel_reason, \
             ship_recipient, ship_line1, ship_line2, ship_city, ship_region, ship_postal_code, \
             ship_country, created_at, updated_at, version) \
             VALUES (?, ?, ?, ?, ?, FALSE, '', ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
        )
        .bind(&id)
        .bind(order.user_id.to_string())
        .bind(&order.currency)
        .bind(order.total)
        .bind(status_name(OrderStatus::Pending))
        .bind(&address.recipient)
        .bind(&address.line1)
        .bind(&address.line2)
        .bind(&address.city)
        .bind(&address.region)
        .bind(&address.postal_code)
        .bind(&address.country)
        .bind(now)
        .bind(now)
        .execute(&mut *transaction)
        .await?;

        let mut items = QueryBuilder::<Sqlite>::new(
            "INSERT INTO order_items (order_id, line_number, sku, quantity, unit_price) ",
        );
        items.push_values(
            order.items.iter().enumerate(),
            |mut row, (line_number, item)| {
                row.push_bind(&id)
                    .push_bind(line_number as i64)
                    .push_bind(&item.sku)
                    .push_bind(item.quantity)
                    .push_bind(item.unit_price);
            },
        );
        items.build().execute(&mut *transaction).await?;
        transaction.commit().await?;

        Ok(Order {
            id,
            user_id: order.user_id.to_string(),
            items: order.items,
            currency: order.currency,
            total: order.total,
            status: OrderStatus::Pending as i32,
            shipping_address: Some(order.shipping_address),
            payments: Vec::new(),
            refunded: false,
            cancel_reason: String::new(),
            created_at: Some(micros_to_timestamp(now)),
            updated_at: Some(micros_to_timestamp(now)),
            version: 1,
        })
    }

    async fn change_status(&self, id: Uuid, change: &StatusChange) -> Result<Order, StoreError> {
        let transition = change.transition();
        let mut sql = QueryBuilder::<Sqlite>::new("UPDATE orders SET status = ");
        sql.push_bind(status_name(transition.target()))
            .push(", updated_at = ")
            .push_bind(now_micros())
            .push(", version = version + 1");
        if let StatusChange::Cancel { reason } = change {
            // Evaluated against the old row, so only a PAID order is refunded.
            sql.push(", refunded = (status = 'PAID'), cancel_reason = ")
                .push_bind(reason.clone());
        }
        sql.push(" WHERE id = ").push_bind(id.to_string());
        push_status_guard(&mut sql, transition);
        sql.push(format!(" RETURNING {ORDER_COLUMNS}"));

        let mut transaction = self.pool.begin().await?;
        let updated: Option<OrderRow> = sql
            .build_query_as()
            .fetch_optional(&mut *transaction)
            .await?;
        let Some(row) = updated else {
            return Err(explain_rejection(&mut transaction, id, transition).await);
        };
        if matches!(change, StatusChange::Cancel { .. }) && row.refunded {
            sqlx::query("UPDATE payments SET status = ? WHERE order_id = ? AND status = ?")
                .bind(payment_status_column(PaymentStatus::Refunded))
                .bind(&row.id)
                .bind(payment_status_column(PaymentStatus::Succeeded))
                .execute(&mut *transaction)
                .await?;
        }
        let order = with_details(&mut transaction, vec![row]).await?.remove(0);
        transaction.commit().await?;
        Ok(order)
    }

    async fn record_payment(&self, payment: NewPayment) -> Result<(Order, Payment), StoreError> {
        let (order_status, payment_status, failure_reason) = match &payment.outcome {
            ChargeOutcome::Succeeded => (OrderStatus::Paid, PaymentStatus::Succeeded, ""),
            ChargeOutcome::Declined { reason } => {
                (OrderStatus::Pending, PaymentStatus::Failed, reason.as_str())
            }
        };
        let now = now_micros();

        // A declined charge leaves the order PENDING but still adds a
        // payment to it, so it bumps the version like any other change.
        let mut sql = QueryBuilder::<Sqlite>::new("UPDATE orders SET status = ");
        sql.push_bind(status_name(order_status))
            .push(", updated_at = ")
            .push_bind(now)
            .push(", version = version + 1 WHERE id = ")
            .push_bind(payment.order_id.to_string());
        push_status_guard(&mut sql, Transition::Pay);
        sql.push(" AND total = ")
            .push_bind(payment.amount)
            .push(" AND currency = ")
            .push_bind(payment.currency.clone())
            .push(format!(" RETURNING {ORDER_COLUMNS}"));

        let mut transaction = self.pool.begin().await?;
        let updated: Option<OrderRow> = sql
            .build_query_as()
            .fetch_optional(&mut *transaction)
            .await?;
        let Some(row) = updated else {
            return Err(explain_payment_rejection(&mut transaction, &payment).await);
        };

        let insert = format!(
            "INSERT INTO payments ({PAYMENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             RETURNING {PAYMENT_COLUMNS}"
        );
        let payment_row: PaymentRow = sqlx::query_as(&insert)
            .bind(Uuid::now_v7().to_string())
            .bind(&row.id)
            .bind(payment.amount)
            .bind(&payment.currency)
            .bind(method_column(payment.method))
            .bind(payment_status_column(payment_status))
            .bind(failure_reason)
            .bind(now)
            .fetch_one(&mut *transaction)
            .await?;
        let order = with_details(&mut transaction, vec![row]).await?.remove(0);
        transaction.commit().await?;
        Ok((order, payment_row.into_payment()))
    }

    async fn metrics(&self) -> Result<OrderMetrics, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let status_counts: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM orders GROUP BY status")
                .fetch_all(&mut *transaction)
                .await?;

        // A single total may reach 10^18, so a plain SUM overflows 64 bits
        // after ten such orders. The quotients and the remainders of a
        // division by 10^9 are summed separately, which keeps both sums far
        // from the limit, and joined in 128 bits below.
        let mut revenue_sql = QueryBuilder::<Sqlite>::new(
            "SELECT currency, CAST(SUM(total / 1000000000) AS BIGINT), \
             CAST(SUM(total % 1000000000) AS BIGINT) FROM orders WHERE status IN (",
        );
        let mut statuses = revenue_sql.separated(", ");
        for status in REVENUE_STATUSES {
            statuses.push_bind(status_name(status));
        }
        revenue_sql.push(") GROUP BY currency ORDER BY currency");
        let revenue_parts: Vec<(String, i64, i64)> = revenue_sql
            .build_query_as()
            .fetch_all(&mut *transaction)
            .await?;

        let payment_counts: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM payments GROUP BY status")
                .fetch_all(&mut *transaction)
                .await?;
        transaction.commit().await?;

        let by_status: Vec<(OrderStatus, i64)> = STATUSES
            .into_iter()
            .map(|status| (status, count_of(&status_counts, status_name(status))))
            .collect();
        let revenue = revenue_parts
            .into_iter()
            .map(|(currency, billions, remainder)| {
                let amount = i128::from(billions) * 1_000_000_000 + i128::from(remainder);
                let amount = i64::try_from(amount).unwrap_or_else(|_| {
                    tracing::warn!(
                        %currency,
                        "revenue exceeds i64::MAX minor units, reporting i64::MAX"
                    );
                    i64::MAX
                });
                (currency, amount)
            })
            .collect();
        let succeeded = payment_status_column(PaymentStatus::Succeeded);
        let refunded = payment_status_column(PaymentStatus::Refunded);
        let failed = payment_status_column(PaymentStatus::Failed);
        Ok(OrderMetrics {
            total: by_status.iter().map(|(_, count)| count).sum(),
            by_status,
            revenue,
            payments_succeeded: count_of(&payment_counts, succeeded)
                + count_of(&payment_counts, refunded),
            payments_failed: count_of(&payment_counts, failed),
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Adds `AND status IN (...)` with the statuses `transition` may start from.
fn push_status_guard(sql: &mut QueryBuilder<'_, Sqlite>, transition: Transition) {
    sql.push(" AND status IN (");
    let mut statuses = sql.separated(", ");
    for status in transition.sources() {
        statuses.push_bind(status_name(*status));
    }
    sql.push(")");
}

/// Explains why a guarded status `UPDATE` matched no row. It runs in the
/// writing transaction, so the status it reads is the one the guard saw.
async fn explain_rejection(
    connection: &mut SqliteConnection,
    id: Uuid,
    transition: Transition,
) -> StoreError {
    let current: Result<Option<(String,)>, sqlx::Error> =
        sqlx::query_as("SELECT status FROM orders WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(connection)
            .await;
    match current {
        Err(error) => StoreError::Database(error),
        Ok(None) => StoreError::NotFound(id),
        Ok(Some((status,))) => match transition.check(status_of(&status)) {
            Err(rejected) => StoreError::Transition(rejected),
            // The guard rejected a status the table allows, which only a
            // change between the two statements could cause.
            Ok(()) => StoreError::Conflict,
        },
    }
}

/// Explains why the guarded `UPDATE` of a payment matched no row: the
/// order is missing or not PENDING, or the amount or currency differs.
async fn explain_payment_rejection(
    connection: &mut SqliteConnection,
    payment: &NewPayment,
) -> StoreError {
    let current: Result<Option<(String, i64, String)>, sqlx::Error> =
        sqlx::query_as("SELECT status, total, currency FROM orders WHERE id = ?")
            .bind(payment.order_id.to_string())
            .fetch_optional(connection)
            .await;
    let (status, total, currency) = match current {
        Err(error) => return StoreError::Database(error),
        Ok(None) => return StoreError::NotFound(payment.order_id),
        Ok(Some(row)) => row,
    };
    if let Err(rejected) = Transition::Pay.check(status_of(&status)) {
        return StoreError::Transition(rejected);
    }
    if total != payment.amount {
        return StoreError::AmountMismatch {
            expected: total,
            actual: payment.amount,
        };
    }
    if currency != payment.currency {
        return StoreError::CurrencyMismatch {
            expected: currency,
            actual: payment.currency.clone(),
        };
    }
    StoreError::Conflict
}

/// Loads the items and payments of `rows` with one query per table and
/// returns the orders in the same order as `rows`.
async fn with_details(
    connection: &mut SqliteConnection,
    rows: Vec<OrderRow>,
) -> Result<Vec<Order>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = rows.iter().map(|row| row.id.as_str()).collect();

    let mut items_sql = QueryBuilder::<Sqlite>::new(
        "SELECT order_id, sku, quantity, unit_price FROM order_items WHERE order_id IN (",
    );
    push_ids(&mut items_sql, &ids);
    items_sql.push(") ORDER BY order_id, line_number");
    let item_rows: Vec<ItemRow> = items_sql
        .build_query_as()
        .fetch_all(&mut *connection)
        .await?;

    let mut payments_sql = QueryBuilder::<Sqlite>::new(format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id IN ("
    ));
    push_ids(&mut payments_sql, &ids);
    payments_sql.push(") ORDER BY created_at, id");
    let payment_rows: Vec<PaymentRow> = payments_sql
        .build_query_as()
        .fetch_all(&mut *connection)
        .await?;

    let mut items: HashMap<String, Vec<_>> = HashMap::new();
    for row in item_rows {
        items
            .entry(row.order_id.clone())
            .or_default()
            .push(row.into_item());
    }
    let mut payments: HashMap<String, Vec<_>> = HashMap::new();
    for row in payment_rows {
        payments
            .entry(row.order_id.clone())
            .or_default()
            .push(row.into_payment());
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let order_items = items.remove(&row.id).unwrap_or_default();
            let order_payments = payments.remove(&row.id).unwrap_or_default();
            row.into_order(order_items, order_payments)
        })
        .collect())
}

fn push_ids(sql: &mut QueryBuilder<'_, Sqlite>, ids: &[&str]) {
    let mut separated = sql.separated(", ");
    for id in ids {
        separated.push_bind(id.to_string());
    }
}

fn status_of(name: &str) -> OrderStatus {
    // The CHECK constraint on `orders.status` keeps unknown names out.
    status_from_name(name).unwrap_or_default()
}

fn count_of(counts: &[(String, i64)], name: &str) -> i64 {
    counts
        .iter()
        .find(|(column, _)| column == name)
        .map_or(0, |(_, count)| *count)
}

fn sort_column(field: SortField) -> &'static str {
    match field {
        SortField::CreatedAt => "created_at",
        SortField::Total => "total",
        SortField::UpdatedAt => "updated_at",
    }
}

fn sort_key_of(row: &OrderRow, field: SortField) -> i64 {
    match field {
        SortField::CreatedAt => row.created_at,
        SortField::Total => row.total,
        SortField::UpdatedAt => row.updated_at,
    }
}
