use std::collections::VecDeque;
use std::sync::Mutex;

use prometheus::Registry;

use super::*;

/// What the scripted backend does with one call.
enum Reply {
    /// Responds with this gRPC status code.
    Status(tonic::Code),
    /// Fails while connecting, before the request is written.
    ConnectFails,
    /// Fails after the request was written, without a response.
    ConnectionReset,
    /// Fails as the channel does when the call's `grpc-timeout` ran out.
    TimesOut,
    /// Responds OK after a second.
    Slow,
    /// Responds UNAVAILABLE because a service that the backend calls is.
    DependencyUnavailable,
}

/// A backend that follows a script, one reply per call, and counts calls.
#[derive(Clone)]
struct Scripted {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    calls: Arc<Mutex<usize>>,
}

impl Scripted {
    fn new(replies: impl IntoIterator<Item = Reply>) -> Self {
        Self {
            replies: Arc::new(Mutex::new(replies.into_iter().collect())),
            calls: Arc::default(),
        }
    }

    fn calls(&self) -> usize {
        *self.calls.lock().unwrap()
    }
}

impl Service<http::Request<Body>> for Scripted {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: http::Request<Body>) -> Self::Future {
        *self.calls.lock().unwrap() += 1;
        let reply = self.replies.lock().unwrap().pop_front();
        Box::pin(async move {
            match reply.expect("the script has a reply for every call") {
                Reply::Status(code) => Ok(http::Response::builder()
                    .header("grpc-status", (code as i32).to_string())
                    .body(Body::empty())
                    .unwrap()),
                Reply::ConnectFails => {
                    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
                    Err(Box::new(tonic::ConnectError(Box::new(refused))) as BoxError)
                }
                Reply::TimesOut => Err(Box::new(tonic::TimeoutExpired(())) as BoxError),
                Reply::Slow => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Ok(http::Response::builder()
                        .header("grpc-status", "0")
                        .body(Body::empty())
                        .unwrap())
                }
                Reply::DependencyUnavailable => Ok(http::Response::builder()
                    .header("grpc-status", (tonic::Code::Unavailable as i32).to_string())
                    .header(UNAVAILABLE_DEPENDENCY_KEY, "user-svc")
                    .body(Body::empty())
                    .unwrap()),
                Reply::ConnectionReset => {
                    let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
                    Err(Box::new(reset) as BoxError)
                }
            }
        })
    }
}

fn resilient(backend: &Scripted) -> Resilient<Scripted> {
    resilient_opening_after(backend, 100)
}

fn resilient_opening_after(backend: &Scripted, breaker_failures: u32) -> Resilient<Scripted> {
    resilient_cooling(backend, breaker_failures, Duration::from_secs(60))
}

fn resilient_cooling(
    backend: &Scripted,
    breaker_failures: u32,
    breaker_cooldown: Duration,
) -> Resilient<Scripted> {
    let settings = ResilienceSettings {
        retry_backoff: Duration::from_millis(1),
        breaker_failures,
        breaker_cooldown,
        ..ResilienceSettings::default()
    };
    let metrics = ResilienceMetrics::new(&Registry::new()).unwrap();
    Resilient::new(
        backend.clone(),
        "users",
        Duration::from_secs(1),
        &settings,
        &metrics,
    )
}

async fn call(backend: &Scripted, method: &str) -> Result<http::Response<Body>, BoxError> {
    call_through(&resilient(backend), method).await
}

async fn call_through(
    layer: &Resilient<Scripted>,
    method: &str,
) -> Result<http::Response<Body>, BoxError> {
    let request = http::Request::builder()
        .uri(format!("http://users/user.v1.UserService/{method}"))
        .body(Body::empty())
        .unwrap();
    layer.clone().oneshot(request).await
}

/// Calls `GetUser` within a request budget of `millis` and returns the
/// status it failed with.
async fn status_within(layer: &Resilient<Scripted>, millis: u64) -> tonic::Status {
    let budget = Some(Instant::now() + Duration::from_millis(millis));
    status_of(deadline::scope(budget, call_through(layer, "GetUser")).await)
}

/// Calls `method` and returns the gRPC status code of its response.
async fn code_of(layer: &Resilient<Scripted>, method: &str) -> Option<tonic::Code> {
    let response = call_through(layer, method).await.unwrap();
    grpc_status(response.headers())
}

fn status_of(result: Result<http::Response<Body>, BoxError>) -> tonic::Status {
    let error = result.expect_err("the call failed");
    *error
        .downcast::<tonic::Status>()
        .expect("the error is a gRPC status")
}

#[tokio::test]
async fn write_whose_connection_failed_is_sent_again() {
    let backend = Scripted::new([Reply::ConnectFails, Reply::Status(tonic::Code::Ok)]);
    let response = call(&backend, "CreateUser").await.unwrap();
    assert_eq!(grpc_status(response.headers()), Some(tonic::Code::Ok));
    assert_eq!(backend.calls(), 2);
}

#[tokio::test]
async fn write_without_response_is_not_sent_again() {
    let backend = Scripted::new([Reply::ConnectionReset, Reply::Status(tonic::Code::Ok)]);
    let status = status_of(call(&backend, "CreateUser").await);
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(
        status
            .message()
            .starts_with("the users backend call failed without a response: "),
        "{}",
        status.message()
    );
    assert_eq!(backend.calls(), 1);
}

