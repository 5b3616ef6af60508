//! CreateOrder and GetOrder: validation, the user check and its failures.

use std::time::{Duration, Instant};

use lintas_common::metadata::REQUEST_ID_KEY;
use lintas_proto::order::v1::{CreateOrderRequest, GetOrderRequest, OrderStatus};
use lintas_proto::user::v1::UserStatus;
use tokio::net::TcpListener;
use tonic::Code;

use crate::helpers::{
    USER_SERVICE_TIMEOUT, address, assert_rejected, closed_port_url, item, order_request,
    spawn_app, spawn_app_with_user_service,
};

#[tokio::test]
async fn create_order_stores_pending_order() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;

    let mut request = tonic::Request::new(order_request(&user_id));
    request
        .metadata_mut()
        .insert(REQUEST_ID_KEY, "create-order-1".parse().unwrap());
    let response = app.orders.create_order(request).await.unwrap().into_inner();
    let order = response.order.unwrap();

    assert_eq!(response.metadata.unwrap().request_id, "create-order-1");
    assert!(uuid::Uuid::parse_str(&order.id).is_ok());
    assert_eq!(order.user_id, user_id);
    assert_eq!(order.status(), OrderStatus::Pending);
    assert_eq!(order.total, 5_500);
    assert_eq!(order.currency, "IDR");
    assert_eq!(order.items, order_request(&user_id).items);
    assert_eq!(order.shipping_address, Some(address()));
    assert_eq!(order.version, 1);
    assert!(!order.refunded);
    assert!(order.payments.is_empty());
    assert_eq!(order.created_at, order.updated_at);

    let stored = app.get_order(&order.id).await;
    assert_eq!(stored, order);
}

#[tokio::test]
async fn create_order_trims_address_fields() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let mut request = order_request(&user_id);
    let shipping_address = request.shipping_address.as_mut().unwrap();
    shipping_address.city = "  Bandung  ".into();
    shipping_address.line2 = "   ".into();

    let order = app.create_order_with(request).await;

    let stored = order.shipping_address.unwrap();
    assert_eq!(stored.city, "Bandung");
    assert_eq!(stored.line2, "");
}

#[tokio::test]
async fn create_order_rejects_bad_input() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let valid = order_request(&user_id);

    type Change = fn(&mut CreateOrderRequest);
    let cases: Vec<(Change, &str)> = vec![
        (|r| r.user_id.clear(), "user_id: is required"),
        (|r| r.user_id = "42".into(), "user_id: not a valid UUID"),
        (|r| r.items.clear(), "items: at least one item is required"),
        (
            |r| r.items = vec![item("a", 1, 1); 101],
            "items: must have at most 100 items, got 101",
        ),
        (|r| r.items[1].sku.clear(), "items[1].sku: is required"),
        (
            |r| r.items[0].sku = "x".repeat(65),
            "items[0].sku: must have at most 64 characters, got 65",
        ),
        (
            |r| r.items[1].sku = "a/b".into(),
            "items[1].sku: contains '/'",
        ),
        (
            |r| r.items[1].quantity = 0,
            "items[1].quantity: must be between 1 and 10000, got 0",
        ),
        (
            |r| r.items[0].quantity = 10_001,
            "items[0].quantity: must be between 1 and 10000, got 10001",
        ),
        (
            |r| r.items[0].unit_price = -5,
            "items[0].unit_price: must be between 0 and 1000000000000, got -5",
        ),
        (
            |r| r.items[0].unit_price = 1_000_000_000_001,
            "items[0].unit_price: must be between 0 and 1000000000000",
        ),
        (|r| r.currency.clear(), "currency: is required"),
        (
            |r| r.currency = "idr".into(),
            "currency: must be upper case, use \"IDR\"",
        ),
        (
            |r| r.currency = "XYZ".into(),
            "currency: not an ISO 4217 code",
        ),
        (
            |r| r.currency = "XXX".into(),
            "currency: XXX has no minor unit",
        ),
        (
            |r| r.shipping_address = None,
            "shipping_address: is required",
        ),
        (
            |r| r.shipping_address.as_mut().unwrap().recipient.clear(),
            "shipping_address.recipient: is required",
        ),
        (
            |r| r.shipping_address.as_mut().unwrap().line1 = "\t ".into(),
            "shipping_address.line1: is required",
        ),
        (
            |r| r.shipping_address.as_mut().unwrap().city.clear(),
            "shipping_address.city: is required",
        ),
        (
            |r| r.shipping_address.as_mut().unwrap().postal_code.clear(),
            "shipping_address.postal_code: is required",
        ),
        (
            |r| r.shipping_address.as_mut().unwrap().region = "r".repeat(101),
            "shipping_address.region: must have at most 100 characters, got 101",
        ),
        (
            |r| r.shipping_address.as_mut().unwrap().recipient = "a\u{7}b".into(),
            "shipping_address.recipient: must not contain control characters",
        ),
        (
            |r| r.shipping_address.as_mut().unwrap().country.clear(),
            "shipping_address.country: is required",
        ),
        (
            |r| r.shipping_address.as_mut().unwrap().country = "id".into(),
            "shipping_address.country: must be upper case, use \"ID\"",
        ),
        (
            |r| r.shipping_address.as_mut().unwrap().country = "IDN".into(),
            "shipping_address.country: not an ISO 3166-1 alpha-2 code",
        ),
        (
            |r| r.shipping_address.as_mut().unwrap().country = "ZZ".into(),
            "shipping_address.country: not an ISO 3166-1 alpha-2 code",
        ),
    ];

    for (change, expected) in cases {
        let mut request = valid.clone();
        change(&mut request);
        let result = app.orders.create_order(request).await;
        assert_rejected(result, Code::InvalidArgument, expected);
    }
    assert!(
        app.all_orders().await.is_empty(),
        "a rejected order was stored"
    );
}

