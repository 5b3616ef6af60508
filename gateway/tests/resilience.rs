//! Deadlines, retries and circuit breakers of the gateway's backend calls,
//! against a fake user service that fails on purpose and against the real
//! one stopped and started again.

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::server::NamedService;

const UNKNOWN_USER: &str = "0190f0f0-0000-7000-8000-000000000000";

/// What the fake user service does with every call.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Responds at once with UNAVAILABLE.
    Unavailable,
    /// Never answers.
    Stall,
    /// Sends the response headers and never the body.
    HeadersOnly,
}

/// A user service that counts calls by method and records the
/// `grpc-timeout` each call carried.
#[derive(Clone)]
struct FakeUsers {
    behaviour: Behaviour,
    calls: Arc<Mutex<Vec<String>>>,
    timeouts: Arc<Mutex<Vec<String>>>,
}

impl NamedService for FakeUsers {
    const NAME: &'static str = "user.v1.UserService";
}

impl tower::Service<http::Request<tonic::body::Body>> for FakeUsers {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let method = request.uri().path().rsplit('/').next().unwrap_or_default();
        self.calls.lock().unwrap().push(method.to_owned());
        if let Some(timeout) = request.headers().get("grpc-timeout") {
            self.timeouts
                .lock()
                .unwrap()
                .push(timeout.to_str().unwrap_or_default().to_owned());
        }
        let behaviour = self.behaviour;
        Box::pin(async move {
            if let Behaviour::Stall = behaviour {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            if let Behaviour::HeadersOnly = behaviour {
                let frames = futures::stream::pending::<
                    Result<http_body::Frame<bytes::Bytes>, std::io::Error>,
                >();
                let response = http::Response::builder()
                    .header("content-type", "application/grpc")
                    .body(tonic::body::Body::new(http_body_util::StreamBody::new(
                        frames,
                    )))
                    .unwrap();
                return Ok(response);
            }
            let response = http::Response::builder()
                .header("content-type", "application/grpc")
                .header("grpc-status", "14")
                .header("grpc-message", "fake outage")
                .body(tonic::body::Body::empty())
                .unwrap();
            Ok(response)
        })
    }
}

impl FakeUsers {
    async fn start(behaviour: Behaviour) -> (Self, String) {
        let fake = Self {
            behaviour,
            calls: Arc::default(),
            timeouts: Arc::default(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        // The health service reports SERVING for both backends' names, so
        // readiness depends on the gateway's circuits alone.
        let (reporter, health) = tonic_health::server::health_reporter();
        for service in ["user.v1.UserService", "order.v1.OrderService"] {
            reporter
                .set_service_status(service, tonic_health::ServingStatus::Serving)
                .await;
        }
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health)
                .add_service(fake.clone())
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        (fake, url)
    }

    fn calls_of(&self, method: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|call| *call == method)
            .count()
    }
}

struct Gateway {
    base: String,
    client: Client,
    _stop: watch::Sender<bool>,
}

