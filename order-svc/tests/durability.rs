//! Durability across a crash. The `order-svc` binary runs as a child
//! process on a SQLite file or a PostgreSQL database (`LINTAS_TEST_BACKEND`)
//! while clients create orders with idempotency keys, and the test kills it
//! with SIGKILL part-way. After a restart, every acknowledged order must be
//! there, and retrying every request with its key must create no duplicates.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lintas_common::testing::fresh_database_url;
use lintas_proto::order::v1::order_service_client::OrderServiceClient;
use lintas_proto::order::v1::{
    Address, CreateOrderRequest, GetOrderRequest, GetOrdersByUserRequest, OrderItem,
};
use lintas_proto::user::v1::user_service_client::UserServiceClient;
use lintas_proto::user::v1::{CreateUserRequest, UserStatus};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinSet;
use tonic::transport::Channel;

/// Orders the clients try to create, spread evenly over the users.
const ORDERS: usize = 200;
const USERS: usize = 4;
/// Clients that send creates at the same time, so several are in flight
/// when the process dies.
const CLIENTS: usize = 8;
/// Acknowledged creates after which the process is killed.
const KILL_AFTER_ACKS: usize = 50;
/// Bound on the whole test.
const TEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on the child process reporting its listening address.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Log message that `order_svc::serve` writes once it accepts connections.
const LISTENING_MESSAGE: &str = "order service listening";

/// The `order-svc` binary running as a child process. Dropping it kills the
/// process.
struct OrderProcess {
    child: Child,
}

impl OrderProcess {
    /// Starts the binary on `database_url` with a port chosen by the kernel
    /// and returns it with the address it listens on, read from its log.
    async fn start(database_url: &str, user_service_url: &str) -> (Self, SocketAddr) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_order-svc"))
            .env("ORDER_SVC_LISTEN", "127.0.0.1:0")
            .env("METRICS_LISTEN", "127.0.0.1:0")
            .env("DATABASE_URL", database_url)
            .env("USER_SERVICE_URL", user_service_url)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the order-svc binary");
        let stdout = child.stdout.take().expect("stdout is piped");

        // Reads the log on a thread, and keeps reading after the address
        // line so that the child never blocks on a full pipe.
        let (address_sender, address_receiver) = oneshot::channel();
        std::thread::spawn(move || {
            let mut address_sender = Some(address_sender);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains(LISTENING_MESSAGE)
                    && let Some(sender) = address_sender.take()
                {
                    let _ = sender.send(listening_address(&line));
                }
            }
        });

        let process = Self { child };
        let address = tokio::time::timeout(START_TIMEOUT, address_receiver)
            .await
            .expect("order-svc did not report its address in time")
            .expect("order-svc exited before it listened");
        (process, address)
    }

    /// Kills the process with SIGKILL and waits for it to end.
    fn kill(&mut self) {
        self.child.kill().expect("kill order-svc");
        self.child.wait().expect("wait for order-svc");
    }
}

impl Drop for OrderProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Extracts the `address` field of the JSON log line that announces the
/// listener.
fn listening_address(line: &str) -> SocketAddr {
    let field = "\"address\":\"";
    let start = line
        .find(field)
        .unwrap_or_else(|| panic!("no address in log line {line}"))
        + field.len();
    let end = start + line[start..].find('"').expect("address field ends");
    line[start..end]
        .parse()
        .unwrap_or_else(|error| panic!("invalid address in log line {line}: {error}"))
}

/// Starts a user service in this process and returns its URL and the sender
/// that stops it.
async fn start_user_service(dir: &tempfile::TempDir) -> (String, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
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
    (url, stop)
}

async fn create_users(user_service_url: &str) -> Vec<String> {
    let mut client = UserServiceClient::connect(user_service_url.to_owned())
        .await
        .expect("connect to user service");
    let mut ids = Vec::with_capacity(USERS);
    for index in 0..USERS {
        let request = CreateUserRequest {
            name: format!("Durability User {index}"),
            email: format!("durability-{index}@example.com"),
            status: UserStatus::Active as i32,
            idempotency_key: String::new(),
        };
        let user = client.create_user(request).await.expect("create user");
        ids.push(user.into_inner().user.unwrap().id);
    }
    ids
}

/// Builds create request number `index`, with its own idempotency key.
fn order_request(users: &[String], index: usize) -> CreateOrderRequest {
    CreateOrderRequest {
        user_id: users[index % users.len()].clone(),
        items: vec![OrderItem {
            sku: format!("SKU-{index}"),
            quantity: 1,
            unit_price: index as i64 + 1,
        }],
        currency: "IDR".into(),
        shipping_address: Some(Address {
            recipient: "Ada Lovelace".into(),
            line1: "Jl. Jenderal Sudirman 1".into(),
            line2: String::new(),
            city: "Jakarta".into(),
            region: String::new(),
            postal_code: "10220".into(),
            country: "ID".into(),
        }),
        idempotency_key: format!("durability-{index}"),
    }
}