#[tokio::test]
async fn create_order_accepts_largest_order() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    let mut request = order_request(&user_id);
    request.items = vec![item(&"S".repeat(64), 10_000, 1_000_000_000_000); 100];

    let order = app.create_order_with(request).await;

    assert_eq!(order.total, 1_000_000_000_000_000_000);
    assert_eq!(app.get_order(&order.id).await.items.len(), 100);
}

#[tokio::test]
async fn create_order_rejects_missing_user() {
    let mut app = spawn_app().await;
    let missing = uuid::Uuid::now_v7().to_string();

    let result = app.orders.create_order(order_request(&missing)).await;

    assert_rejected(
        result,
        Code::FailedPrecondition,
        &format!("user_id: user {missing} not found"),
    );
    assert!(app.all_orders().await.is_empty());
}

#[tokio::test]
async fn create_order_rejects_suspended_user() {
    let mut app = spawn_app().await;
    let suspended = app.create_user_with_status(UserStatus::Suspended).await;

    let result = app.orders.create_order(order_request(&suspended)).await;

    assert_rejected(
        result,
        Code::FailedPrecondition,
        &format!("user_id: user {suspended} is suspended"),
    );
    assert!(app.all_orders().await.is_empty());
}

/// Checks that an UNAVAILABLE status names the user service as the cause,
/// so that the gateway does not count it against this service's circuit.
fn assert_dependency_unavailable<T>(result: &Result<T, tonic::Status>) {
    let Err(status) = result else {
        panic!("the call succeeded");
    };
    let dependency = status
        .metadata()
        .get(lintas_common::metadata::UNAVAILABLE_DEPENDENCY_KEY);
    assert_eq!(
        dependency.and_then(|value| value.to_str().ok()),
        Some("user-svc"),
        "{status:?}"
    );
}

#[tokio::test]
async fn create_order_with_user_service_down_is_unavailable() {
    let mut app = spawn_app_with_user_service(closed_port_url().await).await;
    let user_id = uuid::Uuid::now_v7().to_string();

    let started = Instant::now();
    let result = app.orders.create_order(order_request(&user_id)).await;
    let elapsed = started.elapsed();

    assert_dependency_unavailable(&result);
    assert_rejected(
        result,
        Code::Unavailable,
        "could not check user_id because the user service is unavailable",
    );
    assert!(
        elapsed < USER_SERVICE_TIMEOUT + Duration::from_secs(1),
        "took {elapsed:?}"
    );
    assert!(app.all_orders().await.is_empty());
}

#[tokio::test]
async fn create_order_with_silent_user_service_times_out() {
    // The kernel completes TCP handshakes into the backlog, but nothing ever
    // responds to the HTTP/2 handshake.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let mut app = spawn_app_with_user_service(url).await;
    let user_id = uuid::Uuid::now_v7().to_string();

    let started = Instant::now();
    let result = app.orders.create_order(order_request(&user_id)).await;
    let elapsed = started.elapsed();

    assert_dependency_unavailable(&result);
    assert_rejected(
        result,
        Code::Unavailable,
        "could not check user_id because the user service timed out after 1s",
    );
    assert!(elapsed >= USER_SERVICE_TIMEOUT / 2, "took {elapsed:?}");
    assert!(
        elapsed < USER_SERVICE_TIMEOUT + Duration::from_secs(2),
        "took {elapsed:?}"
    );
    assert!(app.all_orders().await.is_empty());
    drop(silent);
}

#[tokio::test]
async fn create_order_validates_before_user_lookup() {
    // With the user service down, a lookup would fail with UNAVAILABLE; the
    // INVALID_ARGUMENT shows validation ran first.
    let mut app = spawn_app_with_user_service(closed_port_url().await).await;
    let mut request = order_request(&uuid::Uuid::now_v7().to_string());
    request.items[0].quantity = 0;

    let result = app.orders.create_order(request).await;

    assert_rejected(result, Code::InvalidArgument, "items[0].quantity");
}

#[tokio::test]
async fn get_order_rejects_bad_and_unknown_ids() {
    let mut app = spawn_app().await;
    let unknown = uuid::Uuid::now_v7().to_string();

    let result = app
        .orders
        .get_order(GetOrderRequest { id: "nope".into() })
        .await;
    assert_rejected(result, Code::InvalidArgument, "id: not a valid UUID");

    let result = app
        .orders
        .get_order(GetOrderRequest { id: String::new() })
        .await;
    assert_rejected(result, Code::InvalidArgument, "id: is required");

    let result = app
        .orders
        .get_order(GetOrderRequest {
            id: unknown.clone(),
        })
        .await;
    assert_rejected(
        result,
        Code::NotFound,
        &format!("order {unknown} not found"),
    );
}
