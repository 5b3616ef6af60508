//! Health reporting, GetOrderMetrics, and the request id on every response.

use std::collections::HashMap;

use lintas_common::metadata::REQUEST_ID_KEY;
use lintas_proto::common::v1::HealthCheckRequest;
use lintas_proto::common::v1::health_check_response::ServingStatus;
use lintas_proto::order::v1::{
    CancelOrderRequest, GetOrderMetricsRequest, GetOrderMetricsResponse, GetOrderRequest,
    GetOrdersByUserRequest, ListOrdersByUsersRequest, ListOrdersRequest, OrderStatus,
    UpdateOrderStatusRequest,
};
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus as GrpcServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::{
    DECLINED_TOKEN, GOOD_TOKEN, TestApp, closed_port_url, item, order_request, payment_for,
    spawn_app, spawn_app_with_user_service,
};

#[tokio::test]
async fn grpc_health_reports_serving() {
    let app = spawn_app().await;
    let channel = Channel::from_shared(format!("http://{}", app.order_address))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);

    let response = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "order.v1.OrderService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.status(), GrpcServingStatus::Serving);

    let unknown = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await;
    assert_eq!(unknown.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn health_check_reports_dependencies() {
    let mut app = spawn_app().await;

    let response = app
        .orders
        .health_check(HealthCheckRequest {})
        .await
        .unwrap()
        .into_inner();

    assert_eq!(response.status(), ServingStatus::Serving);
    assert_eq!(response.service, "order.v1.OrderService");
    assert!(!response.version.is_empty());
    assert_eq!(response.checks["database"], "ok");
    assert_eq!(response.checks["user_service"], "ok");
}

#[tokio::test]
async fn health_check_without_user_service_still_serves() {
    let mut app = spawn_app_with_user_service(closed_port_url().await).await;

    let response = app
        .orders
        .health_check(HealthCheckRequest {})
        .await
        .unwrap()
        .into_inner();

    assert_eq!(response.status(), ServingStatus::Serving);
    assert_eq!(response.checks["database"], "ok");
    assert!(
        response.checks["user_service"].starts_with("failed: "),
        "{:?}",
        response.checks
    );
}

async fn metrics(app: &mut TestApp) -> GetOrderMetricsResponse {
    app.orders
        .get_order_metrics(GetOrderMetricsRequest {})
        .await
        .unwrap()
        .into_inner()
}

fn counts_by_status(response: &GetOrderMetricsResponse) -> Vec<(OrderStatus, i64)> {
    response
        .orders_by_status
        .iter()
        .map(|entry| (entry.status(), entry.count))
        .collect()
}

fn revenue(response: &GetOrderMetricsResponse) -> HashMap<String, i64> {
    response
        .revenue_by_currency
        .iter()
        .map(|entry| (entry.currency.clone(), entry.amount))
        .collect()
}

#[tokio::test]
async fn metrics_start_at_zero() {
    let mut app = spawn_app().await;

    let response = metrics(&mut app).await;

    assert_eq!(response.total_orders, 0);
    assert_eq!(
        counts_by_status(&response),
        [
            (OrderStatus::Pending, 0),
            (OrderStatus::Paid, 0),
            (OrderStatus::Shipped, 0),
            (OrderStatus::Delivered, 0),
            (OrderStatus::Cancelled, 0),
        ]
    );
    assert!(response.revenue_by_currency.is_empty());
    assert_eq!(response.payments_succeeded, 0);
    assert_eq!(response.payments_failed, 0);
}

#[tokio::test]
async fn metrics_match_activity() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let usd_order = |total: i64| {
        let mut request = order_request(&user_id);
        request.currency = "USD".into();
        request.items = vec![item("USD-1", 1, total)];
        request
    };

    // Delivered, 5500 IDR of revenue, one succeeded payment.
    app.order_in_status(&user_id, OrderStatus::Delivered).await;
    // Declined once, then paid: 5500 IDR, one failed and one succeeded payment.
    let declined_then_paid = app.create_order(&user_id).await;
    app.pay(&declined_then_paid, DECLINED_TOKEN).await.unwrap();
    app.pay(&declined_then_paid, GOOD_TOKEN).await.unwrap();
    // Paid then cancelled: refunded, so no revenue; its charge still succeeded.
    let refunded = app.create_order_with(usd_order(1_234)).await;
    app.pay(&refunded, GOOD_TOKEN).await.unwrap();
    app.cancel(&refunded.id, "refund me").await.unwrap();
    // Shipped: 999 USD.
    let shipped = app.create_order_with(usd_order(999)).await;
    app.pay(&shipped, GOOD_TOKEN).await.unwrap();
    app.update_status(&shipped.id, OrderStatus::Shipped)
        .await
        .unwrap();
    // Cancelled while pending, and one left pending after a decline.
    let cancelled = app.create_order(&user_id).await;
    app.cancel(&cancelled.id, "").await.unwrap();
    let pending = app.create_order(&user_id).await;
    app.pay(&pending, DECLINED_TOKEN).await.unwrap();

    let response = metrics(&mut app).await;

    assert_eq!(response.total_orders, 6);
    assert_eq!(
        counts_by_status(&response),
        [
            (OrderStatus::Pending, 1),
            (OrderStatus::Paid, 1),
            (OrderStatus::Shipped, 1),
            (OrderStatus::Delivered, 1),
            (OrderStatus::Cancelled, 2),
        ]
    );
    assert_eq!(
        revenue(&response),
        HashMap::from([("IDR".to_owned(), 11_000), ("USD".to_owned(), 999)])
    );
    assert_eq!(response.payments_succeeded, 4);
    assert_eq!(response.payments_failed, 2);
}

