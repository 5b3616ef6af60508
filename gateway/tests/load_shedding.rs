//! Load shedding against a stalled backend: with a small in-flight limit, a
//! burst of slow requests is served up to the limit, the rest get 503 at
//! once, and the probes and `/metrics` still respond.

mod common;

use std::time::{Duration, Instant};

use lintas_proto::common::v1::{HealthCheckRequest, HealthCheckResponse};
use lintas_proto::user::v1::user_service_server::{UserService, UserServiceServer};
use lintas_proto::user::v1::{
    BatchGetUsersRequest, BatchGetUsersResponse, CreateUserRequest, CreateUserResponse,
    DeleteUserRequest, DeleteUserResponse, GetUserMetricsRequest, GetUserMetricsResponse,
    GetUserRequest, GetUserResponse, ListUsersRequest, ListUsersResponse, UpdateUserRequest,
    UpdateUserResponse,
};
use reqwest::{Client, StatusCode, header};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;

/// How long the fake user service takes to list users.
const LIST_DELAY: Duration = Duration::from_millis(1500);

const LIMIT: usize = 4;
const BURST: usize = 24;

/// A user service whose `ListUsers` waits [`LIST_DELAY`] and returns no
/// users. The gateway needs no other call in these tests.
struct SlowUserService;

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented(
        "the slow test backend serves only ListUsers",
    ))
}

#[tonic::async_trait]
impl UserService for SlowUserService {
    async fn list_users(
        &self,
        _request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        tokio::time::sleep(LIST_DELAY).await;
        Ok(Response::new(ListUsersResponse::default()))
    }

    async fn get_user(
        &self,
        _request: Request<GetUserRequest>,
    ) -> Result<Response<GetUserResponse>, Status> {
        unimplemented()
    }

    async fn batch_get_users(
        &self,
        _request: Request<BatchGetUsersRequest>,
    ) -> Result<Response<BatchGetUsersResponse>, Status> {
        unimplemented()
    }

    async fn create_user(
        &self,
        _request: Request<CreateUserRequest>,
    ) -> Result<Response<CreateUserResponse>, Status> {
        unimplemented()
    }

    async fn update_user(
        &self,
        _request: Request<UpdateUserRequest>,
    ) -> Result<Response<UpdateUserResponse>, Status> {
        unimplemented()
    }

    async fn delete_user(
        &self,
        _request: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        unimplemented()
    }

    async fn health_check(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        unimplemented()
    }

    async fn get_user_metrics(
        &self,
        _request: Request<GetUserMetricsRequest>,
    ) -> Result<Response<GetUserMetricsResponse>, Status> {
        unimplemented()
    }
}

/// The gateway in front of the slow backend, which also reports both
/// services as serving, so `/readyz` is 200. Dropping it stops both.
struct SlowPlatform {
    base: String,
    client: Client,
    _stop: oneshot::Sender<()>,
}

impl SlowPlatform {
    async fn start(max_in_flight_requests: usize) -> Self {
        let backend_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend_url = format!("http://{}", backend_listener.local_addr().unwrap());
        let base = format!("http://{}", gateway_listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let stopped = futures::FutureExt::shared(stopped);

        let (health_reporter, health) = tonic_health::server::health_reporter();
        for service in ["user.v1.UserService", "order.v1.OrderService"] {
            health_reporter
                .set_service_status(service, ServingStatus::Serving)
                .await;
        }
        let backend_stopped = stopped.clone();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health)
                .add_service(UserServiceServer::new(SlowUserService))
                .serve_with_incoming_shutdown(
                    lintas_common::grpc::incoming(backend_listener),
                    async move {
                        let _ = backend_stopped.await;
                    },
                ),
        );

        let mut settings = common::settings(&backend_url, &backend_url);
        settings.max_in_flight_requests = max_in_flight_requests;
        tokio::spawn(gateway::serve(gateway_listener, settings, async move {
            let _ = stopped.await;
        }));

        let platform = Self {
            base,
            client: common::client_with(Some(&common::token("test-admin", true))),
            _stop: stop,
        };
        platform.wait_ready().await;
        platform
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn wait_ready(&self) {
        for _ in 0..100 {
            if let Ok(response) = self.client.get(self.url("/readyz")).send().await
                && response.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gateway did not become ready within 5 seconds");
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

/// One request of the burst: its status, `Retry-After`, body and time taken.
struct Outcome {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
    elapsed: Duration,
}

async fn list_users(client: Client, url: String) -> Outcome {
    let started = Instant::now();
    let response = client.get(url).send().await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap();
    Outcome {
        status,
        retry_after,
        body,
        elapsed: started.elapsed(),
    }
}

/// Starts [`BURST`] concurrent slow requests and returns their tasks.
fn start_burst(platform: &SlowPlatform) -> Vec<tokio::task::JoinHandle<Outcome>> {
    (0..BURST)
        .map(|_| {
            tokio::spawn(list_users(
                platform.client.clone(),
                platform.url("/api/v1/users"),
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_past_limit_is_shed_at_once() {
    let platform = SlowPlatform::start(LIMIT).await;

    let mut outcomes = Vec::new();
    for task in start_burst(&platform) {
        outcomes.push(task.await.unwrap());
    }

    let served: Vec<&Outcome> = outcomes
        .iter()
        .filter(|outcome| outcome.status == StatusCode::OK)
        .collect();
    let shed: Vec<&Outcome> = outcomes
        .iter()
        .filter(|outcome| outcome.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert_eq!(served.len(), LIMIT, "requests served at once");
    assert_eq!(
        served.len() + shed.len(),
        BURST,
        "every request is served or shed"
    );
    for outcome in &served {
        assert!(outcome.elapsed >= LIST_DELAY, "{:?}", outcome.elapsed);
    }
    for outcome in &shed {
        assert_eq!(outcome.body["code"], "OVERLOADED", "{}", outcome.body);
        assert_eq!(outcome.retry_after.as_deref(), Some("1"));
        assert!(
            outcome.elapsed < LIST_DELAY,
            "a shed request waited {:?}",
            outcome.elapsed
        );
    }
    assert_eq!(
        platform.metric("gateway_requests_shed_total").await,
        shed.len() as f64
    );
    let shed_responses =
        "http_server_requests_total{method=\"GET\",route=\"/api/v1/users\",status_class=\"5xx\"}";
    assert_eq!(platform.metric(shed_responses).await, shed.len() as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_respond_while_shedding() {
    let platform = SlowPlatform::start(LIMIT).await;
    let burst = start_burst(&platform);
    // The first requests hold every slot for LIST_DELAY.
    tokio::time::sleep(LIST_DELAY / 3).await;

    for path in ["/healthz", "/readyz", "/metrics"] {
        let started = Instant::now();
        let response = platform
            .client
            .get(platform.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(
            started.elapsed() < LIST_DELAY,
            "{path} took {:?}",
            started.elapsed()
        );
    }
    let (status, body) = {
        let outcome = list_users(platform.client.clone(), platform.url("/api/v1/users")).await;
        (outcome.status, outcome.body)
    };
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    for task in burst {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_are_freed_after_burst() {
    let platform = SlowPlatform::start(LIMIT).await;
    for task in start_burst(&platform) {
        task.await.unwrap();
    }

    let mut tasks = Vec::new();
    for _ in 0..LIMIT {
        tasks.push(tokio::spawn(list_users(
            platform.client.clone(),
            platform.url("/api/v1/users"),
        )));
    }
    for task in tasks {
        let outcome = task.await.unwrap();
        assert_eq!(outcome.status, StatusCode::OK, "{}", outcome.body);
    }
}
