//! RPC handlers of `user.v1.UserService`: validate, call the store, and map
//! store errors to gRPC status codes in one place ([`status_from_store`]).

use std::collections::HashMap;
use std::sync::Arc;

use lintas_common::metadata::{request_id, response_metadata};
use lintas_common::page_token::PageTokenCodec;
use lintas_common::time::now_micros;
use lintas_proto::common::v1::health_check_response::ServingStatus;
use lintas_proto::common::v1::{HealthCheckRequest, HealthCheckResponse};
use lintas_proto::user::v1::user_service_server::UserService;
use lintas_proto::user::v1::{
    BatchGetUsersRequest, BatchGetUsersResponse, CreateUserRequest, CreateUserResponse,
    DeleteUserRequest, DeleteUserResponse, GetUserMetricsRequest, GetUserMetricsResponse,
    GetUserRequest, GetUserResponse, ListUsersRequest, ListUsersResponse, UpdateUserRequest,
    UpdateUserResponse, UserStatusCount,
};
use tonic::{Request, Response, Status};

use crate::store::{Cursor, SqlUserStore, StoreError, UserStore};
use crate::{SERVICE_NAME, validate};
use lintas_common::idempotency::IdempotencyKey;

const DAY_MICROS: i64 = 24 * 60 * 60 * 1_000_000;

/// Implementation of `user.v1.UserService`.
#[derive(Clone)]
pub struct UserApi {
    store: Arc<dyn UserStore>,
    page_tokens: PageTokenCodec,
    business: BusinessMetrics,
}

/// Business counters exported to Prometheus.
#[derive(Clone)]
pub struct BusinessMetrics {
    users_created: prometheus::IntCounter,
    users_deleted: prometheus::IntCounter,
}

impl BusinessMetrics {
    pub fn register(registry: &prometheus::Registry) -> prometheus::Result<Self> {
        let users_created = prometheus::IntCounter::new(
            "users_created_total",
            "Users created, retries with an idempotency key included.",
        )?;
        let users_deleted = prometheus::IntCounter::new("users_deleted_total", "Users deleted.")?;
        registry.register(Box::new(users_created.clone()))?;
        registry.register(Box::new(users_deleted.clone()))?;
        Ok(Self {
            users_created,
            users_deleted,
        })
    }
}

impl UserApi {
    pub fn new(
        store: SqlUserStore,
        page_tokens: PageTokenCodec,
        business: BusinessMetrics,
    ) -> Self {
        Self {
            store: Arc::new(store),
            page_tokens,
            business,
        }
    }
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn get_user(
        &self,
        request: Request<GetUserRequest>,
    ) -> Result<Response<GetUserResponse>, Status> {
        let request_id = request_id(request.metadata());
        let id = validate::user_id("id", &request.get_ref().id)?;
        let user = self
            .store
            .get(id)
            .await
            .map_err(|error| status_from_store(error, &request_id))?;
        Ok(Response::new(GetUserResponse {
            user: Some(user),
            metadata: response_metadata(&request_id),
        }))
    }

    async fn batch_get_users(
        &self,
        request: Request<BatchGetUsersRequest>,
    ) -> Result<Response<BatchGetUsersResponse>, Status> {
        let request_id = request_id(request.metadata());
        let ids = validate::batch_ids(&request.get_ref().ids)?;
        let users = self
            .store
            .get_many(&ids)
            .await
            .map_err(|error| status_from_store(error, &request_id))?;
        Ok(Response::new(BatchGetUsersResponse {
            users,
            metadata: response_metadata(&request_id),
        }))
    }

    async fn list_users(
        &self,
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        let request_id = request_id(request.metadata());
        let request = request.get_ref();
        let query = validate::list_request(request)?;
        let fingerprint = query.fingerprint();
        let after: Option<Cursor> = match request.page_token.as_str() {
            "" => None,
            token => Some(self.page_tokens.decode(&fingerprint, token)?),
        };

        let page = self
            .store
            .list(&query, after.as_ref())
            .await
            .map_err(|error| status_from_store(error, &request_id))?;
        let next_page_token = page
            .next
            .map(|cursor| self.page_tokens.encode(&fingerprint, &cursor))
            .unwrap_or_default();
        Ok(Response::new(ListUsersResponse {
            users: page.users,
            next_page_token,
            metadata: response_metadata(&request_id),
        }))
    }

