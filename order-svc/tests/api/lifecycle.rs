//! UpdateOrderStatus and CancelOrder: the whole lifecycle, every allowed and
//! rejected transition, and refunds.

use lintas_proto::order::v1::{Order, OrderStatus, PaymentStatus, UpdateOrderStatusRequest};
use tonic::{Code, Status};

use crate::helpers::{GOOD_TOKEN, TestApp, assert_rejected, micros, spawn_app};

use OrderStatus::{Cancelled, Delivered, Paid, Pending, Shipped};

/// A status-changing call a test can make.
#[derive(Debug, Clone, Copy)]
enum Action {
    UpdateTo(OrderStatus),
    CancelOrder,
    ProcessPayment,
}

impl Action {
    fn target(self) -> OrderStatus {
        match self {
            Action::UpdateTo(status) => status,
            Action::CancelOrder => Cancelled,
            Action::ProcessPayment => Paid,
        }
    }

    async fn apply(self, app: &mut TestApp, order: &Order) -> Result<Order, Status> {
        match self {
            Action::UpdateTo(status) => app.update_status(&order.id, status).await,
            Action::CancelOrder => app.cancel(&order.id, "changed my mind").await,
            Action::ProcessPayment => app
                .pay(order, GOOD_TOKEN)
                .await
                .map(|response| response.order.unwrap()),
        }
    }
}

fn name(status: OrderStatus) -> &'static str {
    status.as_str_name().strip_prefix("ORDER_STATUS_").unwrap()
}

#[tokio::test]
async fn order_moves_through_whole_lifecycle() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let created = app.create_order(&user_id).await;

    let paid = app.pay(&created, GOOD_TOKEN).await.unwrap();
    let paid_order = paid.order.unwrap();
    assert_eq!(paid_order.status(), Paid);
    assert_eq!(paid_order.version, 2);
    assert_eq!(
        paid.payment.as_ref().unwrap().status(),
        PaymentStatus::Succeeded
    );
    assert_eq!(paid_order.payments, vec![paid.payment.unwrap()]);

    let shipped = app.update_status(&created.id, Shipped).await.unwrap();
    assert_eq!(shipped.status(), Shipped);
    assert_eq!(shipped.version, 3);

    let delivered = app.update_status(&created.id, Delivered).await.unwrap();
    assert_eq!(delivered.status(), Delivered);
    assert_eq!(delivered.version, 4);
    assert!(!delivered.refunded);
    assert_eq!(delivered.created_at, created.created_at);
    assert!(micros(&delivered.updated_at) >= micros(&shipped.updated_at));
    assert!(micros(&shipped.updated_at) >= micros(&paid_order.updated_at));
    assert!(micros(&paid_order.updated_at) >= micros(&created.updated_at));

    assert_eq!(app.get_order(&created.id).await, delivered);
}

#[tokio::test]
async fn transitions_follow_state_machine() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;

    // (start, action, status after success or None when rejected)
    let table: Vec<(OrderStatus, Action, Option<OrderStatus>)> = vec![
        (Pending, Action::UpdateTo(Pending), None),
        (Pending, Action::UpdateTo(Paid), None),
        (Pending, Action::UpdateTo(Shipped), None),
        (Pending, Action::UpdateTo(Delivered), None),
        (Pending, Action::UpdateTo(Cancelled), Some(Cancelled)),
        (Pending, Action::CancelOrder, Some(Cancelled)),
        (Pending, Action::ProcessPayment, Some(Paid)),
        (Paid, Action::UpdateTo(Pending), None),
        (Paid, Action::UpdateTo(Paid), None),
        (Paid, Action::UpdateTo(Shipped), Some(Shipped)),
        (Paid, Action::UpdateTo(Delivered), None),
        (Paid, Action::UpdateTo(Cancelled), Some(Cancelled)),
        (Paid, Action::CancelOrder, Some(Cancelled)),
        (Paid, Action::ProcessPayment, None),
        (Shipped, Action::UpdateTo(Pending), None),
        (Shipped, Action::UpdateTo(Paid), None),
        (Shipped, Action::UpdateTo(Shipped), None),
        (Shipped, Action::UpdateTo(Delivered), Some(Delivered)),
        (Shipped, Action::UpdateTo(Cancelled), None),
        (Shipped, Action::CancelOrder, None),
        (Shipped, Action::ProcessPayment, None),
        (Delivered, Action::UpdateTo(Pending), None),
        (Delivered, Action::UpdateTo(Paid), None),
        (Delivered, Action::UpdateTo(Shipped), None),
        (Delivered, Action::UpdateTo(Delivered), None),
        (Delivered, Action::UpdateTo(Cancelled), None),
        (Delivered, Action::CancelOrder, None),
        (Delivered, Action::ProcessPayment, None),
        (Cancelled, Action::UpdateTo(Pending), None),
        (Cancelled, Action::UpdateTo(Paid), None),
        (Cancelled, Action::UpdateTo(Shipped), None),
        (Cancelled, Action::UpdateTo(Delivered), None),
        (Cancelled, Action::UpdateTo(Cancelled), None),
        (Cancelled, Action::CancelOrder, None),
        (Cancelled, Action::ProcessPayment, None),
    ];

    for (start, action, expected) in table {
        let before = app.order_in_status(&user_id, start).await;
        let result = action.apply(&mut app, &before).await;
        let case = format!("{action:?} from {}", name(start));

        match expected {
            Some(status) => {
                let after = result.unwrap_or_else(|error| panic!("{case}: {error:?}"));
                assert_eq!(after.status(), status, "{case}");
                assert_eq!(after.version, before.version + 1, "{case}");
                assert!(
                    micros(&after.updated_at) >= micros(&before.updated_at),
                    "{case}"
                );
            }
            None => {
                let error = result.expect_err(&case);
                let expected_message =
                    if start == Pending && matches!(action, Action::UpdateTo(Paid)) {
                        concat!(
                            "order is PENDING, cannot move to PAID through UpdateOrderStatus, ",
                            "use ProcessPayment"
                        )
                        .to_owned()
                    } else {
                        format!(
                            "order is {}, cannot move to {}",
                            name(start),
                            name(action.target())
                        )
                    };
                assert_eq!(error.code(), Code::FailedPrecondition, "{case}");
                assert_eq!(error.message(), expected_message, "{case}");
                assert_eq!(
                    app.get_order(&before.id).await,
                    before,
                    "{case} changed the order"
                );
            }
        }
    }
}

