//! The Loki client against a test push endpoint: lines arrive with three
//! labels, and every line that cannot be delivered is counted by reason.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use lintas_telemetry::loki::{self, DropReason, LokiMetrics, LokiSettings};
use lintas_telemetry::testing::LokiReceiver;
use tokio::net::TcpListener;
use tracing_subscriber::layer::SubscriberExt;

fn settings(url: &str) -> LokiSettings {
    let mut settings = LokiSettings::new(
        url.parse().unwrap(),
        "user-svc".to_owned(),
        "test".to_owned(),
    );
    settings.retry_delays = vec![Duration::from_millis(10), Duration::from_millis(10)];
    settings.request_timeout = Duration::from_secs(2);
    settings
}

/// Runs `log` with a subscriber that holds only the Loki layer.
fn with_layer(layer: lintas_telemetry::JsonLines, log: impl FnOnce()) {
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, log);
}

/// Polls `done` every 20 ms for at most five seconds.
async fn eventually(done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

/// Starts a push endpoint that responds `status` to every request and counts them.
async fn answering(status: StatusCode) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    let app = axum::Router::new().route(
        "/loki/api/v1/push",
        axum::routing::post(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async move { status }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_sends_lines_with_three_labels() {
    let receiver = LokiReceiver::start().await;
    let metrics = LokiMetrics::new();
    let (layer, client) = loki::start(settings(&receiver.url), metrics.clone()).unwrap();
    with_layer(layer, || {
        for order in 0..5 {
            tracing::info!(order, "order created");
        }
        tracing::warn!("payment declined");
    });
    client.shutdown().await;

    let lines = receiver.lines();
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert_eq!(metrics.sent.get(), 6);
    for line in &lines {
        let names: Vec<&str> = line.labels.keys().map(String::as_str).collect();
        assert_eq!(names, ["environment", "level", "service"]);
        assert_eq!(line.labels["service"], "user-svc");
        assert_eq!(line.labels["environment"], "test");
        let body: serde_json::Value = serde_json::from_str(&line.line).unwrap();
        assert_eq!(body["service"], "user-svc");
    }
    let warning = lines
        .iter()
        .find(|line| line.line.contains("payment declined"))
        .unwrap();
    assert_eq!(warning.labels["level"], "warn");
    assert!(lines.iter().any(|line| line.line.contains("\"order\":4")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_within_batch_wait_share_push() {
    let (url, requests) = answering(StatusCode::NO_CONTENT).await;
    let mut settings = settings(&url);
    settings.batch_wait = Duration::from_millis(500);
    let metrics = LokiMetrics::new();
    let (layer, client) = loki::start(settings, metrics.clone()).unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));

    for part in 0..3 {
        tracing::dispatcher::with_default(&dispatch, || tracing::info!(part, "spread out"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert!(
        eventually(|| metrics.sent.get() == 3).await,
        "sent {}",
        metrics.sent.get()
    );
    assert_eq!(requests.load(Ordering::SeqCst), 1);
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_batch_goes_before_batch_wait() {
    let (url, requests) = answering(StatusCode::NO_CONTENT).await;
    let mut settings = settings(&url);
    settings.batch_wait = Duration::from_secs(60);
    settings.batch_lines = 3;
    let metrics = LokiMetrics::new();
    let (layer, client) = loki::start(settings, metrics.clone()).unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));

    for part in 0..7 {
        tracing::dispatcher::with_default(&dispatch, || tracing::info!(part, "batched"));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Two full batches go at once; the seventh line waits for the minute.
    assert!(
        eventually(|| metrics.sent.get() == 6).await,
        "sent {}",
        metrics.sent.get()
    );
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_drops_and_counts_lines() {
    // A Loki that accepts connections and never responds keeps the first
    // batch in flight, so the queue fills up.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let mut settings = settings(&url);
    settings.queue_capacity = 4;
    settings.batch_lines = 1;
    settings.request_timeout = Duration::from_secs(30);
    let metrics = LokiMetrics::new();
    let (layer, client) = loki::start(settings, metrics.clone()).unwrap();

    with_layer(layer, || {
        for line in 0..50 {
            tracing::info!(line, "queued or dropped");
        }
    });

    let dropped = metrics.dropped(DropReason::QueueFull);
    assert!((45..=46).contains(&dropped), "dropped {dropped} of 50");
    assert_eq!(metrics.sent.get(), 0);
    drop(client);
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_push_retries_then_drops() {
    let (url, requests) = answering(StatusCode::SERVICE_UNAVAILABLE).await;
    let metrics = LokiMetrics::new();
    let (layer, client) = loki::start(settings(&url), metrics.clone()).unwrap();
    with_layer(layer, || {
        for line in 0..3 {
            tracing::info!(line, "lost line");
        }
    });

    let counted = eventually(|| metrics.dropped(DropReason::SendFailed) > 0).await;
    assert!(counted, "no line was counted as dropped");
    client.shutdown().await;
    // Each batch is tried once and retried twice. The three lines form one
    // to three batches, depending on when the sender wakes up.
    let requests = requests.load(Ordering::SeqCst);
    assert_eq!(requests % 3, 0, "{requests} requests");
    assert!((3..=9).contains(&requests), "{requests} requests");
    assert_eq!(metrics.dropped(DropReason::SendFailed), 3);
    assert_eq!(metrics.sent.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_batch_is_not_retried() {
    let (url, requests) = answering(StatusCode::BAD_REQUEST).await;
    let metrics = LokiMetrics::new();
    let (layer, client) = loki::start(settings(&url), metrics.clone()).unwrap();
    with_layer(layer, || tracing::info!("refused line"));

    let counted = eventually(|| metrics.dropped(DropReason::Rejected) == 1).await;
    assert!(counted, "the refused line was not counted");
    client.shutdown().await;
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_every_queued_line() {
    let receiver = LokiReceiver::start().await;
    let metrics = LokiMetrics::new();
    let mut settings = settings(&receiver.url);
    settings.batch_lines = 7;
    let (layer, client) = loki::start(settings, metrics.clone()).unwrap();
    with_layer(layer, || {
        for line in 0..100 {
            tracing::info!(line, "line before shutdown");
        }
    });
    client.shutdown().await;

    assert_eq!(receiver.lines().len(), 100);
    assert_eq!(metrics.sent.get(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_then_lines_are_dropped() {
    let receiver = LokiReceiver::start().await;
    let metrics = LokiMetrics::new();
    let (layer, client) = loki::start(settings(&receiver.url), metrics.clone()).unwrap();
    client.shutdown().await;
    with_layer(layer, || tracing::info!("too late"));

    assert_eq!(metrics.dropped(DropReason::Stopped), 1);
    assert!(receiver.lines().is_empty());
}
