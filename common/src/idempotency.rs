//! Idempotency keys: a retried write with the same key and the same request
//! returns the first result and writes nothing new.
//!
//! Each service keeps an `idempotency_keys` table with the columns `scope`,
//! `key`, `request_hash`, `response` and `created_at`, primary key
//! `(scope, key)`. A write claims its key inside its own transaction before
//! it changes anything, so a concurrent retry blocks on the key's row (or on
//! SQLite's write lock) and then finds the stored result.

use prost::Message;
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;

use crate::database::{Param, SqlBuilder};
use crate::validation::FieldViolation;

/// Maximum key length accepted.
pub const MAX_KEY_LEN: usize = 255;

/// A checked key and the fingerprint of the request it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    /// Operation the key belongs to, for example "CreateUser".
    pub scope: &'static str,
    pub key: String,
    pub request_hash: String,
}

/// Outcome of claiming a key.
#[derive(Debug)]
pub enum Claim {
    /// The key is new and now held by this transaction.
    Fresh,
    /// The key was used before with the same request: its encoded response.
    Replay(Vec<u8>),
}

/// Failures of claiming a key.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    #[error("idempotency_key: already used for a different request")]
    Mismatch,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl IdempotencyKey {
    /// Checks `key` (empty means none) and fingerprints `request`, which the
    /// caller passes with its key field cleared.
    pub fn parse(
        scope: &'static str,
        key: &str,
        request: &impl Message,
    ) -> Result<Option<Self>, FieldViolation> {
        if key.is_empty() {
            return Ok(None);
        }
        if key.len() > MAX_KEY_LEN || !key.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(FieldViolation::new(
                "idempotency_key",
                format!("must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
            ));
        }
        let request_hash = hex(&Sha256::digest(request.encode_to_vec()));
        Ok(Some(Self {
            scope,
            key: key.to_owned(),
            request_hash,
        }))
    }

    /// Claims the key inside the caller's transaction. A key older than
    /// `expires_before` (microseconds) counts as unused and is replaced;
    /// [`spawn_purge`] deletes the other expired keys.
    pub async fn claim(
        &self,
        connection: &mut AnyConnection,
        expires_before: i64,
    ) -> Result<Claim, IdempotencyError> {
        let mut select = SqlBuilder::new(
            "SELECT request_hash, response, created_at FROM idempotency_keys WHERE scope = ",
        );
        select
            .bind(Param::Text(self.scope.to_owned()))
            .push(" AND key = ")
            .bind(Param::Text(self.key.clone()));
        let stored: Option<(String, Vec<u8>, i64)> =
            select.query_as().fetch_optional(&mut *connection).await?;
        match stored {
            Some((_, _, created_at)) if created_at < expires_before => {
                // An expired key counts as unused: drop it and claim it anew.
                let mut delete = SqlBuilder::new("DELETE FROM idempotency_keys WHERE scope = ");
                delete
                    .bind(Param::Text(self.scope.to_owned()))
                    .push(" AND key = ")
                    .bind(Param::Text(self.key.clone()));
                delete.query().execute(&mut *connection).await?;
            }
            Some((request_hash, _, _)) if request_hash != self.request_hash => {
                return Err(IdempotencyError::Mismatch);
            }
            Some((_, response, _)) => return Ok(Claim::Replay(response)),
            None => {}
        }

        let mut insert = SqlBuilder::new(
            "INSERT INTO idempotency_keys (scope, key, request_hash, response, created_at) VALUES (",
        );
        insert
            .bind(Param::Text(self.scope.to_owned()))
            .push(", ")
            .bind(Param::Text(self.key.clone()))
            .push(", ")
            .bind(Param::Text(self.request_hash.clone()))
            .push(", ")
            .bind(Param::Bytes(Vec::new()))
            .push(", ")
            .bind(Param::Integer(crate::time::now_micros()))
            .push(")");
        insert.query().execute(&mut *connection).await?;
        Ok(Claim::Fresh)
    }

    /// Stores the response of the write that claimed the key, in the same
    /// transaction as the write.
    pub async fn complete(
        &self,
        connection: &mut AnyConnection,
        response: &impl Message,
    ) -> Result<(), sqlx::Error> {
        let mut update = SqlBuilder::new("UPDATE idempotency_keys SET response = ");
        update
            .bind(Param::Bytes(response.encode_to_vec()))
            .push(" WHERE scope = ")
            .bind(Param::Text(self.scope.to_owned()))
            .push(" AND key = ")
            .bind(Param::Text(self.key.clone()));
        update.query().execute(&mut *connection).await.map(drop)
    }
}

/// Deletes expired keys every `interval` until the pool closes, so the
/// table stays small without every write scanning it.
pub fn spawn_purge(pool: sqlx::AnyPool, ttl: std::time::Duration, interval: std::time::Duration) {
    let ttl_micros = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        while !pool.is_closed() {
            ticker.tick().await;
            let mut delete = SqlBuilder::new("DELETE FROM idempotency_keys WHERE created_at < ");
            delete.bind(Param::Integer(
                crate::time::now_micros().saturating_sub(ttl_micros),
            ));
            match delete.query().execute(&pool).await {
                Ok(result) if result.rows_affected() > 0 => {
                    tracing::info!(
                        deleted = result.rows_affected(),
                        "expired idempotency keys deleted"
                    );
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "failed to delete expired idempotency keys"),
            }
        }
    });
}

/// Tells whether an error is a unique-key violation, which a concurrent
/// claim of the same key causes on PostgreSQL; the caller retries once and
/// then finds the stored response.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database) if database.is_unique_violation())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_key_means_none() {
        let request = prost_types::Timestamp {
            seconds: 1,
            nanos: 0,
        };
        assert!(
            IdempotencyKey::parse("Test", "", &request)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn invalid_keys_rejected() {
        let request = prost_types::Timestamp::default();
        for key in ["has space", "tab\t", &"k".repeat(256), "ключ"] {
            let error = IdempotencyKey::parse("Test", key, &request).unwrap_err();
            assert_eq!(error.field, "idempotency_key", "{key:?}");
        }
    }

    #[test]
    fn hash_follows_request() {
        let first = IdempotencyKey::parse(
            "Test",
            "k1",
            &prost_types::Timestamp {
                seconds: 1,
                nanos: 0,
            },
        )
        .unwrap()
        .unwrap();
        let same = IdempotencyKey::parse(
            "Test",
            "k1",
            &prost_types::Timestamp {
                seconds: 1,
                nanos: 0,
            },
        )
        .unwrap()
        .unwrap();
        let other = IdempotencyKey::parse(
            "Test",
            "k1",
            &prost_types::Timestamp {
                seconds: 2,
                nanos: 0,
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(first.request_hash, same.request_hash);
        assert_ne!(first.request_hash, other.request_hash);
    }
}
