//! Harness shared by the integration tests: starts the real user service on a
//! loopback port with its own SQLite file, connects a tonic client, and offers
//! small request helpers and status assertions.
//!
//! Every test binary compiles this module but uses only some of its helpers.
#![allow(dead_code)]

use std::fmt::Debug;
use std::net::SocketAddr;
use std::time::Duration;

use lintas_proto::common::v1::HealthCheckRequest;
use lintas_proto::user::v1::user_service_client::UserServiceClient;
use lintas_proto::user::v1::{
    CreateUserRequest, GetUserMetricsRequest, GetUserMetricsResponse, ListUsersRequest, User,
    UserStatus,
};
use prost_types::Timestamp;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// Page token secret of services started by [`TestService::start`].
pub const TEST_SECRET: &str = "integration-test-secret";

/// Maximum wait for one RPC, for start-up and for a graceful stop.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Maximum number of pages that [`TestService::list_all`] follows before it
/// fails the test, so that a token that never runs out cannot hang it.
const MAX_PAGES: usize = 1_000;

/// A fresh database on the backend that `LINTAS_TEST_BACKEND` selects: a
/// SQLite file in its own temporary directory, or a new PostgreSQL database.
pub struct TestDatabase {
    _directory: TempDir,
    url: String,
}

impl TestDatabase {
    pub async fn new() -> Self {
        let directory = tempfile::tempdir().expect("failed to create a temporary directory");
        let url = lintas_common::testing::fresh_database_url(directory.path(), "users").await;
        Self {
            _directory: directory,
            url,
        }
    }

    /// Returns the database URL, which the service creates or migrates.
    pub fn url(&self) -> String {
        self.url.clone()
    }
}

/// A running user service and the channel connected to it.
pub struct TestService {
    pub address: SocketAddr,
    pub channel: Channel,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<anyhow::Result<()>>,
    /// Database that this service owns and deletes when it is dropped. It is
    /// `None` when the test owns the database, for example to restart on it.
    database: Option<TestDatabase>,
}

impl TestService {
    /// Starts a service on a fresh database that signs page tokens with
    /// [`TEST_SECRET`].
    pub async fn start() -> Self {
        let database = TestDatabase::new().await;
        let mut service = Self::start_on(&database, Some(TEST_SECRET)).await;
        service.database = Some(database);
        service
    }

    /// Starts a service on `database`, which may already hold users or be
    /// served by another instance. `None` for the secret makes the service
    /// pick a random one.
    pub async fn start_on(database: &TestDatabase, page_token_secret: Option<&str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("failed to bind a loopback port");
        let address = listener
            .local_addr()
            .expect("bound listener has an address");
        let mut settings = user_svc::Settings::new(database.url());
        settings.page_token_secret = page_token_secret.map(str::to_owned);
        let (shutdown, shutdown_requested) = oneshot::channel::<()>();
        let mut server = tokio::spawn(user_svc::serve(listener, settings, async move {
            // A dropped sender stops the service as well.
            let _ = shutdown_requested.await;
        }));

        let channel = Endpoint::from_shared(format!("http://{address}"))
            .expect("loopback address is a valid URI")
            .connect_timeout(TIMEOUT)
            .timeout(TIMEOUT)
            .connect_lazy();

        // The service opens the database before it accepts calls, so the first
        // health check also waits for start-up. A service that exits instead
        // fails the test with its error rather than with a timeout.
        let mut client = UserServiceClient::new(channel.clone());
        tokio::select! {
            result = &mut server => {
                panic!("user service exited during start-up: {result:?}");
            }
            response = client.health_check(HealthCheckRequest {}) => {
                response.expect("user service did not answer a health check after start-up");
            }
        }

        Self {
            address,
            channel,
            shutdown,
            server,
            database: None,
        }
    }

    /// Returns a new client on the service's channel.
    pub fn client(&self) -> UserServiceClient<Channel> {
        UserServiceClient::new(self.channel.clone())
    }

    /// Stops the service gracefully and checks that `serve` returned `Ok`.
    /// Clients made from this service's channel must be dropped first.
    pub async fn stop(self) {
        let Self {
            channel,
            shutdown,
            server,
            database,
            ..
        } = self;
        drop(channel);
        // The receiver is gone only when the server already exited, which the
        // join below reports.
        let _ = shutdown.send(());

        let result = tokio::time::timeout(TIMEOUT, server)
            .await
            .expect("user service did not stop within the timeout")
            .expect("user service task panicked");
        result.expect("user service returned an error");
        drop(database);
    }

    /// Creates an active user and returns it.
    pub async fn create_user(&self, name: &str, email: &str) -> User {
        self.create_user_with_status(name, email, UserStatus::Active)
            .await
    }

    /// Creates a user in `status` and returns it.
    pub async fn create_user_with_status(
        &self,
        name: &str,
        email: &str,
        status: UserStatus,
    ) -> User {
        let request = CreateUserRequest {
            name: name.to_owned(),
            email: email.to_owned(),
            status: status as i32,
            idempotency_key: String::new(),
        };
        self.client()
            .create_user(request)
            .await
            .unwrap_or_else(|status| panic!("failed to create user {email}: {status:?}"))
            .into_inner()
            .user
            .expect("CreateUser response has a user")
    }

    /// Returns the `GetUserMetrics` response.
    pub async fn metrics(&self) -> GetUserMetricsResponse {
        self.client()
            .get_user_metrics(GetUserMetricsRequest {})
            .await
            .expect("GetUserMetrics failed")
            .into_inner()
    }

    /// Returns every user that `request` selects, following page tokens from
    /// the first page to the last. `request.page_token` is ignored.
    pub async fn list_all(&self, request: ListUsersRequest) -> Vec<User> {
        let mut client = self.client();
        let mut users = Vec::new();
        let mut page_token = String::new();
        for _ in 0..MAX_PAGES {
            let page = client
                .list_users(ListUsersRequest {
                    page_token,
                    ..request.clone()
                })
                .await
                .unwrap_or_else(|status| panic!("ListUsers {request:?} failed: {status:?}"))
                .into_inner();
            users.extend(page.users);
            if page.next_page_token.is_empty() {
                return users;
            }
            page_token = page.next_page_token;
        }
        panic!("ListUsers {request:?} still had a next page after {MAX_PAGES} pages");
    }

    /// Returns the number of stored users, counted by listing them all.
    pub async fn listed_user_count(&self) -> usize {
        let request = ListUsersRequest {
            page_size: 100,
            ..Default::default()
        };
        self.list_all(request).await.len()
    }
}

/// Checks that `result` failed with `code` and that the message contains
/// `fragment`, and returns the status.
pub fn assert_status<T: Debug>(result: Result<T, Status>, code: Code, fragment: &str) -> Status {
    let status = match result {
        Ok(value) => panic!("expected {code:?} containing {fragment:?}, got Ok({value:?})"),
        Err(status) => status,
    };
    assert_eq!(
        status.code(),
        code,
        "unexpected code, message: {:?}",
        status.message()
    );
    assert!(
        status.message().contains(fragment),
        "message {:?} does not contain {fragment:?}",
        status.message()
    );
    status
}

/// Converts a protobuf timestamp to microseconds since the Unix epoch, the
/// precision that the service stores.
pub fn micros(timestamp: Option<&Timestamp>) -> i64 {
    let timestamp = timestamp.expect("timestamp is set");
    timestamp.seconds * 1_000_000 + i64::from(timestamp.nanos / 1_000)
}
