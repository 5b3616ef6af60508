//! RPC handlers of `order.v1.OrderService`: validate, check the user, call
//! the store, and map failures to gRPC status codes in one place per
//! source ([`status_from_store`], [`status_from_user_check`]).

use std::collections::HashMap;

use lintas_common::metadata::{UNAVAILABLE_DEPENDENCY_KEY, request_id, response_metadata};
use lintas_common::page_token::PageTokenCodec;
use lintas_proto::common::v1::health_check_response::ServingStatus;
use lintas_proto::common::v1::{HealthCheckRequest, HealthCheckResponse};
use lintas_proto::order::v1::order_service_server::OrderService;
use lintas_proto::order::v1::{
    CancelOrderRequest, CancelOrderResponse, CreateOrderRequest, CreateOrderResponse,
    CurrencyAmount, GetOrderMetricsRequest, GetOrderMetricsResponse, GetOrderRequest,
    GetOrderResponse, GetOrdersByUserRequest, GetOrdersByUserResponse, ListOrdersByUsersRequest,
    ListOrdersByUsersResponse, ListOrdersRequest, ListOrdersResponse, Order, OrderStatus,
    OrderStatusCount, ProcessPaymentRequest, ProcessPaymentResponse, UpdateOrderStatusRequest,
    UpdateOrderStatusResponse, UserOrders,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::business_metrics::BusinessMetrics;
use crate::lifecycle::status_name;
use crate::store::{Cursor, OrderStore, StoreError, Written};
use crate::users::{UserCheckError, UserDirectory};
use crate::validate::{self, OrderQuery, RequestedStatus, StatusChange};

const SERVICE_NAME: &str = "order.v1.OrderService";

/// Implementation of `order.v1.OrderService`.
#[derive(Clone)]
pub struct OrderApi {
    store: OrderStore,
    users: UserDirectory,
    page_tokens: PageTokenCodec,
    business: BusinessMetrics,
}

impl OrderApi {
    pub fn new(
        store: OrderStore,
        users: UserDirectory,
        page_tokens: PageTokenCodec,
        business: BusinessMetrics,
    ) -> Self {
        Self {
            store,
            users,
            page_tokens,
            business,
        }
    }

    /// Fetches one page of `query`, resuming after `page_token` when it is
    /// not empty, and returns the orders with the next page's token.
    async fn page(
        &self,
        rpc: &str,
        query: &OrderQuery,
        page_token: &str,
        request_id: &str,
    ) -> Result<(Vec<Order>, String), Status> {
        let fingerprint = query.fingerprint(rpc);
        let after: Option<Cursor> = match page_token {
            "" => None,
            token => Some(self.page_tokens.decode(&fingerprint, token)?),
        };
        let page = self
            .store
            .list(query, after.as_ref())
            .await
            .map_err(|error| status_from_store(error, request_id))?;
        let next_page_token = page
            .next
            .map(|cursor| self.page_tokens.encode(&fingerprint, &cursor))
            .unwrap_or_default();
        Ok((page.orders, next_page_token))
    }

    /// Applies a status change and logs it.
    async fn change_status(
        &self,
        id: Uuid,
        change: &StatusChange,
        request_id: &str,
    ) -> Result<Order, Status> {
        let order = self
            .store
            .change_status(id, change)
            .await
            .map_err(|error| status_from_store(error, request_id))?;
        self.business.status_changed(&order);
        tracing::info!(
            order_id = %order.id,
            status = status_name(order.status()),
            refunded = order.refunded,
            version = order.version,
            %request_id,
            "order status changed"
        );
        Ok(order)
    }

    /// Fails an `UpdateOrderStatus` to PENDING or PAID, which that RPC never
    /// applies, with the order's current status in the message.
    async fn reject_unreachable(&self, id: Uuid, target: OrderStatus, request_id: &str) -> Status {
        let order = match self.store.get(id).await {
            Ok(order) => order,
            Err(error) => return status_from_store(error, request_id),
        };
        let current = order.status();
        let message = if current == OrderStatus::Pending && target == OrderStatus::Paid {
            "order is PENDING, cannot move to PAID through UpdateOrderStatus, use ProcessPayment"
                .to_owned()
        } else {
            format!(
                "order is {}, cannot move to {}",
                status_name(current),
                status_name(target)
            )
        };
        Status::failed_precondition(message)
    }
}

#[tonic::async_trait]
impl OrderService for OrderApi {
    async fn get_order(
        &self,
        request: Request<GetOrderRequest>,
    ) -> Result<Response<GetOrderResponse>, Status> {
        let request_id = request_id(request.metadata());
        let id = validate::order_id("id", &request.get_ref().id)?;
        let order = self
            .store
            .get(id)
            .await
            .map_err(|error| status_from_store(error, &request_id))?;
        Ok(Response::new(GetOrderResponse {
            order: Some(order),
            metadata: response_metadata(&request_id),
        }))
    }

    async fn list_orders(
        &self,
        request: Request<ListOrdersRequest>,
    ) -> Result<Response<ListOrdersResponse>, Status> {
        let request_id = request_id(request.metadata());
        let request = request.get_ref();
        let query = validate::list_request(request)?;
        let (orders, next_page_token) = self
            .page("ListOrders", &query, &request.page_token, &request_id)
            .await?;
        Ok(Response::new(ListOrdersResponse {
            orders,
            next_page_token,
            metadata: response_metadata(&request_id),
        }))
    }

    async fn create_order(
        &self,
        request: Request<CreateOrderRequest>,
    ) -> Result<Response<CreateOrderResponse>, Status> {
        let request_id = request_id(request.metadata());
        let new_order = validate::create_request(request.get_ref())?;
        let key = validate::create_key(request.get_ref())?;

        // A retry whose key is already stored gets the stored response
        // without a call to the user service, which may be down or may have
        // suspended the user since the first call.
        if let Some(key) = &key {
            let replay: Option<CreateOrderResponse> = self
                .store
                .find_replay(key)
                .await
                .map_err(|error| status_from_store(error, &request_id))?;
            if let Some(response) = replay {
                return Ok(respond_create(Written::Replayed(response), &request_id));
            }
        }

        self.users
            .ensure_active(new_order.user_id, &request_id)
            .await
            .map_err(|error| status_from_user_check(error, &request_id))?;
        let written = self
            .store
            .create(&new_order, key.as_ref())
            .await
            .map_err(|error| status_from_store(error, &request_id))?;
        if !written.is_replay() {
            self.business.order_created();
        }
        Ok(respond_create(written, &request_id))
    }

    async fn update_order_status(
        &self,
        request: Request<UpdateOrderStatusRequest>,
    ) -> Result<Response<UpdateOrderStatusResponse>, Status> {
        let request_id = request_id(request.metadata());
        let (id, requested) = validate::update_status_request(request.get_ref())?;
        let order = match requested {
            RequestedStatus::Change(change) => self.change_status(id, &change, &request_id).await?,
            RequestedStatus::Unreachable(target) => {
                return Err(self.reject_unreachable(id, target, &request_id).await);
            }
        };
        Ok(Response::new(UpdateOrderStatusResponse {
            order: Some(order),
            metadata: response_metadata(&request_id),
        }))
    }

    async fn cancel_order(
        &self,
        request: Request<CancelOrderRequest>,
    ) -> Result<Response<CancelOrderResponse>, Status> {
        let request_id = request_id(request.metadata());
        let (id, change) = validate::cancel_request(request.get_ref())?;
        let order = self.change_status(id, &change, &request_id).await?;
        Ok(Response::new(CancelOrderResponse {
            order: Some(order),
            metadata: response_metadata(&request_id),
        }))
    }

    async fn get_orders_by_user(
        &self,
        request: Request<GetOrdersByUserRequest>,
    ) -> Result<Response<GetOrdersByUserResponse>, Status> {
        let request_id = request_id(request.metadata());
        let request = request.get_ref();
        let query = validate::by_user_request(request)?;
        let (orders, next_page_token) = self
            .page("GetOrdersByUser", &query, &request.page_token, &request_id)
            .await?;
        Ok(Response::new(GetOrdersByUserResponse {
            orders,
            next_page_token,
            metadata: response_metadata(&request_id),
        }))
    }

    async fn list_orders_by_users(
        &self,
        request: Request<ListOrdersByUsersRequest>,
    ) -> Result<Response<ListOrdersByUsersResponse>, Status> {
        let request_id = request_id(request.metadata());
        let query = validate::by_users_request(request.get_ref())?;
        let mut pages = self
            .store
            .newest_per_user(&query.user_ids, query.limit_per_user, query.omit_details)
            .await
            .map_err(|error| status_from_store(error, &request_id))?;
        let results = query
            .user_ids
            .iter()
            .map(|user_id| {
                let user_id = user_id.to_string();
                let page = pages.remove(&user_id).unwrap_or_default();
                UserOrders {
                    user_id,
                    orders: page.orders,
                    has_more: page.has_more,
                }
            })
            .collect();
        Ok(Response::new(ListOrdersByUsersResponse {
            results,
            metadata: response_metadata(&request_id),
        }))
    }

    async fn process_payment(
        &self,
        request: Request<ProcessPaymentRequest>,
    ) -> Result<Response<ProcessPaymentResponse>, Status> {
        let request_id = request_id(request.metadata());
        let input = validate::payment_request(request.get_ref())?;
        let key = validate::payment_key(request.get_ref())?;

        let written = self
            .store
            .record_payment(&input, key.as_ref())
            .await
            .map_err(|error| status_from_store(error, &request_id))?;
        let replayed = written.is_replay();
        let mut response = written.into_inner();
        if let (Some(order), Some(payment)) = (&response.order, &response.payment) {
            if !replayed {
                self.business.payment_recorded(payment);
                if payment.status() == lintas_proto::order::v1::PaymentStatus::Succeeded {
                    self.business.status_changed(order);
                }
            }
            tracing::info!(
                order_id = %order.id,
                payment_id = %payment.id,
                payment_status = payment.status().as_str_name(),
                status = status_name(order.status()),
                replayed,
                %request_id,
                "payment recorded"
            );
        }
        response.metadata = response_metadata(&request_id);
        Ok(Response::new(response))
    }

    /// Reports SERVING while the database responds. The user service's state
    /// is reported in `checks` but does not change the status, because
    /// every RPC except CreateOrder works without it.
    async fn health_check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let request_id = request_id(request.metadata());
        let (status, database) = match self.store.ping().await {
            Ok(()) => (ServingStatus::Serving, "ok".to_owned()),
            Err(error) => {
                tracing::warn!(
                    %error,
                    %request_id,
                    "health check failed: database did not respond"
                );
                (ServingStatus::NotServing, format!("failed: {error}"))
            }
        };
        let user_service = match self.users.health().await {
            Ok(()) => "ok".to_owned(),
            Err(error) => {
                tracing::warn!(%error, %request_id, "health check: user service is not serving");
                format!("failed: {error}")
            }
        };
        Ok(Response::new(HealthCheckResponse {
            status: status as i32,
            service: SERVICE_NAME.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            checks: HashMap::from([
                ("database".to_owned(), database),
                ("user_service".to_owned(), user_service),
            ]),
            metadata: response_metadata(&request_id),
        }))
    }

    async fn get_order_metrics(
        &self,
        request: Request<GetOrderMetricsRequest>,
    ) -> Result<Response<GetOrderMetricsResponse>, Status> {
        let request_id = request_id(request.metadata());
        let metrics = self
            .store
            .metrics()
            .await
            .map_err(|error| status_from_store(error, &request_id))?;
        Ok(Response::new(GetOrderMetricsResponse {
            total_orders: metrics.total,
            orders_by_status: metrics
                .by_status
                .into_iter()
                .map(|(status, count)| OrderStatusCount {
                    status: status as i32,
                    count,
                })
                .collect(),
            revenue_by_currency: metrics
                .revenue
                .into_iter()
                .map(|(currency, amount)| CurrencyAmount { currency, amount })
                .collect(),
            payments_succeeded: metrics.payments_succeeded,
            payments_failed: metrics.payments_failed,
            metadata: response_metadata(&request_id),
        }))
    }
}

