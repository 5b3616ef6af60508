//! Backend operations behind both facades. REST handlers and GraphQL
//! resolvers call these, so a rule about how the gateway talks to a service
//! lives in one place.

use std::ops::Deref;
use std::str::FromStr;
use std::sync::Arc;

use lintas_proto::order::v1 as order_pb;
use lintas_proto::user::v1 as user_pb;

use crate::auth::Call;
use crate::auth::policy::{self, Action, authorize};
use crate::backend::Backends;
use crate::cache::UserCache;
use crate::error::ApiError;
use crate::inputs::{
    AddressInput, CreateOrderInput, CreateUserInput, OrderListParams, OrderOrderField,
    PaymentInput, UpdateUserInput, UserListParams, UserOrderField,
};
use crate::model::{Order, OrderMetrics, OrderStatus, Payment, SortDirection, User, UserMetrics};

/// A page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Empty on the last page.
    pub next_page_token: String,
}

/// Operations of the platform as the gateway exposes them. Cloning it
/// copies one pointer, which matters because axum clones every handler's
/// state for each request.
#[derive(Clone)]
pub struct Api(Arc<Parts>);

pub struct Parts {
    backends: Backends,
    /// Serves `get_user` and `batch_get_users`; kept coherent by
    /// `update_user` and `delete_user`.
    cache: UserCache,
}

impl Deref for Api {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

impl Api {
    pub fn new(backends: Backends, cache: UserCache) -> Self {
        Self(Arc::new(Parts { backends, cache }))
    }

    pub async fn get_user(&self, call: &Call, id: &str) -> Result<User, ApiError> {
        authorize(&call.caller, Action::ReadUser { id })?;
        let fetch = || async {
            let request = self.backends.request(
                "user.v1.UserService/GetUser",
                call,
                user_pb::GetUserRequest { id: id.to_owned() },
            );
            match self.backends.users.clone().get_user(request).await {
                Ok(response) => Ok(Some(response.into_inner().user.unwrap_or_default())),
                Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
                Err(status) => Err(ApiError::from(status)),
            }
        };
        match self.cache.get_user(id, fetch).await? {
            Some(user) => Ok(user.into()),
            // The user service's own message for a missing user.
            None => Err(ApiError::not_found("user not found")),
        }
    }

    /// Fetches many users in one call; ids that match no user are left out.
    pub async fn batch_get_users(
        &self,
        call: &Call,
        ids: Vec<String>,
    ) -> Result<Vec<User>, ApiError> {
        for id in &ids {
            authorize(&call.caller, Action::ReadUser { id })?;
        }
        let fetch = |ids| async {
            let request = self.backends.request(
                "user.v1.UserService/BatchGetUsers",
                call,
                user_pb::BatchGetUsersRequest { ids },
            );
            let response = self.backends.users.clone().batch_get_users(request).await?;
            Ok(response.into_inner().users)
        };
        let users = self.cache.get_users(ids, fetch).await?;
        Ok(users.into_iter().map(User::from).collect())
    }

    pub async fn list_users(
        &self,
        call: &Call,
        params: UserListParams,
    ) -> Result<Page<User>, ApiError> {
        authorize(&call.caller, Action::ListUsers)?;
        let field = match params.order_by {
            None => user_pb::UserOrderField::Unspecified,
            Some(UserOrderField::CreatedAt) => user_pb::UserOrderField::CreatedAt,
            Some(UserOrderField::Name) => user_pb::UserOrderField::Name,
            Some(UserOrderField::Email) => user_pb::UserOrderField::Email,
        };
        let message = user_pb::ListUsersRequest {
            page_size: params.page_size.unwrap_or(0),
            page_token: params.page_token.unwrap_or_default(),
            name_contains: params.name_contains.unwrap_or_default(),
            email_contains: params.email_contains.unwrap_or_default(),
            status: params.status.map_or(0, |status| status.to_proto() as i32),
            order_by: Some(user_pb::UserOrderBy {
                field: field as i32,
                direction: SortDirection::to_proto(params.direction),
            }),
        };
        check_page_size(message.page_size)?;
        let request = self
            .backends
            .request("user.v1.UserService/ListUsers", call, message);
        let response = self
            .backends
            .users
            .clone()
            .list_users(request)
            .await?
            .into_inner();
        Ok(Page {
            items: response.users.into_iter().map(User::from).collect(),
            next_page_token: response.next_page_token,
        })
    }