impl Gateway {
    async fn start(user_url: &str, adjust: impl FnOnce(&mut gateway::Settings)) -> Self {
        let mut settings = common::settings(user_url, user_url);
        settings.cache.enabled = false;
        adjust(&mut settings);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, mut stopped) = watch::channel(false);
        tokio::spawn(gateway::serve(listener, settings, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
        let client = common::client_with(Some(&common::token("test-admin", true)));
        Self {
            base,
            client,
            _stop: stop,
        }
    }

    async fn get_user(&self, id: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(format!("{}/api/v1/users/{id}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn create_user(&self, email: &str, idempotency_key: Option<&str>) -> StatusCode {
        let mut request = self
            .client
            .post(format!("{}/api/v1/users", self.base))
            .json(&json!({ "name": "Rani", "email": email }));
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.unwrap().status()
    }

    async fn readyz(&self) -> (StatusCode, Value) {
        let response = self
            .client
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }

    async fn metric(&self, series: &str) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

fn strict_budget(settings: &mut gateway::Settings) {
    let resilience = &mut settings.user_service.resilience;
    resilience.retry_max = 2;
    resilience.retry_ratio = 0.1;
    resilience.retry_min_per_sec = 1;
    resilience.retry_backoff = Duration::from_millis(1);
    resilience.breaker_failures = 100_000;
}

#[tokio::test]
async fn read_retries_stay_within_budget() {
    let (fake, url) = FakeUsers::start(Behaviour::Unavailable).await;
    let gateway = Gateway::start(&url, strict_budget).await;

    let requests = 200;
    for _ in 0..requests {
        let (status, body) = gateway.get_user(UNKNOWN_USER).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }

    // The budget allows 10% of the calls plus one retry per second over its
    // ten-second window, so at most 20 + 10 retries, where each request
    // could have made 2.
    let calls = fake.calls_of("GetUser");
    assert!(calls > requests, "no retry was made: {calls} calls");
    assert!(
        calls <= requests + 30,
        "{calls} calls for {requests} requests"
    );
    let denied = gateway
        .metric("backend_retries_denied_total{backend=\"users\",reason=\"budget\"}")
        .await;
    assert!(denied > 0.0, "no retry was denied");
}

#[tokio::test]
async fn writes_retry_only_with_idempotency_key() {
    let (fake, url) = FakeUsers::start(Behaviour::Unavailable).await;
    let gateway = Gateway::start(&url, strict_budget).await;

    let status = gateway.create_user("rani@example.com", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(fake.calls_of("CreateUser"), 1);

    let status = gateway
        .create_user(
            "rani@example.com",
            Some("0190f0f0-aaaa-7000-8000-000000000001"),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(fake.calls_of("CreateUser"), 1 + 3);
}

#[tokio::test]
async fn request_budget_becomes_grpc_deadline() {
    let (fake, url) = FakeUsers::start(Behaviour::Stall).await;
    let gateway = Gateway::start(&url, |settings| {
        settings.request_timeout = Duration::from_millis(300);
    })
    .await;

    assert_times_out_quickly(&gateway).await;
    let timeouts = fake.timeouts.lock().unwrap().clone();
    assert_eq!(timeouts.len(), 1, "a timed-out call is not retried");
    assert!(!timeouts.is_empty());
    for timeout in timeouts {
        let millis: u64 = timeout.trim_end_matches('m').parse().unwrap();
        assert!((1..=300).contains(&millis), "grpc-timeout {timeout}");
    }
}

#[tokio::test]
async fn open_circuit_stops_calling_the_backend() {
    let (fake, url) = FakeUsers::start(Behaviour::Unavailable).await;
    let gateway = Gateway::start(&url, |settings| {
        let resilience = &mut settings.user_service.resilience;
        resilience.retry_max = 0;
        resilience.breaker_failures = 3;
        resilience.breaker_cooldown = Duration::from_secs(60);
    })
    .await;
    let (status, body) = gateway.readyz().await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for _ in 0..10 {
        let (status, body) = gateway.get_user(UNKNOWN_USER).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }
    assert_eq!(fake.calls_of("GetUser"), 3);
    let (status, body) = gateway.readyz().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let user_service = body["checks"]["user_service"].as_str().unwrap();
    assert!(
        user_service.starts_with("serving, but its circuit is open"),
        "{user_service}"
    );
    assert_eq!(body["checks"]["order_service"], "serving");
    let opened = "backend_circuit_transitions_total{backend=\"users\",to=\"open\"}";
    assert_eq!(gateway.metric(opened).await, 1.0);
}

/// Runs the real user service on `listener` until `stop` turns true.
fn serve_users(
    listener: TcpListener,
    database_url: String,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(user_svc::serve(
        listener,
        user_svc::Settings::new(database_url),
        async move {
            let _ = stop.wait_for(|stop| *stop).await;
        },
    ))
}

#[tokio::test]
async fn circuit_opens_on_outage_and_closes_after_restart() {
    let data = tempfile::tempdir().unwrap();
    let database_url = lintas_common::testing::fresh_database_url(data.path(), "users").await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    let server = serve_users(listener, database_url.clone(), stopped);

    let gateway = Gateway::start(&format!("http://{address}"), |settings| {
        let resilience = &mut settings.user_service.resilience;
        resilience.retry_max = 0;
        resilience.breaker_failures = 3;
        resilience.breaker_cooldown = Duration::from_millis(500);
    })
    .await;
    let (status, _) = gateway.get_user(UNKNOWN_USER).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    stop.send(true).unwrap();
    server.await.unwrap().unwrap();
    for _ in 0..3 {
        let (status, body) = gateway.get_user(UNKNOWN_USER).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }
    let state = "backend_circuit_state{backend=\"users\"}";
    assert_eq!(gateway.metric(state).await, 1.0);

    let listener = TcpListener::bind(address).await.unwrap();
    let (_stop_again, stopped) = watch::channel(false);
    let _server = serve_users(listener, database_url, stopped);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut closed = false;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if gateway.get_user(UNKNOWN_USER).await.0 == StatusCode::NOT_FOUND {
            closed = true;
            break;
        }
    }
    assert!(closed, "the circuit never closed after the restart");
    assert_eq!(gateway.metric(state).await, 0.0);
    for to in ["open", "half_open", "closed"] {
        let series = format!("backend_circuit_transitions_total{{backend=\"users\",to=\"{to}\"}}");
        assert!(
            gateway.metric(&series).await >= 1.0,
            "no transition to {to}"
        );
    }
}

#[tokio::test]
async fn backend_timeout_caps_each_call() {
    let (fake, url) = FakeUsers::start(Behaviour::Stall).await;
    let gateway = Gateway::start(&url, |settings| {
        settings.request_timeout = Duration::from_secs(10);
        settings.user_service.timeout = Duration::from_millis(300);
    })
    .await;

    assert_times_out_quickly(&gateway).await;
    let timeouts = fake.timeouts.lock().unwrap().clone();
    let millis: u64 = timeouts[0].trim_end_matches('m').parse().unwrap();
    assert!((1..=300).contains(&millis), "grpc-timeout {}", timeouts[0]);
}

/// Looks up a user and checks that the gateway responds with 504
/// DEADLINE_EXCEEDED within three seconds.
async fn assert_times_out_quickly(gateway: &Gateway) {
    let started = Instant::now();
    let (status, body) = gateway.get_user(UNKNOWN_USER).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["code"], "DEADLINE_EXCEEDED");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

/// Opens the users circuit after two failed calls, without retries, for a
/// minute.
fn open_after_two_failures(settings: &mut gateway::Settings) {
    let resilience = &mut settings.user_service.resilience;
    resilience.retry_max = 0;
    resilience.breaker_failures = 2;
    resilience.breaker_cooldown = Duration::from_secs(60);
}

/// Checks that a third lookup fails fast without reaching `fake`, which
/// took the two failed calls.
async fn assert_circuit_open(gateway: &Gateway, fake: &FakeUsers) {
    let (status, _) = gateway.get_user(UNKNOWN_USER).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(fake.calls_of("GetUser"), 2);
}

#[tokio::test]
async fn stalled_response_body_ends_at_call_deadline() {
    let (fake, url) = FakeUsers::start(Behaviour::HeadersOnly).await;
    let gateway = Gateway::start(&url, |settings| {
        settings.request_timeout = Duration::from_secs(10);
        settings.user_service.timeout = Duration::from_millis(300);
        open_after_two_failures(settings);
    })
    .await;

    for _ in 0..2 {
        assert_times_out_quickly(&gateway).await;
    }
    // Both stalled bodies counted against the breaker, so it is open.
    assert_circuit_open(&gateway, &fake).await;
}

/// Starts a listener that accepts connections, reads until the client
/// pauses for 100 ms, and closes them without a response, as a backend
/// that dies while handling a call does. Returns the count of accepted
/// connections and the URL.
async fn start_hang_up() -> (Arc<AtomicUsize>, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buffer = [0_u8; 4096];
                let pause = Duration::from_millis(100);
                for _ in 0..50 {
                    match tokio::time::timeout(pause, socket.read(&mut buffer)).await {
                        Ok(Ok(read)) if read > 0 => {}
                        _ => break,
                    }
                }
            });
        }
    });
    (accepted, url)
}