#[tokio::test]
async fn unavailable_write_is_not_sent_again() {
    let backend = Scripted::new([
        Reply::Status(tonic::Code::Unavailable),
        Reply::Status(tonic::Code::Ok),
    ]);
    let response = call(&backend, "CreateUser").await.unwrap();
    assert_eq!(
        grpc_status(response.headers()),
        Some(tonic::Code::Unavailable)
    );
    assert_eq!(backend.calls(), 1);
}

#[tokio::test]
async fn read_without_response_is_retried() {
    let backend = Scripted::new([Reply::ConnectionReset, Reply::Status(tonic::Code::Ok)]);
    let response = call(&backend, "GetUser").await.unwrap();
    assert_eq!(grpc_status(response.headers()), Some(tonic::Code::Ok));
    assert_eq!(backend.calls(), 2);
}

#[tokio::test]
async fn failed_connections_stop_after_the_retry_limit() {
    let backend = Scripted::new(std::iter::repeat_with(|| Reply::ConnectFails).take(5));
    let status = status_of(call(&backend, "CreateUser").await);
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(
        backend.calls(),
        1 + ResilienceSettings::default().retry_max as usize
    );
}

#[tokio::test]
async fn channel_timeout_is_a_deadline_without_retry() {
    let backend = Scripted::new([Reply::TimesOut, Reply::Status(tonic::Code::Ok)]);
    let status = status_of(call(&backend, "GetUser").await);
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    assert_eq!(backend.calls(), 1);
}

#[tokio::test]
async fn spent_request_budget_leaves_the_breaker_closed() {
    let backend = Scripted::new([Reply::Slow, Reply::Slow, Reply::Status(tonic::Code::Ok)]);
    let layer = resilient_opening_after(&backend, 2);
    for _ in 0..2 {
        let status = status_within(&layer, 20).await;
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    }

    // Two failures would open the breaker; these were the client's budget.
    assert_eq!(code_of(&layer, "GetUser").await, Some(tonic::Code::Ok));
    assert_eq!(backend.calls(), 3);
}

#[tokio::test]
async fn budget_bound_probe_timeout_keeps_half_open() {
    let backend = Scripted::new([Reply::TimesOut, Reply::Slow, Reply::Status(tonic::Code::Ok)]);
    let layer = resilient_cooling(&backend, 1, Duration::from_millis(50));
    let result = call_through(&layer, "GetUser").await;
    assert_eq!(status_of(result).code(), tonic::Code::DeadlineExceeded);
    tokio::time::sleep(Duration::from_millis(60)).await;

    // The probe meets a request with 20 ms left, which shows nothing about
    // the backend, so the next call probes again instead of failing fast.
    let status = status_within(&layer, 20).await;
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    assert_eq!(code_of(&layer, "GetUser").await, Some(tonic::Code::Ok));
    assert_eq!(backend.calls(), 3);
}

#[tokio::test]
async fn dependency_outage_keeps_breaker_closed() {
    let backend = Scripted::new([
        Reply::DependencyUnavailable,
        Reply::DependencyUnavailable,
        Reply::Status(tonic::Code::Ok),
    ]);
    let layer = resilient_opening_after(&backend, 2);
    for _ in 0..2 {
        // A read, so a plain UNAVAILABLE would also have been retried.
        let code = code_of(&layer, "GetOrder").await;
        assert_eq!(code, Some(tonic::Code::Unavailable));
    }
    assert_eq!(code_of(&layer, "GetOrder").await, Some(tonic::Code::Ok));
    assert_eq!(backend.calls(), 3);
}

#[tokio::test]
async fn budget_over_half_the_timeout_still_counts() {
    let backend = Scripted::new([Reply::Slow, Reply::Slow]);
    let layer = resilient_opening_after(&backend, 2);
    for _ in 0..2 {
        // The layer's call timeout is 1 s, so 600 ms is more than half.
        let status = status_within(&layer, 600).await;
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    }

    let status = status_of(call_through(&layer, "GetUser").await);
    assert!(
        status.message().contains("circuit is open"),
        "{}",
        status.message()
    );
    assert_eq!(backend.calls(), 2);
}

#[tokio::test]
async fn backend_timeouts_open_the_breaker() {
    let backend = Scripted::new([Reply::TimesOut, Reply::TimesOut]);
    let layer = resilient_opening_after(&backend, 2);
    for _ in 0..2 {
        let result = call_through(&layer, "GetUser").await;
        assert_eq!(status_of(result).code(), tonic::Code::DeadlineExceeded);
    }

    let status = status_of(call_through(&layer, "GetUser").await);
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(
        status.message().contains("circuit is open"),
        "{}",
        status.message()
    );
    assert_eq!(backend.calls(), 2);
}

#[test]
fn connection_failure_is_found_under_other_errors() {
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    let connect = tonic::ConnectError(Box::new(refused));
    let mut status = tonic::Status::unavailable("127.0.0.1:1: tcp connect error");
    status.set_source(Arc::new(connect));
    assert!(connection_failed(&status));

    let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    assert!(!connection_failed(&reset));
}