async fn connect(address: SocketAddr) -> OrderServiceClient<Channel> {
    OrderServiceClient::connect(format!("http://{address}"))
        .await
        .expect("connect to order service")
}

/// Sends creates 0..ORDERS from several clients until each client's first
/// failure, and returns the acknowledged order ids by request number.
/// `acked_enough` is notified when KILL_AFTER_ACKS creates are acknowledged.
async fn create_until_failure(
    client: OrderServiceClient<Channel>,
    users: Arc<Vec<String>>,
    acked_enough: Arc<Notify>,
) -> HashMap<usize, String> {
    let next_index = Arc::new(Mutex::new(0_usize));
    let acked = Arc::new(Mutex::new(HashMap::new()));
    let mut clients = JoinSet::new();
    for _ in 0..CLIENTS {
        let mut client = client.clone();
        let users = Arc::clone(&users);
        let next_index = Arc::clone(&next_index);
        let acked = Arc::clone(&acked);
        let acked_enough = Arc::clone(&acked_enough);
        clients.spawn(async move {
            loop {
                let index = {
                    let mut next = next_index.lock().unwrap();
                    let index = *next;
                    *next += 1;
                    index
                };
                if index >= ORDERS {
                    return;
                }
                let Ok(response) = client.create_order(order_request(&users, index)).await else {
                    return;
                };
                let id = response.into_inner().order.unwrap().id;
                let mut acked = acked.lock().unwrap();
                acked.insert(index, id);
                if acked.len() == KILL_AFTER_ACKS {
                    acked_enough.notify_one();
                }
            }
        });
    }
    while let Some(joined) = clients.join_next().await {
        joined.expect("client task panicked");
    }
    let acked = acked.lock().unwrap();
    acked.clone()
}

/// Lists every order of `user_id`, following page tokens.
async fn orders_of_user(client: &mut OrderServiceClient<Channel>, user_id: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut page_token = String::new();
    for _ in 0..100 {
        let page = client
            .get_orders_by_user(GetOrdersByUserRequest {
                user_id: user_id.to_owned(),
                page_size: 100,
                page_token,
            })
            .await
            .expect("list orders of user")
            .into_inner();
        ids.extend(page.orders.into_iter().map(|order| order.id));
        if page.next_page_token.is_empty() {
            return ids;
        }
        page_token = page.next_page_token;
    }
    panic!("listing of user {user_id} did not end after 100 pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_orders_survive_kill() {
    tokio::time::timeout(TEST_TIMEOUT, kill_and_restart())
        .await
        .expect("durability test took too long");
}

async fn kill_and_restart() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (user_service_url, _stop_users) = start_user_service(&dir).await;
    let users = Arc::new(create_users(&user_service_url).await);
    let database_url = fresh_database_url(dir.path(), "orders").await;

    // Creates orders until the process is killed part-way.
    let (mut process, address) = OrderProcess::start(&database_url, &user_service_url).await;
    let acked_enough = Arc::new(Notify::new());
    let creating = tokio::spawn(create_until_failure(
        connect(address).await,
        Arc::clone(&users),
        Arc::clone(&acked_enough),
    ));
    acked_enough.notified().await;
    process.kill();
    let acked = creating.await.expect("create task panicked");
    assert!(
        (KILL_AFTER_ACKS..ORDERS).contains(&acked.len()),
        "{} creates were acknowledged before the kill, expected {KILL_AFTER_ACKS} to {}",
        acked.len(),
        ORDERS - 1
    );

    // Every acknowledged order survived the crash.
    let (_process, address) = OrderProcess::start(&database_url, &user_service_url).await;
    let mut client = connect(address).await;
    for (index, id) in &acked {
        let result = client.get_order(GetOrderRequest { id: id.clone() }).await;
        assert!(
            result.is_ok(),
            "acknowledged order {id} (request {index}) is missing: {result:?}"
        );
    }

    // Retries every request with its key: acknowledged ones replay, and the
    // others are created now unless they committed before the kill.
    let mut ids_by_user: HashMap<String, HashSet<String>> = HashMap::new();
    for index in 0..ORDERS {
        let request = order_request(&users, index);
        let user_id = request.user_id.clone();
        let order = client
            .create_order(request)
            .await
            .unwrap_or_else(|status| panic!("retry of request {index} failed: {status:?}"))
            .into_inner()
            .order
            .unwrap();
        if let Some(acked_id) = acked.get(&index) {
            assert_eq!(
                &order.id, acked_id,
                "retry of request {index} changed its order"
            );
        }
        ids_by_user.entry(user_id).or_default().insert(order.id);
    }

    for user_id in users.iter() {
        let stored = orders_of_user(&mut client, user_id).await;
        let stored_set: HashSet<String> = stored.iter().cloned().collect();
        assert_eq!(stored.len(), ORDERS / USERS, "orders of user {user_id}");
        assert_eq!(Some(&stored_set), ids_by_user.get(user_id));
    }
}
