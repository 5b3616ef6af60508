//! ProcessPayment: declines, success, and rejected requests.

use lintas_proto::order::v1::{OrderStatus, PaymentMethod, PaymentStatus, ProcessPaymentRequest};
use tonic::Code;

use crate::helpers::{
    DECLINED_TOKEN, GOOD_TOKEN, assert_rejected, order_request, payment_for, spawn_app,
};

#[tokio::test]
async fn declined_payment_then_succeeded_payment() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let order = app.create_order(&user_id).await;

    let declined = app.pay(&order, DECLINED_TOKEN).await.unwrap();
    let declined_payment = declined.payment.unwrap();
    let after_decline = declined.order.unwrap();
    assert_eq!(declined_payment.status(), PaymentStatus::Failed);
    assert_eq!(
        declined_payment.failure_reason,
        "declined by the test payment provider"
    );
    assert_eq!(declined_payment.amount, 5_500);
    assert_eq!(declined_payment.currency, "IDR");
    assert_eq!(declined_payment.method(), PaymentMethod::Card);
    assert_eq!(after_decline.status(), OrderStatus::Pending);
    assert_eq!(after_decline.version, 2);
    assert_eq!(after_decline.payments, vec![declined_payment.clone()]);

    let mut request = payment_for(&order, GOOD_TOKEN);
    request.method = PaymentMethod::Wallet as i32;
    let succeeded = app
        .orders
        .process_payment(request)
        .await
        .unwrap()
        .into_inner();
    let payment = succeeded.payment.unwrap();
    let paid = succeeded.order.unwrap();
    assert_eq!(payment.status(), PaymentStatus::Succeeded);
    assert_eq!(payment.failure_reason, "");
    assert_eq!(payment.method(), PaymentMethod::Wallet);
    assert_eq!(paid.status(), OrderStatus::Paid);
    assert_eq!(paid.version, 3);
    assert_eq!(paid.payments, vec![declined_payment, payment]);

    assert_eq!(app.get_order(&order.id).await, paid);
}

#[tokio::test]
async fn free_order_can_be_paid() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let mut request = order_request(&user_id);
    request.items = vec![crate::helpers::item("FREE-1", 3, 0)];
    let order = app.create_order_with(request).await;
    assert_eq!(order.total, 0);

    let response = app.pay(&order, GOOD_TOKEN).await.unwrap();

    assert_eq!(response.order.unwrap().status(), OrderStatus::Paid);
}

#[tokio::test]
async fn payment_rejects_bad_input() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let order = app.create_order(&user_id).await;
    let valid = payment_for(&order, GOOD_TOKEN);
    let unknown = uuid::Uuid::now_v7().to_string();

    let cases: Vec<(ProcessPaymentRequest, Code, String)> = vec![
        (
            ProcessPaymentRequest {
                order_id: "x".into(),
                ..valid.clone()
            },
            Code::InvalidArgument,
            "order_id: not a valid UUID".into(),
        ),
        (
            ProcessPaymentRequest {
                amount: 5_499,
                ..valid.clone()
            },
            Code::InvalidArgument,
            "amount: must equal the order total 5500, got 5499".into(),
        ),
        (
            ProcessPaymentRequest {
                amount: -1,
                ..valid.clone()
            },
            Code::InvalidArgument,
            "amount: must be at least 0, got -1".into(),
        ),
        (
            ProcessPaymentRequest {
                currency: "USD".into(),
                ..valid.clone()
            },
            Code::InvalidArgument,
            "currency: must equal the order currency IDR, got USD".into(),
        ),
        (
            ProcessPaymentRequest {
                currency: "idr".into(),
                ..valid.clone()
            },
            Code::InvalidArgument,
            "currency: must be upper case, use \"IDR\"".into(),
        ),
        (
            ProcessPaymentRequest {
                method: PaymentMethod::Unspecified as i32,
                ..valid.clone()
            },
            Code::InvalidArgument,
            "method: is required".into(),
        ),
        (
            ProcessPaymentRequest {
                method: 12,
                ..valid.clone()
            },
            Code::InvalidArgument,
            "method: unknown payment method 12".into(),
        ),
        (
            ProcessPaymentRequest {
                payment_token: String::new(),
                ..valid.clone()
            },
            Code::InvalidArgument,
            "payment_token: is required".into(),
        ),
        (
            ProcessPaymentRequest {
                payment_token: "t".repeat(201),
                ..valid.clone()
            },
            Code::InvalidArgument,
            "payment_token: must have at most 200 characters, got 201".into(),
        ),
        (
            ProcessPaymentRequest {
                order_id: unknown.clone(),
                ..valid.clone()
            },
            Code::NotFound,
            format!("order {unknown} not found"),
        ),
    ];

    for (request, code, expected) in cases {
        let result = app.orders.process_payment(request).await;
        assert_rejected(result, code, &expected);
    }
    // A declined token with a wrong amount is rejected too, not recorded.
    let mut declined_wrong_amount = payment_for(&order, DECLINED_TOKEN);
    declined_wrong_amount.amount += 1;
    let result = app.orders.process_payment(declined_wrong_amount).await;
    assert_rejected(
        result,
        Code::InvalidArgument,
        "amount: must equal the order total",
    );

    assert_eq!(
        app.get_order(&order.id).await,
        order,
        "a rejected payment changed the order"
    );
}

#[tokio::test]
async fn payment_accepts_longest_token() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let order = app.create_order(&user_id).await;

    let response = app.pay(&order, &"t".repeat(200)).await.unwrap();

    assert_eq!(response.payment.unwrap().status(), PaymentStatus::Succeeded);
}
