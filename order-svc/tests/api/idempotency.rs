//! Idempotency keys on CreateOrder and ProcessPayment: retries replay the
//! first response and write nothing, reuse with another request is
//! rejected, and expired keys count as new.

use std::time::Duration;

use lintas_common::metadata::REQUEST_ID_KEY;
use lintas_proto::order::v1::{
    CreateOrderRequest, CreateOrderResponse, OrderStatus, PaymentStatus, ProcessPaymentRequest,
    ProcessPaymentResponse,
};
use lintas_proto::user::v1::UserStatus;
use tokio::task::JoinSet;
use tonic::Code;

use crate::helpers::{
    DECLINED_TOKEN, GOOD_TOKEN, TestApp, assert_rejected, item, order_request, payment_for,
    spawn_app, spawn_app_with,
};

const CALLERS: usize = 20;
const REUSED_KEY_MESSAGE: &str = "idempotency_key: already used for a different request";

fn keyed_order(user_id: &str, key: &str) -> CreateOrderRequest {
    CreateOrderRequest {
        idempotency_key: key.to_owned(),
        ..order_request(user_id)
    }
}

async fn create(app: &mut TestApp, request: CreateOrderRequest) -> CreateOrderResponse {
    app.orders
        .create_order(request)
        .await
        .expect("create order")
        .into_inner()
}

async fn pay(app: &mut TestApp, request: ProcessPaymentRequest) -> ProcessPaymentResponse {
    app.orders
        .process_payment(request)
        .await
        .expect("process payment")
        .into_inner()
}

#[tokio::test]
async fn create_retry_returns_first_order() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let first = create(&mut app, keyed_order(&user_id, "create-1")).await;

    let mut retry = tonic::Request::new(keyed_order(&user_id, "create-1"));
    retry
        .metadata_mut()
        .insert(REQUEST_ID_KEY, "create-retry".parse().unwrap());
    let second = app.orders.create_order(retry).await.unwrap().into_inner();

    assert_eq!(second.order, first.order);
    assert_eq!(second.metadata.unwrap().request_id, "create-retry");
    let stored = app.all_orders().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(Some(&stored[0]), first.order.as_ref());
}

#[tokio::test]
async fn create_retry_skips_user_check() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let first = create(&mut app, keyed_order(&user_id, "create-1")).await;
    app.set_user_status(&user_id, UserStatus::Suspended).await;

    // A new request is rejected, which shows the user service is asked...
    let result = app.orders.create_order(order_request(&user_id)).await;
    assert_rejected(result, Code::FailedPrecondition, "is suspended");
    // ...but the retry is answered from the stored key without asking it.
    let retry = create(&mut app, keyed_order(&user_id, "create-1")).await;

    assert_eq!(retry.order, first.order);
    assert_eq!(app.all_orders().await.len(), 1);
}

#[tokio::test]
async fn create_key_reuse_with_other_request_fails() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let first = create(&mut app, keyed_order(&user_id, "create-1")).await;

    let mut other = keyed_order(&user_id, "create-1");
    other.items = vec![item("OTHER-1", 1, 10)];
    let result = app.orders.create_order(other).await;

    assert_rejected(result, Code::FailedPrecondition, REUSED_KEY_MESSAGE);
    let stored = app.all_orders().await;
    assert_eq!(stored.len(), 1, "the rejected request was stored");
    assert_eq!(Some(&stored[0]), first.order.as_ref());
}

#[tokio::test]
async fn create_rejects_invalid_keys() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;

    for key in ["has space", "tab\tkey", &"k".repeat(256), "kunci-é"] {
        let result = app.orders.create_order(keyed_order(&user_id, key)).await;
        assert_rejected(result, Code::InvalidArgument, "idempotency_key: must be");
    }
    assert!(
        app.all_orders().await.is_empty(),
        "a rejected order was stored"
    );
}

#[tokio::test]
async fn expired_create_key_counts_as_new() {
    let mut app = spawn_app_with(|settings| {
        settings.idempotency_ttl = Duration::from_secs(1);
    })
    .await;
    let user_id = app.create_user().await;
    let first = create(&mut app, keyed_order(&user_id, "create-1")).await;
    let retry = create(&mut app, keyed_order(&user_id, "create-1")).await;
    assert_eq!(retry.order, first.order, "the key expired too early");

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let after_expiry = create(&mut app, keyed_order(&user_id, "create-1")).await;

    assert_ne!(after_expiry.order.unwrap().id, first.order.unwrap().id);
    assert_eq!(app.all_orders().await.len(), 2);
}

#[tokio::test]
async fn expired_key_allows_other_request() {
    let mut app = spawn_app_with(|settings| {
        settings.idempotency_ttl = Duration::ZERO;
    })
    .await;
    let user_id = app.create_user().await;
    create(&mut app, keyed_order(&user_id, "create-1")).await;

    let mut other = keyed_order(&user_id, "create-1");
    other.items = vec![item("OTHER-1", 1, 10)];
    let second = create(&mut app, other).await;

    assert_eq!(second.order.unwrap().total, 10);
    assert_eq!(app.all_orders().await.len(), 2);
}