#[tokio::test]
async fn revenue_saturates_instead_of_overflowing() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let mut request = order_request(&user_id);
    request.currency = "JPY".into();
    request.items = vec![item("BIG", 10_000, 1_000_000_000_000); 100];

    // Ten orders of 10^18 sum to 10^19, past i64::MAX.
    for count in 1..=10_i64 {
        let order = app.create_order_with(request.clone()).await;
        app.pay(&order, GOOD_TOKEN).await.unwrap();
        if count == 9 {
            let response = metrics(&mut app).await;
            assert_eq!(revenue(&response)["JPY"], 9_000_000_000_000_000_000);
        }
    }

    let response = metrics(&mut app).await;
    assert_eq!(revenue(&response)["JPY"], i64::MAX);
    assert_eq!(response.total_orders, 10);
}

#[tokio::test]
async fn every_response_carries_request_id() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let order = app.create_order(&user_id).await;

    fn tagged<T>(message: T, id: &str) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert(REQUEST_ID_KEY, id.parse().unwrap());
        request
    }

    let orders = &mut app.orders;
    let create = orders
        .create_order(tagged(order_request(&user_id), "id-create"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(create.metadata.unwrap().request_id, "id-create");
    let get = orders
        .get_order(tagged(
            GetOrderRequest {
                id: order.id.clone(),
            },
            "id-get",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(get.metadata.unwrap().request_id, "id-get");
    let list = orders
        .list_orders(tagged(ListOrdersRequest::default(), "id-list"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.metadata.unwrap().request_id, "id-list");
    let by_user = orders
        .get_orders_by_user(tagged(
            GetOrdersByUserRequest {
                user_id: user_id.clone(),
                ..Default::default()
            },
            "id-by-user",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_user.metadata.unwrap().request_id, "id-by-user");
    let by_users = orders
        .list_orders_by_users(tagged(
            ListOrdersByUsersRequest {
                user_ids: vec![user_id.clone()],
                limit_per_user: 1,
                ..Default::default()
            },
            "id-by-users",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_users.metadata.unwrap().request_id, "id-by-users");
    let pay = orders
        .process_payment(tagged(payment_for(&order, GOOD_TOKEN), "id-pay"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pay.metadata.unwrap().request_id, "id-pay");
    let update = orders
        .update_order_status(tagged(
            UpdateOrderStatusRequest {
                id: order.id.clone(),
                status: OrderStatus::Shipped as i32,
            },
            "id-update",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(update.metadata.unwrap().request_id, "id-update");
    let cancel = orders
        .cancel_order(tagged(
            CancelOrderRequest {
                id: create.order.unwrap().id,
                reason: String::new(),
            },
            "id-cancel",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancel.metadata.unwrap().request_id, "id-cancel");
    let health = orders
        .health_check(tagged(HealthCheckRequest {}, "id-health"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.metadata.unwrap().request_id, "id-health");
    let metrics = orders
        .get_order_metrics(tagged(GetOrderMetricsRequest {}, "id-metrics"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(metrics.metadata.unwrap().request_id, "id-metrics");

    // Without a caller id the service generates one.
    let generated = orders
        .get_order(GetOrderRequest {
            id: order.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(uuid::Uuid::parse_str(&generated.metadata.unwrap().request_id).is_ok());
}
