//! User storage: the [`UserStore`] interface and its SQLite implementation.
//!
//! The SQL sticks to what SQLite and PostgreSQL share: text ids, 64-bit
//! integer instants, `LIMIT`, `RETURNING` and `LIKE ... ESCAPE`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use lintas_common::time::{micros_to_timestamp, now_micros};
use lintas_proto::user::v1::{User, UserStatus};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use uuid::Uuid;

use crate::validate::{NewUser, SortField, UserPatch, UserQuery};

const USER_COLUMNS: &str = "id, name, email, status, created_at, updated_at, version";

/// Failures of a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("user not found")]
    NotFound,
    #[error("email address is already in use")]
    EmailTaken,
    #[error("user was changed by a concurrent request")]
    Conflict,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Position after the last row of a page: the sort column's value and the id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cursor {
    pub key: SortKey,
    pub id: String,
}

/// Value of the sort column at a cursor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum SortKey {
    Integer(i64),
    Text(String),
}

/// One page of a listing, and the cursor of the next page if there is one.
#[derive(Debug)]
pub struct Page {
    pub users: Vec<User>,
    pub next: Option<Cursor>,
}

/// Counts behind `GetUserMetrics`.
#[derive(Debug, Default)]
pub struct UserCounts {
    pub total: i64,
    pub by_status: Vec<(UserStatus, i64)>,
    pub created_since: i64,
}

/// Storage interface of the user service.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    async fn get(&self, id: Uuid) -> Result<User, StoreError>;
    /// Fetches the users among `ids` that exist, in no particular order.
    async fn get_many(&self, ids: &[Uuid]) -> Result<Vec<User>, StoreError>;
    async fn list(&self, query: &UserQuery, after: Option<&Cursor>) -> Result<Page, StoreError>;
    async fn create(&self, user: NewUser) -> Result<User, StoreError>;
    async fn update(&self, id: Uuid, patch: UserPatch) -> Result<User, StoreError>;
    async fn delete(&self, id: Uuid) -> Result<(), StoreError>;
    /// Counts users in total, per status, and created at or after `since` (microseconds).
    async fn counts(&self, since: i64) -> Result<UserCounts, StoreError>;
    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// [`UserStore`] on a SQLite file, with migrations embedded in the binary.
#[derive(Clone)]
pub struct SqliteUserStore {
    pool: SqlitePool,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    name: String,
    email: String,
    status: String,
    created_at: i64,
    updated_at: i64,
    version: i64,
}

impl UserRow {
    fn into_user(self) -> User {
        User {
            id: self.id,
            name: self.name,
            email: self.email,
            status: status_from_column(&self.status) as i32,
            created_at: Some(micros_to_timestamp(self.created_at)),
            updated_at: Some(micros_to_timestamp(self.updated_at)),
            version: self.version,
        }
    }
}

impl SqliteUserStore {
    /// Opens (creating if needed) the database at `url` and applies pending
    /// migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        if let Some(parent) = options.get_filename().parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)?;
            }
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
impl UserStore for SqliteUserStore {
    async fn get(&self, id: Uuid) -> Result<User, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?");
        let row: Option<UserRow> = sqlx::query_as(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(UserRow::into_user).ok_or(StoreError::NotFound)
    }

