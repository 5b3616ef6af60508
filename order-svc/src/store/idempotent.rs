//! Writes that may carry an idempotency key.
//!
//! The key is claimed in the write's own transaction before anything else
//! is written, and the response is stored with it before the commit. The
//! write and its stored response therefore commit together or not at all,
//! and a retry with the same key and request gets the stored response
//! instead of writing again. A write that fails leaves the key unclaimed,
//! so its retry runs the write again.

use lintas_common::database::{Param, SqlBuilder};
use lintas_common::idempotency::{Claim, IdempotencyKey, is_unique_violation};
use lintas_common::time::now_micros;
use prost::Message;
use sqlx::AnyConnection;

use super::{OrderStore, StoreError, Written};

/// A write whose response is stored with its idempotency key.
pub(super) trait KeyedWrite {
    /// Response stored with the key and returned to retries, without
    /// response metadata, which belongs to each call.
    type Response: Message + Default;

    /// Runs the write inside the caller's transaction.
    async fn apply(&self, connection: &mut AnyConnection) -> Result<Self::Response, StoreError>;
}

impl OrderStore {
    /// Runs `write` in one transaction, claiming `key` first when there is
    /// one.
    pub(super) async fn write_keyed<W: KeyedWrite>(
        &self,
        write: &W,
        key: Option<&IdempotencyKey>,
    ) -> Result<Written<W::Response>, StoreError> {
        match self.try_write_keyed(write, key).await {
            // On PostgreSQL a concurrent call with the same key inserted it
            // first, and this call's insert waited for that transaction to
            // commit. A second attempt finds the stored response.
            Err(StoreError::Database(error)) if key.is_some() && is_unique_violation(&error) => {
                tracing::debug!("idempotency key was claimed concurrently, retrying once");
                match self.try_write_keyed(write, key).await {
                    Err(StoreError::Database(error)) if is_unique_violation(&error) => {
                        Err(StoreError::Conflict)
                    }
                    result => result,
                }
            }
            result => result,
        }
    }

    /// Returns the stored response of `key` without writing anything, or
    /// `None` when the key is unused or expired. CreateOrder uses it to
    /// return a stored response before it calls the user service. The
    /// write's own claim still decides whether the write runs.
    pub async fn find_replay<R: Message + Default>(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<R>, StoreError> {
        let mut sql =
            SqlBuilder::new("SELECT request_hash, response FROM idempotency_keys WHERE scope = ");
        sql.bind(Param::Text(key.scope.to_owned()))
            .push(" AND key = ")
            .bind(Param::Text(key.key.clone()))
            .push(" AND created_at >= ")
            .bind(Param::Integer(self.keys_expire_before()));
        let stored: Option<(String, Vec<u8>)> =
            sql.query_as().fetch_optional(&self.database.pool).await?;
        match stored {
            None => Ok(None),
            Some((request_hash, _)) if request_hash != key.request_hash => {
                Err(StoreError::IdempotencyMismatch)
            }
            Some((_, response)) => Ok(Some(R::decode(response.as_slice())?)),
        }
    }

    async fn try_write_keyed<W: KeyedWrite>(
        &self,
        write: &W,
        key: Option<&IdempotencyKey>,
    ) -> Result<Written<W::Response>, StoreError> {
        let mut transaction = self.database.begin().await?;
        if let Some(key) = key {
            let claim = key
                .claim(&mut transaction, self.keys_expire_before())
                .await?;
            if let Claim::Replay(response) = claim {
                let response = W::Response::decode(response.as_slice())?;
                // Nothing was written; committing ends the read cleanly.
                transaction.commit().await?;
                return Ok(Written::Replayed(response));
            }
        }

        let response = write.apply(&mut transaction).await?;
        if let Some(key) = key {
            key.complete(&mut transaction, &response).await?;
        }
        transaction.commit().await?;
        Ok(Written::Applied(response))
    }

    /// Instant in microseconds before which a key counts as expired.
    fn keys_expire_before(&self) -> i64 {
        now_micros().saturating_sub(self.idempotency_ttl_micros)
    }
}
