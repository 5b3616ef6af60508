//! GraphQL mutations: one per write the platform offers.

use async_graphql::{Context, ID, Object, Result, SimpleObject};

use super::{api, call};
use crate::error::ApiError;
use crate::inputs::{CreateOrderInput, CreateUserInput, PaymentInput, UpdateUserInput};
use crate::int64::Int64;
use crate::model::{Order, OrderStatus, Payment, User};

/// Outcome of a payment attempt. A declined charge is a FAILED payment and
/// leaves the order PENDING.
#[derive(SimpleObject)]
pub struct PaymentResult {
    pub order: Order,
    pub payment: Payment,
}

pub struct Mutation;

#[Object]
impl Mutation {
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        input: CreateUserInput,
        #[graphql(
            desc = "A retry with the same key and input returns the first user and creates nothing"
        )]
        idempotency_key: Option<String>,
    ) -> Result<User> {
        api(ctx)
            .create_user(call(ctx), input, idempotency_key)
            .await
            .map_err(ApiError::into_graphql)
    }

    /// Changes the fields that are set; at least one is required.
    async fn update_user(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateUserInput,
        #[graphql(
            desc = "Apply only while the user is at this version; otherwise fail with ABORTED"
        )]
        expected_version: Option<Int64>,
    ) -> Result<User> {
        let expected_version = expected_version.map(|version| version.0);
        api(ctx)
            .update_user(call(ctx), &id, input, expected_version)
            .await
            .map_err(ApiError::into_graphql)
    }

    /// Deletes a user who has no open order and returns the deleted id.
    async fn delete_user(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(
            desc = "Delete only while the user is at this version; otherwise fail with ABORTED"
        )]
        expected_version: Option<Int64>,
    ) -> Result<ID> {
        let expected_version = expected_version.map(|version| version.0);
        api(ctx)
            .delete_user(call(ctx), &id, expected_version)
            .await
            .map_err(ApiError::into_graphql)?;
        Ok(id)
    }

    async fn create_order(
        &self,
        ctx: &Context<'_>,
        input: CreateOrderInput,
        #[graphql(
            desc = "A retry with the same key and input returns the first order and creates nothing"
        )]
        idempotency_key: Option<String>,
    ) -> Result<Order> {
        api(ctx)
            .create_order(call(ctx), input, idempotency_key)
            .await
            .map_err(ApiError::into_graphql)
    }

    /// Moves an order to SHIPPED, DELIVERED or CANCELLED.
    async fn update_order_status(
        &self,
        ctx: &Context<'_>,
        id: ID,
        status: OrderStatus,
    ) -> Result<Order> {
        api(ctx)
            .update_order_status(call(ctx), &id, status)
            .await
            .map_err(ApiError::into_graphql)
    }

    /// Cancels a PENDING or PAID order; a PAID order is refunded.
    async fn cancel_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: Option<String>,
    ) -> Result<Order> {
        api(ctx)
            .cancel_order(call(ctx), &id, reason.unwrap_or_default())
            .await
            .map_err(ApiError::into_graphql)
    }

    async fn process_payment(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        input: PaymentInput,
        #[graphql(
            desc = "A retry with the same key and input returns the first result and charges nothing"
        )]
        idempotency_key: Option<String>,
    ) -> Result<PaymentResult> {
        let (order, payment) = api(ctx)
            .process_payment(call(ctx), &order_id, input, idempotency_key)
            .await
            .map_err(ApiError::into_graphql)?;
        Ok(PaymentResult { order, payment })
    }
}
