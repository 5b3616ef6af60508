//! Starts a real user service and a real order service on loopback ports,
//! each with a fresh database on the backend that `LINTAS_TEST_BACKEND`
//! selects, and offers typed request helpers.

use std::net::SocketAddr;
use std::time::Duration;

use lintas_common::testing::fresh_database_url;
use lintas_proto::order::v1::order_service_client::OrderServiceClient;
use lintas_proto::order::v1::{
    Address, CancelOrderRequest, CreateOrderRequest, GetOrderRequest, ListOrdersRequest, Order,
    OrderItem, OrderStatus, PaymentMethod, ProcessPaymentRequest, ProcessPaymentResponse,
    UpdateOrderStatusRequest,
};
use lintas_proto::user::v1::user_service_client::UserServiceClient;
use lintas_proto::user::v1::{CreateUserRequest, UpdateUserRequest, UserStatus};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Bound on one user-service call in the tests; short, so the timeout
/// tests finish quickly.
pub const USER_SERVICE_TIMEOUT: Duration = Duration::from_millis(1_000);

/// Token that the built-in test provider accepts.
pub const GOOD_TOKEN: &str = "tok_visa";
/// Token that the built-in test provider declines.
pub const DECLINED_TOKEN: &str = "tok_decline_insufficient_funds";

/// A running order service, with the user service it talks to when there
/// is one. Dropping it stops both servers and deletes their databases.
pub struct TestApp {
    pub orders: OrderServiceClient<Channel>,
    pub order_address: SocketAddr,
    users: Option<UserServiceClient<Channel>>,
    _stop: Vec<oneshot::Sender<()>>,
    _dir: TempDir,
}

/// Starts a user service and an order service that uses it.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a user service and an order service that uses it, with the
/// order service's settings changed by `configure`.
pub async fn spawn_app_with(configure: impl FnOnce(&mut order_svc::Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (user_address, user_stop) = start_user_service(&dir).await;
    let mut settings = order_settings(&dir, format!("http://{user_address}")).await;
    configure(&mut settings);
    let (order_address, order_stop) = start_order_service(settings).await;
    let users = UserServiceClient::connect(format!("http://{user_address}"))
        .await
        .expect("connect to user service");
    TestApp {
        orders: connect_orders(order_address).await,
        order_address,
        users: Some(users),
        _stop: vec![user_stop, order_stop],
        _dir: dir,
    }
}

/// Starts an order service whose user service is at `user_service_url`,
/// which the test controls (a closed port or a silent listener).
pub async fn spawn_app_with_user_service(user_service_url: String) -> TestApp {
    let dir = tempfile::tempdir().expect("temporary directory");
    let settings = order_settings(&dir, user_service_url).await;
    let (order_address, order_stop) = start_order_service(settings).await;
    TestApp {
        orders: connect_orders(order_address).await,
        order_address,
        users: None,
        _stop: vec![order_stop],
        _dir: dir,
    }
}

/// Returns a loopback URL on which nothing listens: the port was bound and
/// released, so connecting is refused.
pub async fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}")
}

async fn start_user_service(dir: &TempDir) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let settings = user_svc::Settings::new(fresh_database_url(dir.path(), "users").await);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        user_svc::serve(listener, settings, shutdown)
            .await
            .expect("user service failed");
    });
    (address, stop)
}

async fn order_settings(dir: &TempDir, user_service_url: String) -> order_svc::Settings {
    let database_url = fresh_database_url(dir.path(), "orders").await;
    order_svc::Settings {
        page_token_secret: Some("order-test-secret".to_owned()),
        user_service_timeout: USER_SERVICE_TIMEOUT,
        ..order_svc::Settings::new(database_url, user_service_url)
    }
}

async fn start_order_service(settings: order_svc::Settings) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        order_svc::serve(listener, settings, shutdown)
            .await
            .expect("order service failed");
    });
    (address, stop)
}

async fn connect_orders(address: SocketAddr) -> OrderServiceClient<Channel> {
    OrderServiceClient::connect(format!("http://{address}"))
        .await
        .expect("connect to order service")
}

impl TestApp {
    fn users(&mut self) -> &mut UserServiceClient<Channel> {
        self.users
            .as_mut()
            .expect("this app was started without a user service")
    }

    /// Creates an active user and returns its id.
    pub async fn create_user(&mut self) -> String {
        self.create_user_with_status(UserStatus::Active).await
    }

    pub async fn create_user_with_status(&mut self, status: UserStatus) -> String {
        let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
        let response = self
            .users()
            .create_user(CreateUserRequest {
                name: "Test User".into(),
                email,
                status: status as i32,
                idempotency_key: String::new(),
            })
            .await
            .expect("create user");
        response.into_inner().user.unwrap().id
    }

    /// Sets the status of user `id` in the user service.
    pub async fn set_user_status(&mut self, id: &str, status: UserStatus) {
        self.users()
            .update_user(UpdateUserRequest {
                id: id.to_owned(),
                status: Some(status as i32),
                ..Default::default()
            })
            .await
            .expect("update user");
    }

    /// Creates the order of [`order_request`] for `user_id`.
    pub async fn create_order(&mut self, user_id: &str) -> Order {
        self.create_order_with(order_request(user_id)).await
    }