#[tokio::test]
async fn cancelling_paid_order_refunds_payment() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let paid = app.order_in_status(&user_id, Paid).await;

    let cancelled = app.cancel(&paid.id, "out of stock").await.unwrap();

    assert_eq!(cancelled.status(), Cancelled);
    assert!(cancelled.refunded);
    assert_eq!(cancelled.cancel_reason, "out of stock");
    assert_eq!(cancelled.version, paid.version + 1);
    assert_eq!(cancelled.payments.len(), 1);
    assert_eq!(cancelled.payments[0].status(), PaymentStatus::Refunded);
    assert_eq!(cancelled.payments[0].id, paid.payments[0].id);
    assert_eq!(app.get_order(&paid.id).await, cancelled);
}

#[tokio::test]
async fn cancelling_paid_order_through_update_refunds() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let paid = app.order_in_status(&user_id, Paid).await;

    let cancelled = app.update_status(&paid.id, Cancelled).await.unwrap();

    assert!(cancelled.refunded);
    assert_eq!(cancelled.cancel_reason, "");
    assert_eq!(cancelled.payments[0].status(), PaymentStatus::Refunded);
}

#[tokio::test]
async fn cancelling_pending_order_keeps_failed_payments() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let order = app.create_order(&user_id).await;
    app.pay(&order, crate::helpers::DECLINED_TOKEN)
        .await
        .unwrap();

    let cancelled = app.cancel(&order.id, "  too slow  ").await.unwrap();

    assert_eq!(cancelled.status(), Cancelled);
    assert!(!cancelled.refunded);
    assert_eq!(cancelled.cancel_reason, "too slow");
    assert_eq!(cancelled.payments.len(), 1);
    assert_eq!(cancelled.payments[0].status(), PaymentStatus::Failed);
}

#[tokio::test]
async fn status_requests_reject_bad_input() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let order = app.create_order(&user_id).await;
    let unknown = uuid::Uuid::now_v7().to_string();

    let result = app
        .orders
        .update_order_status(UpdateOrderStatusRequest {
            id: order.id.clone(),
            status: OrderStatus::Unspecified as i32,
        })
        .await;
    assert_rejected(
        result,
        Code::InvalidArgument,
        "status: is required, one of SHIPPED, DELIVERED or CANCELLED",
    );

    let result = app
        .orders
        .update_order_status(UpdateOrderStatusRequest {
            id: order.id.clone(),
            status: 99,
        })
        .await;
    assert_rejected(
        result,
        Code::InvalidArgument,
        "status: unknown order status 99",
    );

    let result = app.update_status("not-a-uuid", Shipped).await;
    assert_rejected(result, Code::InvalidArgument, "id: not a valid UUID");

    let result = app.update_status(&unknown, Shipped).await;
    assert_rejected(
        result,
        Code::NotFound,
        &format!("order {unknown} not found"),
    );

    let result = app.update_status(&unknown, Paid).await;
    assert_rejected(
        result,
        Code::NotFound,
        &format!("order {unknown} not found"),
    );

    let result = app.cancel(&unknown, "").await;
    assert_rejected(
        result,
        Code::NotFound,
        &format!("order {unknown} not found"),
    );

    let result = app.cancel(&order.id, &"r".repeat(501)).await;
    assert_rejected(
        result,
        Code::InvalidArgument,
        "reason: must have at most 500 characters, got 501",
    );

    let result = app.cancel(&order.id, "bad\u{0}reason").await;
    assert_rejected(
        result,
        Code::InvalidArgument,
        "reason: must not contain control characters",
    );

    assert_eq!(
        app.get_order(&order.id).await,
        order,
        "a rejected request changed the order"
    );
}
