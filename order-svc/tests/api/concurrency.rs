//! Concurrent transitions from one status: exactly one wins, the others are
//! rejected, and the order shows a single change.

use lintas_proto::order::v1::{Order, OrderStatus, PaymentStatus};
use tokio::task::JoinSet;
use tonic::{Code, Status};

use crate::helpers::{GOOD_TOKEN, TestApp, payment_for, spawn_app};

const CALLERS: usize = 20;

/// A transition that the racing callers request.
#[derive(Debug, Clone, Copy)]
enum Call {
    Pay,
    Ship,
    /// CancelOrder.
    Cancel,
    /// UpdateOrderStatus to CANCELLED.
    UpdateToCancelled,
}

/// Sends `calls` at once, each on its own client, and returns the results.
async fn race(app: &TestApp, order: &Order, calls: &[Call]) -> Vec<Result<Order, Status>> {
    let mut tasks = JoinSet::new();
    for call in calls.iter().copied() {
        let mut client = app.orders.clone();
        let order = order.clone();
        tasks.spawn(async move {
            match call {
                Call::Pay => client
                    .process_payment(payment_for(&order, GOOD_TOKEN))
                    .await
                    .map(|response| response.into_inner().order.unwrap()),
                Call::Ship => client
                    .update_order_status(lintas_proto::order::v1::UpdateOrderStatusRequest {
                        id: order.id.clone(),
                        status: OrderStatus::Shipped as i32,
                    })
                    .await
                    .map(|response| response.into_inner().order.unwrap()),
                Call::Cancel => client
                    .cancel_order(lintas_proto::order::v1::CancelOrderRequest {
                        id: order.id.clone(),
                        reason: "race".into(),
                    })
                    .await
                    .map(|response| response.into_inner().order.unwrap()),
                Call::UpdateToCancelled => client
                    .update_order_status(lintas_proto::order::v1::UpdateOrderStatusRequest {
                        id: order.id.clone(),
                        status: OrderStatus::Cancelled as i32,
                    })
                    .await
                    .map(|response| response.into_inner().order.unwrap()),
            }
        });
    }
    let mut results = Vec::with_capacity(calls.len());
    while let Some(joined) = tasks.join_next().await {
        results.push(joined.expect("caller task panicked"));
    }
    results
}

/// Asserts one success and only FAILED_PRECONDITION rejections, and
/// returns the winning order.
#[track_caller]
fn single_winner(results: Vec<Result<Order, Status>>) -> Order {
    let mut winners = Vec::new();
    for result in results {
        match result {
            Ok(order) => winners.push(order),
            Err(status) => assert_eq!(
                status.code(),
                Code::FailedPrecondition,
                "loser failed with {status:?}"
            ),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    winners.remove(0)
}

#[tokio::test]
async fn concurrent_payments_charge_once() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let order = app.create_order(&user_id).await;

    let results = race(&app, &order, &[Call::Pay; CALLERS]).await;

    let winner = single_winner(results);
    assert_eq!(winner.status(), OrderStatus::Paid);
    let stored = app.get_order(&order.id).await;
    assert_eq!(stored.version, 2);
    assert_eq!(stored.payments.len(), 1);
    assert_eq!(stored.payments[0].status(), PaymentStatus::Succeeded);
}

#[tokio::test]
async fn concurrent_shipments_apply_once() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let order = app.order_in_status(&user_id, OrderStatus::Paid).await;

    let results = race(&app, &order, &[Call::Ship; CALLERS]).await;

    let winner = single_winner(results);
    assert_eq!(winner.status(), OrderStatus::Shipped);
    assert_eq!(app.get_order(&order.id).await.version, order.version + 1);
}

#[tokio::test]
async fn concurrent_ship_and_cancel_apply_once() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let order = app.order_in_status(&user_id, OrderStatus::Paid).await;
    let calls: Vec<Call> = (0..CALLERS)
        .map(|index| {
            if index % 2 == 0 {
                Call::Ship
            } else {
                Call::Cancel
            }
        })
        .collect();

    let results = race(&app, &order, &calls).await;

    let winner = single_winner(results);
    let stored = app.get_order(&order.id).await;
    assert_eq!(stored, winner);
    assert_eq!(stored.version, order.version + 1);
    match stored.status() {
        OrderStatus::Shipped => {
            assert!(!stored.refunded);
            assert_eq!(stored.payments[0].status(), PaymentStatus::Succeeded);
        }
        OrderStatus::Cancelled => {
            assert!(stored.refunded);
            assert_eq!(stored.payments[0].status(), PaymentStatus::Refunded);
        }
        other => panic!("unexpected status {other:?}"),
    }
}