    pub async fn create_order_with(&mut self, request: CreateOrderRequest) -> Order {
        self.orders
            .create_order(request)
            .await
            .expect("create order")
            .into_inner()
            .order
            .unwrap()
    }

    pub async fn get_order(&mut self, id: &str) -> Order {
        self.orders
            .get_order(GetOrderRequest { id: id.to_owned() })
            .await
            .expect("get order")
            .into_inner()
            .order
            .unwrap()
    }

    pub async fn pay(
        &mut self,
        order: &Order,
        token: &str,
    ) -> Result<ProcessPaymentResponse, Status> {
        self.orders
            .process_payment(payment_for(order, token))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn update_status(&mut self, id: &str, status: OrderStatus) -> Result<Order, Status> {
        self.orders
            .update_order_status(UpdateOrderStatusRequest {
                id: id.to_owned(),
                status: status as i32,
            })
            .await
            .map(|response| response.into_inner().order.unwrap())
    }

    pub async fn cancel(&mut self, id: &str, reason: &str) -> Result<Order, Status> {
        self.orders
            .cancel_order(CancelOrderRequest {
                id: id.to_owned(),
                reason: reason.to_owned(),
            })
            .await
            .map(|response| response.into_inner().order.unwrap())
    }

    /// Creates an order for `user_id` and moves it to `status` through the
    /// allowed path.
    pub async fn order_in_status(&mut self, user_id: &str, status: OrderStatus) -> Order {
        let mut order = self.create_order(user_id).await;
        let path: &[OrderStatus] = match status {
            OrderStatus::Pending => &[],
            OrderStatus::Paid => &[OrderStatus::Paid],
            OrderStatus::Shipped => &[OrderStatus::Paid, OrderStatus::Shipped],
            OrderStatus::Delivered => &[
                OrderStatus::Paid,
                OrderStatus::Shipped,
                OrderStatus::Delivered,
            ],
            OrderStatus::Cancelled => &[OrderStatus::Cancelled],
            OrderStatus::Unspecified => panic!("no order is UNSPECIFIED"),
        };
        for step in path {
            order = match step {
                OrderStatus::Paid => self.pay(&order, GOOD_TOKEN).await.unwrap().order.unwrap(),
                other => self.update_status(&order.id, *other).await.unwrap(),
            };
        }
        assert_eq!(order.status(), status);
        order
    }

    /// Lists every stored order, newest first, following page tokens.
    pub async fn all_orders(&mut self) -> Vec<Order> {
        let mut orders = Vec::new();
        let mut page_token = String::new();
        for _ in 0..1_000 {
            let response = self
                .orders
                .list_orders(ListOrdersRequest {
                    page_size: 100,
                    page_token: page_token.clone(),
                    ..Default::default()
                })
                .await
                .expect("list orders")
                .into_inner();
            orders.extend(response.orders);
            if response.next_page_token.is_empty() {
                return orders;
            }
            page_token = response.next_page_token;
        }
        panic!("listing did not end after 1000 pages");
    }
}

/// Microseconds since the Unix epoch of a timestamp the service returned.
pub fn micros(timestamp: &Option<prost_types::Timestamp>) -> i64 {
    let timestamp = timestamp.as_ref().expect("timestamp is set");
    lintas_common::time::timestamp_to_micros(timestamp).expect("timestamp is valid")
}

pub fn item(sku: &str, quantity: i32, unit_price: i64) -> OrderItem {
    OrderItem {
        sku: sku.to_owned(),
        quantity,
        unit_price,
    }
}

pub fn address() -> Address {
    Address {
        recipient: "Ada Lovelace".into(),
        line1: "Jl. Jenderal Sudirman 1".into(),
        line2: "Floor 3".into(),
        city: "Jakarta".into(),
        region: "DKI Jakarta".into(),
        postal_code: "10220".into(),
        country: "ID".into(),
    }
}

/// Builds a valid order request of two items, total 2 * 1500 + 1 * 2500 = 5500 IDR.
pub fn order_request(user_id: &str) -> CreateOrderRequest {
    CreateOrderRequest {
        user_id: user_id.to_owned(),
        items: vec![item("SKU-1", 2, 1_500), item("sku_2.b", 1, 2_500)],
        currency: "IDR".into(),
        shipping_address: Some(address()),
        idempotency_key: String::new(),
    }
}

/// Builds a payment request for the order's full total in its currency.
pub fn payment_for(order: &Order, token: &str) -> ProcessPaymentRequest {
    ProcessPaymentRequest {
        order_id: order.id.clone(),
        amount: order.total,
        currency: order.currency.clone(),
        method: PaymentMethod::Card as i32,
        payment_token: token.to_owned(),
        idempotency_key: String::new(),
    }
}

/// Asserts that `result` failed with `code` and a message containing `fragment`.
#[track_caller]
pub fn assert_rejected<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, fragment: &str) {
    let status = result.expect_err("call succeeded but should have failed");
    assert_eq!(status.code(), code, "message: {}", status.message());
    assert!(
        status.message().contains(fragment),
        "message {:?} does not contain {fragment:?}",
        status.message()
    );
}