    pub async fn create_user(
        &self,
        call: &Call,
        input: CreateUserInput,
        idempotency_key: Option<String>,
    ) -> Result<User, ApiError> {
        authorize(&call.caller, Action::CreateUser)?;
        reject_empty_key(idempotency_key.as_deref())?;
        let retryable = idempotency_key.is_some();
        let mut request = self.backends.request(
            "user.v1.UserService/CreateUser",
            call,
            user_pb::CreateUserRequest {
                name: input.name,
                email: input.email,
                status: input.status.map_or(0, |status| status.to_proto() as i32),
                idempotency_key: idempotency_key.unwrap_or_default(),
            },
        );
        mark_retryable(&mut request, retryable);
        let response = self.backends.users.clone().create_user(request).await?;
        Ok(response.into_inner().user.unwrap_or_default().into())
    }

    pub async fn update_user(
        &self,
        call: &Call,
        id: &str,
        input: UpdateUserInput,
        expected_version: Option<i64>,
    ) -> Result<User, ApiError> {
        let changes_status = input.status.is_some();
        authorize(&call.caller, Action::UpdateUser { id, changes_status })?;
        let request = self.backends.request(
            "user.v1.UserService/UpdateUser",
            call,
            user_pb::UpdateUserRequest {
                id: id.to_owned(),
                name: input.name,
                email: input.email,
                status: input.status.map(|status| status.to_proto() as i32),
                expected_version,
            },
        );
        let user = match self.backends.users.clone().update_user(request).await {
            Ok(response) => response.into_inner().user.unwrap_or_default(),
            Err(status) => {
                let error = ApiError::from(status);
                self.cache.user_write_failed(id, &error).await;
                return Err(error);
            }
        };
        // Before responding, so that a read after this write sees it.
        self.cache.user_updated(&user).await;
        Ok(user.into())
    }

    /// Deletes a user who has no open order (PENDING, PAID or SHIPPED).
    ///
    /// NOTE: the open-order rule lives here because the user service owns no
    /// orders. A caller of the user service's gRPC API bypasses it, and an
    /// order placed between the check and the delete is not caught.
    pub async fn delete_user(
        &self,
        call: &Call,
        id: &str,
        expected_version: Option<i64>,
    ) -> Result<(), ApiError> {
        authorize(&call.caller, Action::DeleteUser)?;
        self.reject_open_orders(call, id).await?;
        let request = self.backends.request(
            "user.v1.UserService/DeleteUser",
            call,
            user_pb::DeleteUserRequest {
                id: id.to_owned(),
                expected_version,
            },
        );
        if let Err(status) = self.backends.users.clone().delete_user(request).await {
            let error = ApiError::from(status);
            self.cache.user_write_failed(id, &error).await;
            return Err(error);
        }
        self.cache.user_deleted(id).await;
        Ok(())
    }

    pub async fn user_metrics(&self, call: &Call) -> Result<UserMetrics, ApiError> {
        authorize(&call.caller, Action::ReadMetrics)?;
        let request = self.backends.request(
            "user.v1.UserService/GetUserMetrics",
            call,
            user_pb::GetUserMetricsRequest {},
        );
        let response = self
            .backends
            .users
            .clone()
            .get_user_metrics(request)
            .await?;
        Ok(response.into_inner().into())
    }

    pub async fn get_order(&self, call: &Call, id: &str) -> Result<Order, ApiError> {
        policy::require_identity(&call.caller)?;
        let order = self.fetch_order(call, id).await?;
        authorize(
            &call.caller,
            Action::ReadOrder {
                owner: &order.user_id,
            },
        )?;
        Ok(order)
    }

