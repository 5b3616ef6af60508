//! User storage: the [`UserStore`] interface and its implementation over
//! `sqlx::Any`, which runs the same SQL on SQLite and PostgreSQL.
//!
//! The SQL sticks to what both databases share: `$n` placeholders, text ids,
//! 64-bit integer instants, `LIMIT`, `RETURNING` and `LIKE ... ESCAPE`.

use async_trait::async_trait;
use lintas_common::database::{Database, Param, SqlBuilder};
use lintas_common::idempotency::{Claim, IdempotencyError, IdempotencyKey, is_unique_violation};
use lintas_common::time::{micros_to_timestamp, now_micros};
use lintas_proto::user::v1::{User, UserStatus};
use prost::Message;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
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
    #[error("version: expected {expected}, but the user is at version {current}")]
    VersionMismatch { expected: i64, current: i64 },
    #[error("idempotency_key: already used for a different request")]
    IdempotencyMismatch,
    #[error("stored idempotent response is unreadable")]
    CorruptReplay,
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
    /// Inserts a user. With a key, a retry of the same request returns the
    /// first user and inserts nothing.
    async fn create(&self, user: NewUser, key: Option<&IdempotencyKey>)
    -> Result<User, StoreError>;
    /// Applies `patch`, only if the stored version equals `expected_version` when one is given.
    async fn update(
        &self,
        id: Uuid,
        patch: UserPatch,
        expected_version: Option<i64>,
    ) -> Result<User, StoreError>;
    /// Deletes a user, only if the stored version equals `expected_version` when one is given.
    async fn delete(&self, id: Uuid, expected_version: Option<i64>) -> Result<(), StoreError>;
    /// Counts users in total, per status, and created at or after `since` (microseconds).
    async fn counts(&self, since: i64) -> Result<UserCounts, StoreError>;
    /// Checks that the database responds.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// [`UserStore`] on SQLite or PostgreSQL.
#[derive(Clone)]
pub struct SqlUserStore {
    database: Database,
    /// How long idempotency keys are honoured, in microseconds.
    idempotency_ttl_micros: i64,
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

impl SqlUserStore {
    pub fn new(database: Database, idempotency_ttl: std::time::Duration) -> Self {
        Self {
            database,
            idempotency_ttl_micros: i64::try_from(idempotency_ttl.as_micros()).unwrap_or(i64::MAX),
        }
    }

    async fn fetch(
        connection: &mut AnyConnection,
        id: Uuid,
    ) -> Result<Option<UserRow>, sqlx::Error> {
        let mut sql = SqlBuilder::new(format!("SELECT {USER_COLUMNS} FROM users WHERE id = "));
        sql.bind(Param::Text(id.to_string()));
        sql.query_as().fetch_optional(connection).await
    }

    async fn try_create(
        &self,
        user: &NewUser,
        key: Option<&IdempotencyKey>,
    ) -> Result<User, StoreError> {
        let mut transaction = self.database.begin().await?;
        if let Some(key) = key {
            let expires_before = now_micros().saturating_sub(self.idempotency_ttl_micros);
            if let Claim::Replay(bytes) = key.claim(&mut transaction, expires_before).await? {
                return User::decode(bytes.as_slice()).map_err(|_| StoreError::CorruptReplay);
            }
        }

        let now = now_micros();
        let mut sql = SqlBuilder::new(
            "INSERT INTO users (id, name, name_folded, email, email_folded, status, created_at, updated_at, version) VALUES (",
        );
        sql.bind(Param::Text(Uuid::now_v7().to_string()))
            .push(", ")
            .bind(Param::Text(user.name.clone()))
            .push(", ")
            .bind(Param::Text(user.name.to_lowercase()))
            .push(", ")
            .bind(Param::Text(user.email.clone()))
            .push(", ")
            .bind(Param::Text(user.email.to_lowercase()))
            .push(", ")
            .bind(Param::Text(status_column(user.status).to_owned()))
            .push(", ")
            .bind(Param::Integer(now))
            .push(", ")
            .bind(Param::Integer(now))
            .push(format!(", 1) RETURNING {USER_COLUMNS}").as_str());
        let row: UserRow = sql
            .query_as()
            .fetch_one(&mut *transaction)
            .await
            .map_err(map_unique_violation)?;
        let created = row.into_user();

        if let Some(key) = key {
            key.complete(&mut transaction, &created).await?;
        }
        transaction.commit().await?;
        Ok(created)
    }
}

#[async_trait]
impl UserStore for SqlUserStore {
    #[tracing::instrument(name = "db.users.get", skip_all, fields(otel.kind = "client", db.system.name = self.database.system_name(), db.operation.name = "SELECT"))]
    async fn get(&self, id: Uuid) -> Result<User, StoreError> {
        let mut connection = self.database.pool.acquire().await?;
        let row = Self::fetch(&mut connection, id).await?;
        row.map(UserRow::into_user).ok_or(StoreError::NotFound)
    }