    async fn create_user(
        &self,
        request: Request<CreateUserRequest>,
    ) -> Result<Response<CreateUserResponse>, Status> {
        let request_id = request_id(request.metadata());
        let new_user = validate::create_request(request.get_ref())?;
        let fingerprint = CreateUserRequest {
            idempotency_key: String::new(),
            ..request.get_ref().clone()
        };
        let key = IdempotencyKey::parse(
            "CreateUser",
            &request.get_ref().idempotency_key,
            &fingerprint,
        )?;
        let user = self
            .store
            .create(new_user, key.as_ref())
            .await
            .map_err(|error| status_from_store(error, &request_id))?;
        self.business.users_created.inc();
        tracing::info!(user_id = %user.id, %request_id, "user created");
        Ok(Response::new(CreateUserResponse {
            user: Some(user),
            metadata: response_metadata(&request_id),
        }))
    }

    async fn update_user(
        &self,
        request: Request<UpdateUserRequest>,
    ) -> Result<Response<UpdateUserResponse>, Status> {
        let request_id = request_id(request.metadata());
        let (id, patch) = validate::update_request(request.get_ref())?;
        let user = self
            .store
            .update(
                id,
                patch,
                validate::expected_version(request.get_ref().expected_version)?,
            )
            .await
            .map_err(|error| status_from_store(error, &request_id))?;
        tracing::info!(user_id = %user.id, version = user.version, %request_id, "user updated");
        Ok(Response::new(UpdateUserResponse {
            user: Some(user),
            metadata: response_metadata(&request_id),
        }))
    }

    async fn delete_user(
        &self,
        request: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        let request_id = request_id(request.metadata());
        let id = validate::user_id("id", &request.get_ref().id)?;
        let expected_version = validate::expected_version(request.get_ref().expected_version)?;
        self.store
            .delete(id, expected_version)
            .await
            .map_err(|error| status_from_store(error, &request_id))?;
        self.business.users_deleted.inc();
        tracing::info!(user_id = %id, %request_id, "user deleted");
        Ok(Response::new(DeleteUserResponse {
            metadata: response_metadata(&request_id),
        }))
    }

    async fn health_check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let request_id = request_id(request.metadata());
        let (status, database) = match self.store.ping().await {
            Ok(()) => (ServingStatus::Serving, "ok".to_owned()),
            Err(error) => {
                tracing::warn!(%error, %request_id, "health check failed: database did not respond");
                (ServingStatus::NotServing, format!("failed: {error}"))
            }
        };
        Ok(Response::new(HealthCheckResponse {
            status: status as i32,
            service: SERVICE_NAME.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            checks: HashMap::from([("database".to_owned(), database)]),
            metadata: response_metadata(&request_id),
        }))
    }

    async fn get_user_metrics(
        &self,
        request: Request<GetUserMetricsRequest>,
    ) -> Result<Response<GetUserMetricsResponse>, Status> {
        let request_id = request_id(request.metadata());
        let counts = self
            .store
            .counts(now_micros() - DAY_MICROS)
            .await
            .map_err(|error| status_from_store(error, &request_id))?;
        Ok(Response::new(GetUserMetricsResponse {
            total_users: counts.total,
            users_by_status: counts
                .by_status
                .into_iter()
                .map(|(status, count)| UserStatusCount {
                    status: status as i32,
                    count,
                })
                .collect(),
            users_created_last_24h: counts.created_since,
            metadata: response_metadata(&request_id),
        }))
    }
}

/// Maps a store failure to the status returned to the caller. Database failures
/// are logged here, once, and reach the caller without internal detail.
fn status_from_store(error: StoreError, request_id: &str) -> Status {
    match error {
        StoreError::NotFound => Status::not_found("user not found"),
        StoreError::EmailTaken => Status::already_exists("email: address is already in use"),
        StoreError::Conflict => Status::aborted("user was changed by a concurrent request, retry"),
        error @ StoreError::VersionMismatch { .. } => Status::aborted(error.to_string()),
        error @ StoreError::IdempotencyMismatch => Status::failed_precondition(error.to_string()),
        StoreError::CorruptReplay => {
            tracing::error!(%request_id, "stored idempotent response could not be decoded");
            Status::internal("internal error")
        }
        StoreError::Database(sqlx::Error::PoolTimedOut) => {
            tracing::error!(%request_id, "database pool timed out");
            Status::unavailable("database is busy, retry later")
        }
        StoreError::Database(error) => {
            tracing::error!(%error, %request_id, "database query failed");
            Status::internal("internal error")
        }
    }
}