    /// Fetches an order without checking who may see it.
    async fn fetch_order(&self, call: &Call, id: &str) -> Result<Order, ApiError> {
        let request = self.backends.request(
            "order.v1.OrderService/GetOrder",
            call,
            order_pb::GetOrderRequest { id: id.to_owned() },
        );
        let response = self.backends.orders.clone().get_order(request).await?;
        Ok(response.into_inner().order.unwrap_or_default().into())
    }

    pub async fn list_orders(
        &self,
        call: &Call,
        params: OrderListParams,
    ) -> Result<Page<Order>, ApiError> {
        match params.user_id.as_deref() {
            Some(user_id) => authorize(&call.caller, Action::ReadOrdersOf { user_id })?,
            None => authorize(&call.caller, Action::ListAllOrders)?,
        }
        let field = match params.order_by {
            None => order_pb::OrderOrderField::Unspecified,
            Some(OrderOrderField::CreatedAt) => order_pb::OrderOrderField::CreatedAt,
            Some(OrderOrderField::Total) => order_pb::OrderOrderField::Total,
            Some(OrderOrderField::UpdatedAt) => order_pb::OrderOrderField::UpdatedAt,
        };
        let message = order_pb::ListOrdersRequest {
            page_size: params.page_size.unwrap_or(0),
            page_token: params.page_token.unwrap_or_default(),
            user_id: params.user_id.unwrap_or_default(),
            status: params.status.map_or(0, |status| status.to_proto() as i32),
            created_after: parse_instant("created_after", params.created_after.as_deref())?,
            created_before: parse_instant("created_before", params.created_before.as_deref())?,
            min_total: params.min_total.map(|total| total.0),
            order_by: Some(order_pb::OrderOrderBy {
                field: field as i32,
                direction: SortDirection::to_proto(params.direction),
            }),
        };
        check_page_size(message.page_size)?;
        let request = self
            .backends
            .request("order.v1.OrderService/ListOrders", call, message);
        let response = self
            .backends
            .orders
            .clone()
            .list_orders(request)
            .await?
            .into_inner();
        Ok(Page {
            items: response.orders.into_iter().map(Order::from).collect(),
            next_page_token: response.next_page_token,
        })
    }

    /// Lists a user's orders, newest first. Fails with NOT_FOUND when the
    /// user does not exist, also after it was deleted, rather than listing
    /// no orders.
    pub async fn orders_by_user(
        &self,
        call: &Call,
        user_id: &str,
        page_size: Option<i32>,
        page_token: Option<String>,
    ) -> Result<Page<Order>, ApiError> {
        authorize(&call.caller, Action::ReadOrdersOf { user_id })?;
        let message = order_pb::GetOrdersByUserRequest {
            user_id: user_id.to_owned(),
            page_size: page_size.unwrap_or(0),
            page_token: page_token.unwrap_or_default(),
        };
        check_page_size(message.page_size)?;
        let list = async {
            let request =
                self.backends
                    .request("order.v1.OrderService/GetOrdersByUser", call, message);
            self.backends
                .orders
                .clone()
                .get_orders_by_user(request)
                .await
                .map(tonic::Response::into_inner)
        };
        // Both calls at once; the user's error, if any, comes first.
        let (user, response) = tokio::join!(self.get_user(call, user_id), list);
        user?;
        let response = response?;
        Ok(Page {
            items: response.orders.into_iter().map(Order::from).collect(),
            next_page_token: response.next_page_token,
        })
    }