    async fn get_many(&self, ids: &[Uuid]) -> Result<Vec<User>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql =
            QueryBuilder::<Sqlite>::new(format!("SELECT {USER_COLUMNS} FROM users WHERE id IN ("));
        let mut separated = sql.separated(", ");
        for id in ids {
            separated.push_bind(id.to_string());
        }
        sql.push(")");
        let rows: Vec<UserRow> = sql.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(UserRow::into_user).collect())
    }

    async fn list(&self, query: &UserQuery, after: Option<&Cursor>) -> Result<Page, StoreError> {
        let mut sql =
            QueryBuilder::<Sqlite>::new(format!("SELECT {USER_COLUMNS} FROM users WHERE 1 = 1"));
        if let Some(name) = &query.name_contains {
            sql.push(" AND name_folded LIKE ")
                .push_bind(like_pattern(name))
                .push(" ESCAPE '\\'");
        }
        if let Some(email) = &query.email_contains {
            sql.push(" AND email_folded LIKE ")
                .push_bind(like_pattern(email))
                .push(" ESCAPE '\\'");
        }
        if let Some(status) = query.status {
            sql.push(" AND status = ").push_bind(status_column(status));
        }

        let column = sort_column(query.sort_field);
        let (comparison, direction) = if query.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        if let Some(cursor) = after {
            sql.push(format!(" AND ({column} {comparison} "));
            push_sort_key(&mut sql, &cursor.key);
            sql.push(format!(" OR ({column} = "));
            push_sort_key(&mut sql, &cursor.key);
            sql.push(format!(" AND id {comparison} "))
                .push_bind(cursor.id.clone())
                .push("))");
        }
        sql.push(format!(
            " ORDER BY {column} {direction}, id {direction} LIMIT "
        ))
        .push_bind(query.limit + 1);

        let mut rows: Vec<UserRow> = sql.build_query_as().fetch_all(&self.pool).await?;
        let has_more = rows.len() as i64 > query.limit;
        rows.truncate(query.limit as usize);
        let next = match (has_more, rows.last()) {
            (true, Some(last)) => Some(Cursor {
                key: sort_key_of(last, query.sort_field),
                id: last.id.clone(),
            }),
            _ => None,
        };
        Ok(Page {
            users: rows.into_iter().map(UserRow::into_user).collect(),
            next,
        })
    }

    async fn create(&self, user: NewUser) -> Result<User, StoreError> {
        let now = now_micros();
        let sql = format!(
            "INSERT INTO users (id, name, name_folded, email, email_folded, status, created_at, updated_at, version) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) RETURNING {USER_COLUMNS}"
        );
        let row: UserRow = sqlx::query_as(&sql)
            .bind(Uuid::now_v7().to_string())
            .bind(&user.name)
            .bind(user.name.to_lowercase())
            .bind(&user.email)
            .bind(user.email.to_lowercase())
            .bind(status_column(user.status))
            .bind(now)
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(map_unique_violation)?;
        Ok(row.into_user())
    }

    async fn update(&self, id: Uuid, patch: UserPatch) -> Result<User, StoreError> {
        let current = self.get(id).await?;
        let status = patch.status.unwrap_or(current.status());
        let name = patch.name.unwrap_or(current.name);
        let email = patch.email.unwrap_or(current.email);

        // The version guard turns a concurrent update between the read above
        // and this write into a conflict instead of a lost update.
        let sql = format!(
            "UPDATE users SET name = ?, name_folded = ?, email = ?, email_folded = ?, status = ?, \
             updated_at = ?, version = version + 1 WHERE id = ? AND version = ? RETURNING {USER_COLUMNS}"
        );
        let row: Option<UserRow> = sqlx::query_as(&sql)
            .bind(&name)
            .bind(name.to_lowercase())
            .bind(&email)
            .bind(email.to_lowercase())
            .bind(status_column(status))
            .bind(now_micros())
            .bind(id.to_string())
            .bind(current.version)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_unique_violation)?;
        row.map(UserRow::into_user).ok_or(StoreError::Conflict)
    }

    async fn delete(&self, id: Uuid) -> Result<(), StoreError> {
        let result = sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn counts(&self, since: i64) -> Result<UserCounts, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM users GROUP BY status")
                .fetch_all(&self.pool)
                .await?;
        let (created_since,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM users WHERE created_at >= ?")
                .bind(since)
                .fetch_one(&self.pool)
                .await?;

        let by_status: Vec<(UserStatus, i64)> = [UserStatus::Active, UserStatus::Suspended]
            .into_iter()
            .map(|status| {
                let count = rows
                    .iter()
                    .find(|(column, _)| *column == status_column(status))
                    .map_or(0, |(_, count)| *count);
                (status, count)
            })
            .collect();
        Ok(UserCounts {
            total: by_status.iter().map(|(_, count)| count).sum(),
            by_status,
            created_since,
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

fn map_unique_violation(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(database) if database.is_unique_violation() => StoreError::EmailTaken,
        _ => StoreError::Database(error),
    }
}

fn status_column(status: UserStatus) -> &'static str {
    match status {
        UserStatus::Suspended => "SUSPENDED",
        _ => "ACTIVE",
    }
}

fn status_from_column(value: &str) -> UserStatus {
    match value {
        "SUSPENDED" => UserStatus::Suspended,
        _ => UserStatus::Active,
    }
}

fn sort_column(field: SortField) -> &'static str {
    match field {
        SortField::CreatedAt => "created_at",
        SortField::Name => "name_folded",
        SortField::Email => "email_folded",
    }
}

fn sort_key_of(row: &UserRow, field: SortField) -> SortKey {
    match field {
        SortField::CreatedAt => SortKey::Integer(row.created_at),
        SortField::Name => SortKey::Text(row.name.to_lowercase()),
        SortField::Email => SortKey::Text(row.email.to_lowercase()),
    }
}

fn push_sort_key(sql: &mut QueryBuilder<'_, Sqlite>, key: &SortKey) {
    match key {
        SortKey::Integer(value) => sql.push_bind(*value),
        SortKey::Text(value) => sql.push_bind(value.clone()),
    };
}

/// Builds a `LIKE` pattern that matches `needle` anywhere, case-folded, with
/// `%`, `_` and the escape character taken literally.
fn like_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for character in needle.to_lowercase().chars() {
        if matches!(character, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(character);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("A%b_c\\"), "%a\\%b\\_c\\\\%");
    }
}
