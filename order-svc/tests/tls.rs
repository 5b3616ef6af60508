//! The order service's calls to a user service that requires mutual TLS,
//! and the binary's refusal to call a user service outside loopback in
//! plaintext.

use std::net::TcpListener as StdTcpListener;
use std::path::PathBuf;
use std::time::Duration;

use lintas_common::test_pki::TestCa;
use lintas_common::tls::{ClientTlsSettings, IdentityFiles, ServerTlsSettings, lazy_channel};
use lintas_proto::order::v1::order_service_client::OrderServiceClient;
use lintas_proto::order::v1::{Address, CreateOrderRequest, OrderItem};
use lintas_proto::user::v1::CreateUserRequest;
use lintas_proto::user::v1::user_service_client::UserServiceClient;
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::sync::watch;
use tonic::Code;
use tonic::transport::Channel;

/// A user service with mutual TLS, and the files to call it with.
struct Backend {
    folder: tempfile::TempDir,
    ca: PathBuf,
    order_svc: IdentityFiles,
    url: String,
    stop: watch::Sender<bool>,
}

fn stopped(receiver: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut receiver = receiver.clone();
    async move {
        let _ = receiver.wait_for(|stop| *stop).await;
    }
}

async fn start_user_service() -> Backend {
    let folder = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Lintas test CA");
    let ca_path = ca.write(folder.path(), "ca");
    let user_svc = ca
        .issue_server(&["localhost"])
        .write(folder.path(), "user-svc");
    let order_svc = ca
        .issue_server_and_client(&["localhost"])
        .write(folder.path(), "order-svc");

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    let mut settings = user_svc::Settings::new(
        lintas_common::testing::fresh_database_url(folder.path(), "users").await,
    );
    settings.tls = Some(ServerTlsSettings {
        client_ca: Some(ca_path.clone()),
        ..ServerTlsSettings::new(&user_svc.cert, &user_svc.key)
    });
    let (stop, receiver) = watch::channel(false);
    tokio::spawn(user_svc::serve(listener, settings, stopped(&receiver)));
    Backend {
        folder,
        ca: ca_path,
        order_svc,
        url,
        stop,
    }
}

impl Backend {
    /// Creates a user through the user service and returns its id.
    async fn create_user(&self) -> String {
        let settings = ClientTlsSettings {
            identity: Some(self.order_svc.clone()),
            ..ClientTlsSettings::new(&self.ca)
        };
        let channel = lazy_channel(&self.url, Some(&settings), false, |endpoint| {
            endpoint.timeout(Duration::from_secs(5))
        })
        .unwrap();
        let mut users = UserServiceClient::new(channel);
        for _ in 0..100 {
            let request = CreateUserRequest {
                name: "Ayu".to_owned(),
                email: "ayu@example.com".to_owned(),
                ..Default::default()
            };
            if let Ok(response) = users.create_user(request).await {
                return response.into_inner().user.unwrap().id;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the user service did not answer within 5 seconds");
    }

    /// Starts an order service on loopback that calls this user service
    /// with `tls`, and returns a client of it.
    async fn start_order_service(&self, tls: ClientTlsSettings) -> OrderServiceClient<Channel> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut settings = order_svc::Settings::new(
            lintas_common::testing::fresh_database_url(self.folder.path(), "orders").await,
            &self.url,
        );
        settings.user_service_tls = Some(tls);
        tokio::spawn(order_svc::serve(
            listener,
            settings,
            stopped(&self.stop.subscribe()),
        ));
        let channel = Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .connect_lazy();
        OrderServiceClient::new(channel)
    }
}

fn order_request(user_id: &str) -> CreateOrderRequest {
    CreateOrderRequest {
        user_id: user_id.to_owned(),
        items: vec![OrderItem {
            sku: "KOPI-1".to_owned(),
            quantity: 2,
            unit_price: 15_000,
        }],
        currency: "IDR".to_owned(),
        shipping_address: Some(Address {
            recipient: "Siti".to_owned(),
            line1: "Jl. Merdeka 1".to_owned(),
            city: "Jakarta".to_owned(),
            postal_code: "10110".to_owned(),
            country: "ID".to_owned(),
            ..Default::default()
        }),
        idempotency_key: String::new(),
    }
}

/// Sends CreateOrder every 50 ms while the order service is not yet
/// listening, for at most five seconds.
async fn create_order(
    orders: &mut OrderServiceClient<Channel>,
    user_id: &str,
) -> Result<String, tonic::Status> {
    let mut result = Err(tonic::Status::unavailable("not sent"));
    for _ in 0..100 {
        result = orders
            .create_order(order_request(user_id))
            .await
            .map(|response| response.into_inner().order.unwrap().user_id);
        match &result {
            Err(status) if status.message().contains("tcp connect error") => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ => break,
        }
    }
    result
}

#[tokio::test]
async fn user_check_over_mutual_tls_succeeds() {
    let backend = start_user_service().await;
    let user_id = backend.create_user().await;
    let mut orders = backend
        .start_order_service(ClientTlsSettings {
            identity: Some(backend.order_svc.clone()),
            ..ClientTlsSettings::new(&backend.ca)
        })
        .await;

    let ordered_by = create_order(&mut orders, &user_id)
        .await
        .expect("order created");

    assert_eq!(ordered_by, user_id);
}

#[tokio::test]
async fn user_check_without_client_certificate_fails() {
    let backend = start_user_service().await;
    let user_id = backend.create_user().await;
    let mut orders = backend
        .start_order_service(ClientTlsSettings::new(&backend.ca))
        .await;

    let status = create_order(&mut orders, &user_id)
        .await
        .expect_err("the user service rejects the order service");

    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("user service is unavailable"),
        "{status:?}"
    );
}

#[tokio::test]
async fn binary_rejects_plaintext_user_service_off_loopback() {
    let folder = tempfile::tempdir().unwrap();
    let free_address = || {
        let listener = StdTcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let child = Command::new(env!("CARGO_BIN_EXE_order-svc"))
        .env_clear()
        .env("ORDER_SVC_LISTEN", free_address())
        .env("METRICS_LISTEN", free_address())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", folder.path().join("orders.db").display()),
        )
        .env("USER_SERVICE_URL", "http://user-svc:50051")
        .kill_on_drop(true)
        .output();

    let output = tokio::time::timeout(Duration::from_secs(20), child)
        .await
        .expect("order-svc exits at startup")
        .expect("run order-svc");

    assert!(!output.status.success(), "order-svc started");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("USER_SERVICE_URL"), "{stderr}");
    assert!(stderr.contains("http://user-svc:50051"), "{stderr}");
    assert!(stderr.contains("ALLOW_PLAINTEXT=on"), "{stderr}");
}