#[tokio::test]
async fn concurrent_pay_and_cancel_apply_once() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let order = app.create_order(&user_id).await;
    let calls: Vec<Call> = (0..CALLERS)
        .map(|index| {
            if index % 2 == 0 {
                Call::Pay
            } else {
                Call::Cancel
            }
        })
        .collect();

    let results = race(&app, &order, &calls).await;

    // A payment may win and then one cancel may refund it, so up to two
    // calls succeed; the final state must still be consistent.
    let successes = results.iter().filter(|result| result.is_ok()).count();
    for result in &results {
        if let Err(status) = result {
            assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        }
    }
    let stored = app.get_order(&order.id).await;
    assert_eq!(stored.version, 1 + successes as i64);
    match stored.status() {
        OrderStatus::Paid => {
            assert_eq!(successes, 1);
            assert_eq!(stored.payments.len(), 1);
        }
        OrderStatus::Cancelled if stored.refunded => {
            assert_eq!(successes, 2);
            assert_eq!(stored.payments.len(), 1);
            assert_eq!(stored.payments[0].status(), PaymentStatus::Refunded);
        }
        OrderStatus::Cancelled => {
            assert_eq!(successes, 1);
            assert!(stored.payments.is_empty());
        }
        other => panic!("unexpected status {other:?}"),
    }
}

#[tokio::test]
async fn concurrent_cancels_from_pending_apply_once() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let order = app.create_order(&user_id).await;
    let calls: Vec<Call> = (0..CALLERS)
        .map(|index| {
            if index % 2 == 0 {
                Call::Cancel
            } else {
                Call::UpdateToCancelled
            }
        })
        .collect();

    let results = race(&app, &order, &calls).await;

    let winner = single_winner(results);
    assert_eq!(winner.status(), OrderStatus::Cancelled);
    assert!(!winner.refunded);
    let stored = app.get_order(&order.id).await;
    assert_eq!(stored, winner);
    assert_eq!(stored.version, 2);
}

/// Races every kind of transition from PENDING. Paying, shipping and
/// cancelling can follow one another, so several calls may succeed, but each
/// success must start from the status the previous one left, and exactly
/// one may start from PENDING.
#[tokio::test]
async fn concurrent_mixed_transitions_form_one_path() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let order = app.create_order(&user_id).await;
    let kinds = [Call::Pay, Call::Cancel, Call::UpdateToCancelled, Call::Ship];
    let calls: Vec<Call> = (0..CALLERS)
        .map(|index| kinds[index % kinds.len()])
        .collect();

    let results = race(&app, &order, &calls).await;

    let mut winners = Vec::new();
    for result in results {
        match result {
            Ok(order) => winners.push(order),
            Err(status) => assert_eq!(
                status.code(),
                Code::FailedPrecondition,
                "loser failed with {status:?}"
            ),
        }
    }
    winners.sort_by_key(|order| order.version);
    let versions: Vec<i64> = winners.iter().map(|order| order.version).collect();
    let expected_versions: Vec<i64> = (2..2 + winners.len() as i64).collect();
    assert_eq!(versions, expected_versions, "winners: {winners:?}");

    let mut previous = OrderStatus::Pending;
    for winner in &winners {
        let allowed = matches!(
            (previous, winner.status()),
            (
                OrderStatus::Pending,
                OrderStatus::Paid | OrderStatus::Cancelled
            ) | (
                OrderStatus::Paid,
                OrderStatus::Shipped | OrderStatus::Cancelled
            )
        );
        assert!(
            allowed,
            "{previous:?} -> {:?} in {winners:?}",
            winner.status()
        );
        previous = winner.status();
    }

    let stored = app.get_order(&order.id).await;
    assert_eq!(Some(&stored), winners.last());
    let paid = winners
        .iter()
        .any(|winner| winner.status() == OrderStatus::Paid);
    assert_eq!(stored.payments.len(), usize::from(paid));
    let refunded = paid && stored.status() == OrderStatus::Cancelled;
    assert_eq!(stored.refunded, refunded);
    if refunded {
        assert_eq!(stored.payments[0].status(), PaymentStatus::Refunded);
    }
}
