//! Order storage on SQLite or PostgreSQL through `sqlx::Any`.
//!
//! Every statement uses `$n` placeholders and SQL that both databases accept:
//! text ids, 64-bit integer instants and amounts, `LIMIT`, `RETURNING`,
//! `IN (...)` and `ROW_NUMBER() OVER`. The one exception is the newest
//! orders of many users, which PostgreSQL reads with `LATERAL`.
//!
//! Reads run in one read-only transaction each, so an order, its items and
//! its payments come from one snapshot. A read of orders alone is one
//! statement and needs none. Writes live in `writes`: each runs in
//! one transaction from [`Database::begin`], and CreateOrder and
//! ProcessPayment claim their idempotency key in that same transaction
//! (see `idempotent`).

mod idempotent;
mod rows;
mod writes;

use std::collections::HashMap;
use std::time::Duration;

use lintas_common::database::{Backend, Database, Param, SqlBuilder};
use lintas_common::idempotency::IdempotencyError;
use lintas_proto::order::v1::{Order, OrderStatus, PaymentStatus};
use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyConnection, Transaction};
use uuid::Uuid;

use crate::lifecycle::{STATUSES, TransitionRejected, status_from_name, status_name};
use crate::validate::{OrderQuery, SortField};
use rows::{ItemRow, ORDER_COLUMNS, OrderRow, PAYMENT_COLUMNS, PaymentRow, payment_status_column};

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
    #[error("idempotency_key: already used for a different request")]
    IdempotencyMismatch,
    #[error("stored idempotent response could not be decoded: {0}")]
    CorruptReplay(#[from] prost::DecodeError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<IdempotencyError> for StoreError {
    fn from(error: IdempotencyError) -> Self {
        match error {
            IdempotencyError::Mismatch => Self::IdempotencyMismatch,
            IdempotencyError::Database(error) => Self::Database(error),
        }
    }
}

/// Result of a write that may carry an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub enum Written<T> {
    /// The write ran in this call.
    Applied(T),
    /// An earlier call with the same key and request ran the write; this is
    /// the response stored with the key.
    Replayed(T),
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

/// Orders, items, payments and idempotency keys in one database.
#[derive(Clone)]
pub struct OrderStore {
    database: Database,
    /// Age after which an idempotency key counts as unused, in microseconds.
    idempotency_ttl_micros: i64,
}

impl<T> Written<T> {
    pub fn into_inner(self) -> T {
        match self {
            Written::Applied(value) | Written::Replayed(value) => value,
        }
    }

    pub fn is_replay(&self) -> bool {
        matches!(self, Written::Replayed(_))
    }
}