    #[tracing::instrument(name = "db.users.get_many", skip_all, fields(otel.kind = "client", db.system.name = self.database.system_name(), db.operation.name = "SELECT"))]
    async fn get_many(&self, ids: &[Uuid]) -> Result<Vec<User>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = SqlBuilder::new(format!("SELECT {USER_COLUMNS} FROM users WHERE id IN ("));
        for (index, id) in ids.iter().enumerate() {
            if index > 0 {
                sql.push(", ");
            }
            sql.bind(Param::Text(id.to_string()));
        }
        sql.push(")");
        let rows: Vec<UserRow> = sql.query_as().fetch_all(&self.database.pool).await?;
        Ok(rows.into_iter().map(UserRow::into_user).collect())
    }

    #[tracing::instrument(name = "db.users.list", skip_all, fields(otel.kind = "client", db.system.name = self.database.system_name(), db.operation.name = "SELECT"))]
    async fn list(&self, query: &UserQuery, after: Option<&Cursor>) -> Result<Page, StoreError> {
        let mut sql = SqlBuilder::new(format!("SELECT {USER_COLUMNS} FROM users WHERE 1 = 1"));
        if let Some(name) = &query.name_contains {
            sql.push(" AND name_folded LIKE ")
                .bind(Param::Text(like_pattern(name)))
                .push(" ESCAPE '\\'");
        }
        if let Some(email) = &query.email_contains {
            sql.push(" AND email_folded LIKE ")
                .bind(Param::Text(like_pattern(email)))
                .push(" ESCAPE '\\'");
        }
        if let Some(status) = query.status {
            sql.push(" AND status = ")
                .bind(Param::Text(status_column(status).to_owned()));
        }

        let column = sort_column(query.sort_field);
        let (comparison, direction) = if query.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        if let Some(cursor) = after {
            sql.push(&format!(" AND ({column} {comparison} "))
                .bind(sort_param(&cursor.key))
                .push(&format!(" OR ({column} = "))
                .bind(sort_param(&cursor.key))
                .push(&format!(" AND id {comparison} "))
                .bind(Param::Text(cursor.id.clone()))
                .push("))");
        }
        sql.push(&format!(
            " ORDER BY {column} {direction}, id {direction} LIMIT "
        ))
        .bind(Param::Integer(query.limit + 1));

        let mut rows: Vec<UserRow> = sql.query_as().fetch_all(&self.database.pool).await?;
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

    #[tracing::instrument(name = "db.users.create", skip_all, fields(otel.kind = "client", db.system.name = self.database.system_name(), db.operation.name = "INSERT"))]
    async fn create(
        &self,
        user: NewUser,
        key: Option<&IdempotencyKey>,
    ) -> Result<User, StoreError> {
        match self.try_create(&user, key).await {
            // On PostgreSQL a concurrent request with the same key claimed it
            // first; a second attempt finds its stored response.
            Err(StoreError::Database(error)) if key.is_some() && is_unique_violation(&error) => {
                self.try_create(&user, key).await
            }
            result => result,
        }
    }

    #[tracing::instrument(name = "db.users.update", skip_all, fields(otel.kind = "client", db.system.name = self.database.system_name(), db.operation.name = "UPDATE"))]
    async fn update(
        &self,
        id: Uuid,
        patch: UserPatch,
        expected_version: Option<i64>,
    ) -> Result<User, StoreError> {
        let mut transaction = self.database.begin().await?;
        let current = Self::fetch(&mut transaction, id)
            .await?
            .ok_or(StoreError::NotFound)?
            .into_user();
        if let Some(expected) = expected_version.filter(|expected| *expected != current.version) {
            return Err(StoreError::VersionMismatch {
                expected,
                current: current.version,
            });
        }

        let status = patch.status.unwrap_or(current.status());
        let name = patch.name.unwrap_or(current.name);
        let email = patch.email.unwrap_or(current.email);
        // The version guard turns a concurrent update between the read above
        // and this write into a conflict instead of a lost update.
        let mut sql = SqlBuilder::new("UPDATE users SET name = ");
        sql.bind(Param::Text(name.clone()))
            .push(", name_folded = ")
            .bind(Param::Text(name.to_lowercase()))
            .push(", email = ")
            .bind(Param::Text(email.clone()))
            .push(", email_folded = ")
            .bind(Param::Text(email.to_lowercase()))
            .push(", status = ")
            .bind(Param::Text(status_column(status).to_owned()))
            .push(", updated_at = ")
            .bind(Param::Integer(now_micros()))
            .push(", version = version + 1 WHERE id = ")
            .bind(Param::Text(id.to_string()))
            .push(" AND version = ")
            .bind(Param::Integer(current.version))
            .push(&format!(" RETURNING {USER_COLUMNS}"));
        let row: Option<UserRow> = sql
            .query_as()
            .fetch_optional(&mut *transaction)
            .await
            .map_err(map_unique_violation)?;
        let updated = row.map(UserRow::into_user).ok_or(StoreError::Conflict)?;
        transaction.commit().await?;
        Ok(updated)
    }

    #[tracing::instrument(name = "db.users.delete", skip_all, fields(otel.kind = "client", db.system.name = self.database.system_name(), db.operation.name = "DELETE"))]
    async fn delete(&self, id: Uuid, expected_version: Option<i64>) -> Result<(), StoreError> {
        let mut sql = SqlBuilder::new("DELETE FROM users WHERE id = ");
        sql.bind(Param::Text(id.to_string()));
        if let Some(expected) = expected_version {
            sql.push(" AND version = ").bind(Param::Integer(expected));
        }
        let result = sql.query().execute(&self.database.pool).await?;
        if result.rows_affected() > 0 {
            return Ok(());
        }
        // Nothing deleted: tell a missing user from a stale version.
        match (expected_version, self.get(id).await) {
            (Some(expected), Ok(current)) => Err(StoreError::VersionMismatch {
                expected,
                current: current.version,
            }),
            (_, Err(error)) => Err(error),
            (None, Ok(_)) => Err(StoreError::Conflict),
        }
    }

    #[tracing::instrument(name = "db.users.counts", skip_all, fields(otel.kind = "client", db.system.name = self.database.system_name(), db.operation.name = "SELECT"))]
    async fn counts(&self, since: i64) -> Result<UserCounts, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM users GROUP BY status")
                .fetch_all(&self.database.pool)
                .await?;
        let mut created = SqlBuilder::new("SELECT COUNT(*) FROM users WHERE created_at >= ");
        created.bind(Param::Integer(since));
        let (created_since,): (i64,) = created.query_as().fetch_one(&self.database.pool).await?;

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

    #[tracing::instrument(name = "db.users.ping", skip_all, fields(otel.kind = "client", db.system.name = self.database.system_name(), db.operation.name = "SELECT"))]
    async fn ping(&self) -> Result<(), StoreError> {
        self.database.ping().await?;
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

fn sort_param(key: &SortKey) -> Param {
    match key {
        SortKey::Integer(value) => Param::Integer(*value),
        SortKey::Text(value) => Param::Text(value.clone()),
    }
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