#[tokio::test]
async fn call_without_response_fails_with_unavailable() {
    let (accepted, url) = start_hang_up().await;
    let gateway = Gateway::start(&url, strict_budget).await;

    let status = gateway.create_user("rani@example.com", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "a write whose request left must not be sent again"
    );

    let (status, body) = gateway.get_user(UNKNOWN_USER).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "UNAVAILABLE");
    assert!(
        accepted.load(Ordering::SeqCst) > 2,
        "a read without response is retried"
    );
}

/// Starts a proxy to `target` that closes both sides of each connection
/// 100 ms after `fake` takes one more `GetUser` call. The gateway then gets
/// response headers and a closed connection, as from a backend that dies
/// while sending its response.
async fn start_cutting_proxy(target: String, fake: FakeUsers) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let target = target.trim_start_matches("http://").to_owned();
            let fake = fake.clone();
            tokio::spawn(async move {
                let mut server = tokio::net::TcpStream::connect(target).await.unwrap();
                let before = fake.calls_of("GetUser");
                let cut = async {
                    for _ in 0..500 {
                        if fake.calls_of("GetUser") > before {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    () = cut => {}
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn response_that_breaks_off_fails_with_unavailable() {
    let (fake, url) = FakeUsers::start(Behaviour::HeadersOnly).await;
    let proxy = start_cutting_proxy(url, fake.clone()).await;
    let gateway = Gateway::start(&proxy, open_after_two_failures).await;

    for _ in 0..2 {
        let (status, body) = gateway.get_user(UNKNOWN_USER).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["code"], "UNAVAILABLE");
    }
    // Both broken responses counted against the breaker, so it is open.
    assert_circuit_open(&gateway, &fake).await;
}