#[tokio::test]
async fn payment_retry_replays_without_charging() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let order = app.create_order(&user_id).await;
    let request = ProcessPaymentRequest {
        idempotency_key: "pay-1".into(),
        ..payment_for(&order, GOOD_TOKEN)
    };
    let first = pay(&mut app, request.clone()).await;
    assert_eq!(first.order.as_ref().unwrap().status(), OrderStatus::Paid);

    let retry = pay(&mut app, request).await;

    assert_eq!(retry.order, first.order);
    assert_eq!(retry.payment, first.payment);
    let stored = app.get_order(&order.id).await;
    assert_eq!(stored.payments.len(), 1);
    assert_eq!(stored.version, 2);
}

#[tokio::test]
async fn declined_payment_replays_as_declined() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let order = app.create_order(&user_id).await;
    let declined = ProcessPaymentRequest {
        idempotency_key: "pay-1".into(),
        ..payment_for(&order, DECLINED_TOKEN)
    };
    let first = pay(&mut app, declined.clone()).await;
    assert_eq!(
        first.payment.as_ref().unwrap().status(),
        PaymentStatus::Failed
    );

    let retry = pay(&mut app, declined).await;
    assert_eq!(retry.order, first.order);
    assert_eq!(retry.payment, first.payment);
    assert_eq!(app.get_order(&order.id).await.payments.len(), 1);

    // A new attempt needs a new key.
    let second_attempt = ProcessPaymentRequest {
        idempotency_key: "pay-2".into(),
        ..payment_for(&order, GOOD_TOKEN)
    };
    let paid = pay(&mut app, second_attempt).await;
    assert_eq!(paid.order.unwrap().status(), OrderStatus::Paid);
    assert_eq!(app.get_order(&order.id).await.payments.len(), 2);
}

#[tokio::test]
async fn payment_key_reuse_with_other_request_fails() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let order = app.create_order(&user_id).await;
    let declined = ProcessPaymentRequest {
        idempotency_key: "pay-1".into(),
        ..payment_for(&order, DECLINED_TOKEN)
    };
    pay(&mut app, declined.clone()).await;
    let before = app.get_order(&order.id).await;

    let other_token = ProcessPaymentRequest {
        payment_token: GOOD_TOKEN.into(),
        ..declined.clone()
    };
    let result = app.orders.process_payment(other_token).await;
    assert_rejected(result, Code::FailedPrecondition, REUSED_KEY_MESSAGE);
    let other_order = app.create_order(&user_id).await;
    let other_order_payment = ProcessPaymentRequest {
        order_id: other_order.id.clone(),
        ..declined
    };
    let result = app.orders.process_payment(other_order_payment).await;
    assert_rejected(result, Code::FailedPrecondition, REUSED_KEY_MESSAGE);

    assert_eq!(app.get_order(&order.id).await, before);
    assert_eq!(app.get_order(&other_order.id).await, other_order);
}

#[tokio::test]
async fn rpcs_have_separate_key_scopes() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let created = create(&mut app, keyed_order(&user_id, "shared-key")).await;
    let order = created.order.unwrap();

    let paid = pay(
        &mut app,
        ProcessPaymentRequest {
            idempotency_key: "shared-key".into(),
            ..payment_for(&order, GOOD_TOKEN)
        },
    )
    .await;

    assert_eq!(paid.order.unwrap().status(), OrderStatus::Paid);
}

#[tokio::test]
async fn concurrent_keyed_payments_charge_once() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let order = app.create_order(&user_id).await;
    let request = ProcessPaymentRequest {
        idempotency_key: "pay-once".into(),
        ..payment_for(&order, GOOD_TOKEN)
    };

    let mut tasks = JoinSet::new();
    for _ in 0..CALLERS {
        let mut client = app.orders.clone();
        let request = request.clone();
        tasks.spawn(async move { client.process_payment(request).await });
    }
    let mut responses = Vec::with_capacity(CALLERS);
    while let Some(joined) = tasks.join_next().await {
        let response = joined.expect("caller task panicked").expect("payment");
        responses.push(response.into_inner());
    }

    let first = &responses[0];
    for response in &responses {
        assert_eq!(response.order, first.order);
        assert_eq!(response.payment, first.payment);
    }
    let stored = app.get_order(&order.id).await;
    assert_eq!(stored.status(), OrderStatus::Paid);
    assert_eq!(stored.version, 2);
    assert_eq!(stored.payments.len(), 1);
    assert_eq!(Some(&stored.payments[0]), first.payment.as_ref());
}

#[tokio::test]
async fn concurrent_keyed_creates_create_once() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let request = keyed_order(&user_id, "create-once");

    let mut tasks = JoinSet::new();
    for _ in 0..CALLERS {
        let mut client = app.orders.clone();
        let request = request.clone();
        tasks.spawn(async move { client.create_order(request).await });
    }
    let mut orders = Vec::with_capacity(CALLERS);
    while let Some(joined) = tasks.join_next().await {
        let response = joined.expect("caller task panicked").expect("create order");
        orders.push(response.into_inner().order.unwrap());
    }

    for order in &orders {
        assert_eq!(order, &orders[0]);
    }
    assert_eq!(app.all_orders().await, vec![orders[0].clone()]);
}