    pub async fn create_order(
        &self,
        call: &Call,
        input: CreateOrderInput,
        idempotency_key: Option<String>,
    ) -> Result<Order, ApiError> {
        authorize(
            &call.caller,
            Action::CreateOrder {
                owner: &input.user_id,
            },
        )?;
        reject_empty_key(idempotency_key.as_deref())?;
        let retryable = idempotency_key.is_some();
        let message = order_pb::CreateOrderRequest {
            user_id: input.user_id,
            items: input
                .items
                .into_iter()
                .map(|item| order_pb::OrderItem {
                    sku: item.sku,
                    quantity: item.quantity,
                    unit_price: item.unit_price.0,
                })
                .collect(),
            currency: input.currency,
            shipping_address: Some(address(input.shipping_address)),
            idempotency_key: idempotency_key.unwrap_or_default(),
        };
        let mut request = self
            .backends
            .request("order.v1.OrderService/CreateOrder", call, message);
        mark_retryable(&mut request, retryable);
        let response = self.backends.orders.clone().create_order(request).await?;
        Ok(response.into_inner().order.unwrap_or_default().into())
    }

    pub async fn update_order_status(
        &self,
        call: &Call,
        id: &str,
        status: OrderStatus,
    ) -> Result<Order, ApiError> {
        authorize(&call.caller, Action::ChangeOrderStatus)?;
        let request = self.backends.request(
            "order.v1.OrderService/UpdateOrderStatus",
            call,
            order_pb::UpdateOrderStatusRequest {
                id: id.to_owned(),
                status: status.to_proto() as i32,
            },
        );
        let response = self
            .backends
            .orders
            .clone()
            .update_order_status(request)
            .await?;
        Ok(response.into_inner().order.unwrap_or_default().into())
    }

    pub async fn cancel_order(
        &self,
        call: &Call,
        id: &str,
        reason: String,
    ) -> Result<Order, ApiError> {
        self.authorize_order(call, id, |owner| Action::CancelOrder { owner })
            .await?;
        let request = self.backends.request(
            "order.v1.OrderService/CancelOrder",
            call,
            order_pb::CancelOrderRequest {
                id: id.to_owned(),
                reason,
            },
        );
        let response = self.backends.orders.clone().cancel_order(request).await?;
        Ok(response.into_inner().order.unwrap_or_default().into())
    }

    pub async fn process_payment(
        &self,
        call: &Call,
        order_id: &str,
        input: PaymentInput,
        idempotency_key: Option<String>,
    ) -> Result<(Order, Payment), ApiError> {
        self.authorize_order(call, order_id, |owner| Action::PayOrder { owner })
            .await?;
        reject_empty_key(idempotency_key.as_deref())?;
        let retryable = idempotency_key.is_some();
        let mut request = self.backends.request(
            "order.v1.OrderService/ProcessPayment",
            call,
            order_pb::ProcessPaymentRequest {
                order_id: order_id.to_owned(),
                amount: input.amount.0,
                currency: input.currency,
                method: input.method.to_proto() as i32,
                payment_token: input.payment_token,
                idempotency_key: idempotency_key.unwrap_or_default(),
            },
        );
        mark_retryable(&mut request, retryable);
        let response = self
            .backends
            .orders
            .clone()
            .process_payment(request)
            .await?
            .into_inner();
        Ok((
            response.order.unwrap_or_default().into(),
            response.payment.unwrap_or_default().into(),
        ))
    }

    pub async fn order_metrics(&self, call: &Call) -> Result<OrderMetrics, ApiError> {
        authorize(&call.caller, Action::ReadMetrics)?;
        let request = self.backends.request(
            "order.v1.OrderService/GetOrderMetrics",
            call,
            order_pb::GetOrderMetricsRequest {},
        );
        let response = self
            .backends
            .orders
            .clone()
            .get_order_metrics(request)
            .await?;
        Ok(response.into_inner().into())
    }