impl OrderStore {
    /// Wraps a database whose migrations are applied.
    /// The OpenTelemetry `db.system.name` of the backend, for spans.
    fn database_system(&self) -> &'static str {
        self.database.system_name()
    }

    pub fn new(database: Database, idempotency_ttl: Duration) -> Self {
        Self {
            database,
            idempotency_ttl_micros: i64::try_from(idempotency_ttl.as_micros()).unwrap_or(i64::MAX),
        }
    }

    #[tracing::instrument(name = "db.orders.get", skip_all, fields(otel.kind = "client", db.system.name = self.database_system(), db.operation.name = "SELECT"))]
    pub async fn get(&self, id: Uuid) -> Result<Order, StoreError> {
        let mut transaction = self.begin_read().await?;
        let order = load_order(&mut transaction, id).await?;
        transaction.commit().await?;
        Ok(order)
    }

    #[tracing::instrument(name = "db.orders.list", skip_all, fields(otel.kind = "client", db.system.name = self.database_system(), db.operation.name = "SELECT"))]
    pub async fn list(
        &self,
        query: &OrderQuery,
        after: Option<&Cursor>,
    ) -> Result<Page, StoreError> {
        let mut sql = SqlBuilder::new(format!("SELECT {ORDER_COLUMNS} FROM orders WHERE 1 = 1"));
        if let Some(user_id) = query.user_id {
            sql.push(" AND user_id = ")
                .bind(Param::Text(user_id.to_string()));
        }
        if let Some(status) = query.status {
            sql.push(" AND status = ")
                .bind(Param::Text(status_name(status).to_owned()));
        }
        if let Some(created_after) = query.created_after {
            sql.push(" AND created_at >= ")
                .bind(Param::Integer(created_after));
        }
        if let Some(created_before) = query.created_before {
            sql.push(" AND created_at < ")
                .bind(Param::Integer(created_before));
        }
        if let Some(min_total) = query.min_total {
            sql.push(" AND total >= ").bind(Param::Integer(min_total));
        }

        let column = sort_column(query.sort_field);
        let (comparison, direction) = if query.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        if let Some(cursor) = after {
            sql.push(&format!(" AND ({column} {comparison} "))
                .bind(Param::Integer(cursor.key))
                .push(&format!(" OR ({column} = "))
                .bind(Param::Integer(cursor.key))
                .push(&format!(" AND id {comparison} "))
                .bind(Param::Text(cursor.id.clone()))
                .push("))");
        }
        sql.push(&format!(
            " ORDER BY {column} {direction}, id {direction} LIMIT "
        ))
        .bind(Param::Integer(query.limit + 1));

        let mut transaction = self.begin_read().await?;
        let mut rows: Vec<OrderRow> = sql.query_as().fetch_all(&mut *transaction).await?;
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

    /// Returns up to `limit` newest orders of each user, keyed by user id,
    /// with empty items and payments when `omit_details`. Users without
    /// orders are missing from the map.
    #[tracing::instrument(name = "db.orders.newest_per_user", skip_all, fields(otel.kind = "client", db.system.name = self.database_system(), db.operation.name = "SELECT"))]
    pub async fn newest_per_user(
        &self,
        user_ids: &[Uuid],
        limit: i64,
        omit_details: bool,
    ) -> Result<HashMap<String, UserOrdersPage>, StoreError> {
        if user_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = self.newest_per_user_query(user_ids, limit);
        // One statement reads one snapshot, so only the detail queries need
        // the transaction.
        let (fetched, mut transaction): (Vec<OrderRow>, _) = if omit_details {
            (sql.query_as().fetch_all(&self.database.pool).await?, None)
        } else {
            let mut transaction = self.begin_read().await?;
            let fetched = sql.query_as().fetch_all(&mut *transaction).await?;
            (fetched, Some(transaction))
        };
        let mut counts: HashMap<String, i64> = HashMap::new();
        let mut rows = Vec::with_capacity(fetched.len());
        for row in fetched {
            let count = counts.entry(row.user_id.clone()).or_default();
            *count += 1;
            if *count <= limit {
                rows.push(row);
            }
        }
        let orders = match transaction.as_mut() {
            Some(transaction) => with_details(transaction, rows).await?,
            None => rows
                .into_iter()
                .map(|row| row.into_order(Vec::new(), Vec::new()))
                .collect(),
        };
        if let Some(transaction) = transaction {
            transaction.commit().await?;
        }

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

    /// Builds the query of up to `limit + 1` newest orders of each user,
    /// ordered by user and then newest first. The extra row shows whether
    /// the user has more.
    fn newest_per_user_query(&self, user_ids: &[Uuid], limit: i64) -> SqlBuilder {
        let user_ids: Vec<String> = user_ids.iter().map(Uuid::to_string).collect();
        match self.database.backend {
            // One backward scan of the (user_id, created_at, id) index per
            // user, stopped after `limit + 1` rows. The window query below
            // reads and sorts every order of the users.
            Backend::Postgres => {
                let mut sql = SqlBuilder::new(format!("SELECT {ORDER_COLUMNS} FROM (VALUES "));
                for (index, user_id) in user_ids.iter().enumerate() {
                    sql.push(if index == 0 { "(" } else { ", (" })
                        .bind(Param::Text(user_id.clone()))
                        .push(")");
                }
                sql.push(
                    ") AS wanted (wanted_id) CROSS JOIN LATERAL (SELECT * FROM orders \
                     WHERE orders.user_id = wanted.wanted_id COLLATE \"C\" \
                     ORDER BY created_at DESC, id DESC LIMIT ",
                )
                .bind(Param::Integer(limit + 1))
                .push(") AS newest ORDER BY user_id, created_at DESC, id DESC");
                sql
            }
            // SQLite has no LATERAL, so each user's orders are ranked.
            Backend::Sqlite => {
                let mut sql = SqlBuilder::new(format!(
                    "SELECT {ORDER_COLUMNS} FROM (SELECT *, ROW_NUMBER() OVER \
                     (PARTITION BY user_id ORDER BY created_at DESC, id DESC) AS position_in_user \
                     FROM orders WHERE user_id IN ("
                ));
                push_text_list(&mut sql, &user_ids);
                sql.push(")) AS ranked WHERE position_in_user <= ")
                    .bind(Param::Integer(limit + 1))
                    .push(" ORDER BY user_id, position_in_user");
                sql
            }
        }
    }

    #[tracing::instrument(name = "db.orders.metrics", skip_all, fields(otel.kind = "client", db.system.name = self.database_system(), db.operation.name = "SELECT"))]
    pub async fn metrics(&self) -> Result<OrderMetrics, StoreError> {
        let mut transaction = self.begin_read().await?;
        let status_counts: Vec<(String, i64)> =
            SqlBuilder::new("SELECT status, COUNT(*) FROM orders GROUP BY status")
                .query_as()
                .fetch_all(&mut *transaction)
                .await?;

        // A single total may reach 10^18, so a plain SUM overflows 64 bits
        // after ten such orders. The quotients and the remainders of a
        // division by 10^9 are summed separately, which keeps both sums far
        // from the limit, and joined in 128 bits below.
        let mut revenue_sql = SqlBuilder::new(
            "SELECT currency, CAST(SUM(total / 1000000000) AS BIGINT), \
             CAST(SUM(total % 1000000000) AS BIGINT) FROM orders WHERE status IN (",
        );
        let revenue_statuses: Vec<String> = REVENUE_STATUSES
            .iter()
            .map(|status| status_name(*status).to_owned())
            .collect();
        push_text_list(&mut revenue_sql, &revenue_statuses);
        revenue_sql.push(") GROUP BY currency ORDER BY currency");
        let revenue_parts: Vec<(String, i64, i64)> =
            revenue_sql.query_as().fetch_all(&mut *transaction).await?;

        let payment_counts: Vec<(String, i64)> =
            SqlBuilder::new("SELECT status, COUNT(*) FROM payments GROUP BY status")
                .query_as()
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

    /// Checks that the database responds.
    #[tracing::instrument(name = "db.orders.ping", skip_all, fields(otel.kind = "client", db.system.name = self.database_system(), db.operation.name = "SELECT"))]
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.database.ping().await?;
        Ok(())
    }

    /// Starts a read-only transaction whose statements all see one snapshot.
    async fn begin_read(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.database.backend {
            // A deferred SQLite transaction reads one WAL snapshot from its
            // first read to its end.
            Backend::Sqlite => self.database.pool.begin().await,
            // PostgreSQL's default, READ COMMITTED, takes a new snapshot for
            // every statement.
            Backend::Postgres => {
                self.database
                    .pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await
            }
        }
    }
}

/// Loads one order with its items and payments.
async fn load_order(connection: &mut AnyConnection, id: Uuid) -> Result<Order, StoreError> {
    let mut sql = SqlBuilder::new(format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = "));
    sql.bind(Param::Text(id.to_string()));
    let row: Option<OrderRow> = sql.query_as().fetch_optional(&mut *connection).await?;
    let row = row.ok_or(StoreError::NotFound(id))?;
    Ok(with_details(connection, vec![row]).await?.remove(0))
}

/// Loads the items and payments of `rows` with one query per table and
/// returns the orders in the same order as `rows`.
async fn with_details(
    connection: &mut AnyConnection,
    rows: Vec<OrderRow>,
) -> Result<Vec<Order>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();

    let mut items_sql = SqlBuilder::new(
        "SELECT order_id, sku, quantity, unit_price FROM order_items WHERE order_id IN (",
    );
    push_text_list(&mut items_sql, &ids);
    items_sql.push(") ORDER BY order_id, line_number");
    let item_rows: Vec<ItemRow> = items_sql.query_as().fetch_all(&mut *connection).await?;

    let mut payments_sql = SqlBuilder::new(format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id IN ("
    ));
    push_text_list(&mut payments_sql, &ids);
    payments_sql.push(") ORDER BY created_at, id");
    let payment_rows: Vec<PaymentRow> = payments_sql.query_as().fetch_all(&mut *connection).await?;

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

/// Appends one placeholder per value, separated by commas, for `IN (...)`.
fn push_text_list(sql: &mut SqlBuilder, values: &[String]) {
    for (index, value) in values.iter().enumerate() {
        if index > 0 {
            sql.push(", ");
        }
        sql.bind(Param::Text(value.clone()));
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
