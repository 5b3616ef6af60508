//! Log lines pushed to Loki.
//!
//! [`JsonLines`] formats each event as the same JSON line that stdout gets
//! and puts it on a bounded queue without waiting. A background task
//! batches the queue and posts it to Loki's push API as snappy-compressed
//! protobuf. A full queue or a Loki that cannot be reached never slows a
//! request down: the line is dropped and counted in
//! `loki_lines_dropped_total`.
//!
//! Streams carry three labels only (`service`, `environment`, `level`), so
//! the trace id stays in the line, where LogQL's `json` parser finds it.

mod push;

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Level;

use crate::log_layer::JsonLines;

/// Settings of the Loki client: endpoint, labels, queue and retries.
#[derive(Debug, Clone)]
pub struct LokiSettings {
    /// Loki's base URL; lines go to `loki/api/v1/push` below it.
    pub url: url::Url,
    pub service: String,
    pub environment: String,
    /// Lines waiting to be sent; past this, new lines are dropped.
    pub queue_capacity: usize,
    /// Maximum lines in one push request.
    pub batch_lines: usize,
    /// How long a push waits for more lines after its first, unless the
    /// batch fills sooner.
    pub batch_wait: Duration,
    /// Pauses before each retry of a failed push; the batch is dropped after
    /// the last one.
    pub retry_delays: Vec<Duration>,
    /// Time limit of one push request.
    pub request_timeout: Duration,
}

impl LokiSettings {
    /// Defaults sized for a service logging a few thousand lines a second.
    pub fn new(url: url::Url, service: String, environment: String) -> Self {
        Self {
            url,
            service,
            environment,
            queue_capacity: 10_000,
            batch_lines: 1_000,
            // Without a wait, a push at full load carried a few lines, so
            // the gateway and Loki paid for an HTTP request every few lines.
            batch_wait: Duration::from_millis(100),
            retry_delays: vec![
                Duration::from_millis(250),
                Duration::from_secs(1),
                Duration::from_secs(4),
            ],
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// Counters of what happened to the lines given to the Loki client.
#[derive(Clone)]
pub struct LokiMetrics {
    pub sent: IntCounter,
    pub dropped: IntCounterVec,
}

/// Cause of a dropped line, exported as the `reason` label.
#[derive(Debug, Clone, Copy)]
pub enum DropReason {
    /// The queue was full.
    QueueFull,
    /// Every attempt to push the line's batch failed.
    SendFailed,
    /// Loki rejected the batch as invalid, so it was not retried.
    Rejected,
    /// The client had already stopped.
    Stopped,
}

impl DropReason {
    const ALL: [Self; 4] = [
        Self::QueueFull,
        Self::SendFailed,
        Self::Rejected,
        Self::Stopped,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::SendFailed => "send_failed",
            Self::Rejected => "rejected",
            Self::Stopped => "stopped",
        }
    }
}

impl LokiMetrics {
    pub fn new() -> Self {
        let metrics = Self {
            sent: IntCounter::new("loki_lines_sent_total", "Log lines that Loki accepted.")
                .expect("metric definition is valid"),
            dropped: IntCounterVec::new(
                Opts::new(
                    "loki_lines_dropped_total",
                    "Log lines never delivered to Loki, by reason.",
                ),
                &["reason"],
            )
            .expect("metric definition is valid"),
        };
        // Every reason is exported from the start, so that rates and
        // alerts see the first drop as an increase from zero.
        for reason in DropReason::ALL {
            metrics.dropped.with_label_values(&[reason.label()]);
        }
        metrics
    }

    /// Returns the counters of the process's own Loki client.
    pub fn global() -> &'static Self {
        static GLOBAL: LazyLock<LokiMetrics> = LazyLock::new(LokiMetrics::new);
        &GLOBAL
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.with_label_values(&[reason.label()]).get()
    }

    fn count_dropped(&self, reason: DropReason, lines: usize) {
        self.dropped
            .with_label_values(&[reason.label()])
            .inc_by(lines as u64);
    }

    /// Adds the counters to `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.sent.clone()))?;
        registry.register(Box::new(self.dropped.clone()))
    }
}