    /// Fetches the newest `limit` orders of each user in one call.
    pub async fn orders_of_users(
        &self,
        call: &Call,
        user_ids: Vec<String>,
        limit: i32,
        with_details: bool,
    ) -> Result<Vec<(String, Vec<Order>)>, ApiError> {
        for user_id in &user_ids {
            authorize(&call.caller, Action::ReadOrdersOf { user_id })?;
        }
        let request = self.backends.request(
            "order.v1.OrderService/ListOrdersByUsers",
            call,
            order_pb::ListOrdersByUsersRequest {
                user_ids,
                limit_per_user: limit,
                omit_details: !with_details,
            },
        );
        let response = self
            .backends
            .orders
            .clone()
            .list_orders_by_users(request)
            .await?;
        Ok(response
            .into_inner()
            .results
            .into_iter()
            .map(|entry| {
                (
                    entry.user_id,
                    entry.orders.into_iter().map(Order::from).collect(),
                )
            })
            .collect())
    }
    /// Allows an action on an order to its owner: fetches the order to learn
    /// the owner, unless the caller may touch every order anyway.
    async fn authorize_order(
        &self,
        call: &Call,
        order_id: &str,
        action: impl FnOnce(&str) -> Action<'_>,
    ) -> Result<(), ApiError> {
        policy::require_identity(&call.caller)?;
        if call.caller.sees_everything() {
            return Ok(());
        }
        let order = self.fetch_order(call, order_id).await?;
        authorize(&call.caller, action(&order.user_id))
    }

    /// Fails with FAILED_PRECONDITION when the user has an open order.
    async fn reject_open_orders(&self, call: &Call, user_id: &str) -> Result<(), ApiError> {
        // An invalid id is left for the user service to reject by its own name.
        if uuid::Uuid::parse_str(user_id).is_err() {
            return Ok(());
        }
        for status in [
            OrderStatus::Pending,
            OrderStatus::Paid,
            OrderStatus::Shipped,
        ] {
            let params = OrderListParams {
                page_size: Some(1),
                user_id: Some(user_id.to_owned()),
                status: Some(status),
                ..Default::default()
            };
            if !self.list_orders(call, params).await?.items.is_empty() {
                return Err(ApiError::new(
                    axum::http::StatusCode::CONFLICT,
                    "FAILED_PRECONDITION",
                    "user has open orders (PENDING, PAID or SHIPPED), so it cannot be deleted: cancel or complete them first",
                ));
            }
        }
        Ok(())
    }
}

fn address(input: AddressInput) -> order_pb::Address {
    order_pb::Address {
        recipient: input.recipient,
        line1: input.line1,
        line2: input.line2,
        city: input.city,
        region: input.region,
        postal_code: input.postal_code,
        country: input.country,
    }
}

/// Rejects an out-of-range page size before any backend call. The services
/// apply the same rule; checking here too saves a round trip.
fn check_page_size(page_size: i32) -> Result<(), ApiError> {
    lintas_common::validation::page_size("page_size", page_size)
        .map(drop)
        .map_err(|violation| ApiError::invalid_argument(violation.to_string()))
}

fn parse_instant(
    field: &str,
    value: Option<&str>,
) -> Result<Option<prost_types::Timestamp>, ApiError> {
    value
        .map(|text| {
            prost_types::Timestamp::from_str(text).map_err(|_| {
                ApiError::invalid_argument(format!(
                    "{field}: not an RFC 3339 timestamp, for example 2026-01-31T12:00:00Z"
                ))
            })
        })
        .transpose()
}

/// Lets the backend layer retry a write that carries an idempotency key:
/// the service applies a repeated key once.
fn mark_retryable<T>(request: &mut tonic::Request<T>, has_idempotency_key: bool) {
    if has_idempotency_key {
        request
            .extensions_mut()
            .insert(crate::resilience::RetryableWrite);
    }
}

/// Rejects an idempotency key that was sent empty: the services read an
/// empty key as no key, so a retry would apply the write twice.
fn reject_empty_key(key: Option<&str>) -> Result<(), ApiError> {
    match key {
        Some(key) if key.trim().is_empty() => Err(ApiError::invalid_argument(
            "idempotency key: must not be empty; send 1 to 255 visible ASCII characters or no key",
        )),
        _ => Ok(()),
    }
}