/// Maps a store failure to the status returned to the caller. Database
/// failures are logged here, once, and reach the caller without internal
/// detail.
fn status_from_store(error: StoreError, request_id: &str) -> Status {
    match error {
        StoreError::NotFound(_) => Status::not_found(error.to_string()),
        StoreError::Transition(rejected) => Status::failed_precondition(rejected.to_string()),
        StoreError::AmountMismatch { expected, actual } => Status::invalid_argument(format!(
            "amount: must equal the order total {expected}, got {actual}"
        )),
        StoreError::CurrencyMismatch { expected, actual } => Status::invalid_argument(format!(
            "currency: must equal the order currency {expected}, got {actual}"
        )),
        StoreError::Conflict => Status::aborted("order was changed by a concurrent request, retry"),
        StoreError::IdempotencyMismatch => Status::failed_precondition(error.to_string()),
        StoreError::CorruptReplay(decode_error) => {
            tracing::error!(error = %decode_error, %request_id, "stored idempotent response could not be decoded");
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

/// Builds the CreateOrder response and logs the order, created now or by an
/// earlier call with the same idempotency key.
fn respond_create(
    written: Written<CreateOrderResponse>,
    request_id: &str,
) -> Response<CreateOrderResponse> {
    let replayed = written.is_replay();
    let mut response = written.into_inner();
    if let Some(order) = &response.order {
        tracing::info!(
            order_id = %order.id,
            user_id = %order.user_id,
            total = order.total,
            currency = %order.currency,
            replayed,
            %request_id,
            "order created"
        );
    }
    response.metadata = response_metadata(request_id);
    Response::new(response)
}

/// Maps a failed user check to the status returned to the caller. Timeouts
/// and other user-service failures are logged here, once.
fn status_from_user_check(error: UserCheckError, request_id: &str) -> Status {
    match error {
        UserCheckError::NotFound(_) | UserCheckError::Suspended(_) => {
            Status::failed_precondition(format!("user_id: {error}"))
        }
        UserCheckError::TimedOut(timeout) => {
            tracing::warn!(?timeout, %request_id, "user service timed out");
            users_unavailable(format!(
                "could not check user_id because the user service timed out after {timeout:?}, \
                 retry later"
            ))
        }
        UserCheckError::Unavailable(status) => {
            tracing::warn!(
                code = ?status.code(),
                error = status.message(),
                %request_id,
                "user service call failed"
            );
            users_unavailable(
                "could not check user_id because the user service is unavailable, retry later"
                    .to_owned(),
            )
        }
    }
}

/// UNAVAILABLE because the user service is, marked so that the gateway's
/// circuit for this service stays closed.
fn users_unavailable(message: String) -> Status {
    let mut status = Status::unavailable(message);
    status.metadata_mut().insert(
        UNAVAILABLE_DEPENDENCY_KEY,
        tonic::metadata::MetadataValue::from_static("user-svc"),
    );
    status
}