impl Default for LokiMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// One queued log line.
struct Line {
    level: Level,
    timestamp: SystemTime,
    text: String,
}

/// The sending end of the queue of lines for Loki.
pub(crate) struct LokiQueue {
    sender: mpsc::Sender<Line>,
    metrics: LokiMetrics,
}

impl LokiQueue {
    /// Queues one formatted line without waiting; a full queue drops it
    /// and counts the drop.
    pub(crate) fn push(&self, level: Level, text: String) {
        let line = Line {
            level,
            timestamp: SystemTime::now(),
            text,
        };
        match self.sender.try_send(line) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.count_dropped(DropReason::QueueFull, 1);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.metrics.count_dropped(DropReason::Stopped, 1);
            }
        }
    }
}

/// Stops the background task; see [`LokiClient::shutdown`].
pub struct LokiClient {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl LokiClient {
    /// Sends the lines still queued, once each, and stops the task. The
    /// caller bounds how long it waits.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Loki's push URL below `base`. A base path without a trailing slash is a
/// folder too, so `http://proxy/loki` pushes to
/// `http://proxy/loki/loki/api/v1/push`. A plain join would replace its
/// last segment. The base's query string, such as a proxy's tenant
/// parameter, stays on the push URL; a join would drop it.
fn push_endpoint(base: &url::Url) -> Result<url::Url, url::ParseError> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        let folder = format!("{}/", base.path());
        base.set_path(&folder);
    }
    let mut endpoint = base.join("loki/api/v1/push")?;
    endpoint.set_query(base.query());
    Ok(endpoint)
}

/// Starts the background task and returns the layer that feeds it, which
/// writes to no other output. Must run inside a Tokio runtime.
pub fn start(
    settings: LokiSettings,
    metrics: LokiMetrics,
) -> anyhow::Result<(JsonLines, LokiClient)> {
    let endpoint = push_endpoint(&settings.url).context("invalid LOKI_URL")?;
    let http = reqwest::Client::builder()
        .timeout(settings.request_timeout)
        .build()
        .context("failed to create the Loki HTTP client")?;
    let (sender, receiver) = mpsc::channel(settings.queue_capacity.max(1));
    let (stop, stopped) = watch::channel(false);
    let pusher = push::Pusher {
        http,
        endpoint,
        service: settings.service.clone(),
        environment: settings.environment,
        batch_lines: settings.batch_lines.max(1),
        batch_wait: settings.batch_wait,
        retry_delays: settings.retry_delays,
        metrics: metrics.clone(),
    };
    let task = tokio::spawn(pusher.run(receiver, stopped));
    let layer = JsonLines::new(settings.service).with_loki(LokiQueue { sender, metrics });
    Ok((layer, LokiClient { stop, task }))
}

#[cfg(test)]
mod tests {
    use super::push_endpoint;

    #[test]
    fn push_endpoint_keeps_the_base_path() {
        for (base, expected) in [
            ("http://loki:3100", "http://loki:3100/loki/api/v1/push"),
            ("http://loki:3100/", "http://loki:3100/loki/api/v1/push"),
            (
                "http://proxy/tenant",
                "http://proxy/tenant/loki/api/v1/push",
            ),
            (
                "http://proxy/tenant/",
                "http://proxy/tenant/loki/api/v1/push",
            ),
            (
                "http://proxy/tenant?org=a&x=1",
                "http://proxy/tenant/loki/api/v1/push?org=a&x=1",
            ),
        ] {
            let base = url::Url::parse(base).unwrap();
            assert_eq!(push_endpoint(&base).unwrap().as_str(), expected, "{base}");
        }
    }
}
