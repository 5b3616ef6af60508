//! The background task that posts queued lines to Loki's push API.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use loki_api::logproto::{EntryAdapter, PushRequest, StreamAdapter};
use loki_api::prost::Message as _;
use loki_api::prost_types::Timestamp;
use tokio::sync::{mpsc, watch};
use tracing::Level;

use super::{DropReason, Line, LokiMetrics};

/// Interval at which a batch that is not yet full takes the newly queued
/// lines. A full batch waits at most this long before it is sent.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

pub(super) struct Pusher {
    pub http: reqwest::Client,
    pub endpoint: url::Url,
    pub service: String,
    pub environment: String,
    pub batch_lines: usize,
    pub batch_wait: Duration,
    pub retry_delays: Vec<Duration>,
    pub metrics: LokiMetrics,
}

/// Failure of one push request.
enum PushError {
    /// Worth a retry: no response, a timeout, 429 or a 5xx.
    Transient(String),
    /// Loki refused the batch itself (another 4xx); a retry would fail too.
    Rejected(String),
}

impl Pusher {
    /// Sends batches until `stop` turns true, then sends what is still
    /// queued, each batch once.
    pub(super) async fn run(
        self,
        mut queue: mpsc::Receiver<Line>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut state = Health::default();
        loop {
            let first = tokio::select! {
                biased;
                _ = stop.wait_for(|stop| *stop) => break,
                line = queue.recv() => line,
            };
            let Some(first) = first else { break };
            let batch = self.gather(first, &mut queue, &mut stop).await;
            self.deliver(batch, &mut stop, &mut state).await;
        }
        queue.close();
        while let Ok(first) = queue.try_recv() {
            let batch = self.fill(first, &mut queue);
            self.deliver(batch, &mut stop, &mut state).await;
        }
    }

    /// Takes `first` and the lines queued within `batch_wait` after it, up
    /// to a batch. Stops waiting when `stop` turns true or the queue closes.
    ///
    /// It checks the queue every [`POLL_INTERVAL`] instead of waiting on it.
    /// A task that waits on the queue is woken by every line, which costs
    /// the logging thread a system call and this thread a context switch.
    async fn gather(
        &self,
        first: Line,
        queue: &mut mpsc::Receiver<Line>,
        stop: &mut watch::Receiver<bool>,
    ) -> Vec<Line> {
        let mut batch = self.fill(first, queue);
        let deadline = tokio::time::Instant::now() + self.batch_wait;
        while batch.len() < self.batch_lines {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            let wake = deadline.min(now + POLL_INTERVAL);
            tokio::select! {
                biased;
                _ = stop.wait_for(|stop| *stop) => break,
                () = tokio::time::sleep_until(wake) => {}
            }
            if !self.take_queued(&mut batch, queue) {
                break;
            }
        }
        batch
    }

    /// Moves queued lines into `batch` up to its size without waiting.
    /// Returns false once the queue is closed and empty.
    fn take_queued(&self, batch: &mut Vec<Line>, queue: &mut mpsc::Receiver<Line>) -> bool {
        while batch.len() < self.batch_lines {
            match queue.try_recv() {
                Ok(line) => batch.push(line),
                Err(mpsc::error::TryRecvError::Empty) => return true,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
        true
    }

    /// Takes `first` and whatever else is queued, up to a batch.
    fn fill(&self, first: Line, queue: &mut mpsc::Receiver<Line>) -> Vec<Line> {
        let mut batch = vec![first];
        self.take_queued(&mut batch, queue);
        batch
    }

    /// Pushes one batch, retrying transient failures after each of the
    /// configured pauses; once stopping, a failure is not retried.
    async fn deliver(
        &self,
        batch: Vec<Line>,
        stop: &mut watch::Receiver<bool>,
        state: &mut Health,
    ) {
        let lines = batch.len();
        let body = self.encode(batch);
        let mut delays = self.retry_delays.iter();
        loop {
            let error = match self.post(body.clone()).await {
                Ok(()) => {
                    self.metrics.sent.inc_by(lines as u64);
                    state.recovered();
                    return;
                }
                Err(PushError::Rejected(reason)) => {
                    self.metrics.count_dropped(DropReason::Rejected, lines);
                    tracing::warn!(lines, %reason, "Loki rejected a batch of log lines");
                    return;
                }
                Err(PushError::Transient(reason)) => reason,
            };
            let delay = if *stop.borrow() { None } else { delays.next() };
            let Some(delay) = delay else {
                self.metrics.count_dropped(DropReason::SendFailed, lines);
                state.failed(&error, lines);
                return;
            };
            tokio::select! {
                () = tokio::time::sleep(*delay) => {}
                _ = stop.wait_for(|stop| *stop) => {}
            }
        }
    }

    async fn post(&self, body: Vec<u8>) -> Result<(), PushError> {
        let response = self
            .http
            .post(self.endpoint.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .body(body)
            .send()
            .await
            .map_err(|error| PushError::Transient(error.to_string()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            Err(PushError::Transient(format!("Loki responded {status}")))
        } else {
            let text = response.text().await.unwrap_or_default();
            Err(PushError::Rejected(format!(
                "Loki responded {status}: {}",
                text.chars().take(200).collect::<String>()
            )))
        }
    }

    /// Groups the lines into one stream per level and compresses the
    /// protobuf request with snappy, as the push API expects.
    fn encode(&self, batch: Vec<Line>) -> Vec<u8> {
        let mut streams: Vec<(Level, StreamAdapter)> = Vec::new();
        for line in batch {
            let entry = EntryAdapter {
                timestamp: Some(timestamp(line.timestamp)),
                line: line.text,
            };
            match streams.iter_mut().find(|(level, _)| *level == line.level) {
                Some((_, stream)) => stream.entries.push(entry),
                None => streams.push((
                    line.level,
                    StreamAdapter {
                        labels: self.labels(line.level),
                        entries: vec![entry],
                        hash: 0,
                    },
                )),
            }
        }
        let request = PushRequest {
            streams: streams.into_iter().map(|(_, stream)| stream).collect(),
        };
        snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .expect("snappy compresses any input below 4 GiB")
    }

    fn labels(&self, level: Level) -> String {
        format!(
            "{{environment=\"{}\",level=\"{}\",service=\"{}\"}}",
            escape(&self.environment),
            level.as_str().to_ascii_lowercase(),
            escape(&self.service)
        )
    }
}

/// Logs the first failure of a run of failures and the recovery after it,
/// rather than one line per failed batch.
#[derive(Default)]
struct Health {
    failing: bool,
}

impl Health {
    fn failed(&mut self, error: &str, lines: usize) {
        if !self.failing {
            self.failing = true;
            tracing::warn!(
                %error,
                lines,
                "cannot push log lines to Loki; dropping them until it answers again"
            );
        }
    }

    fn recovered(&mut self) {
        if self.failing {
            self.failing = false;
            tracing::info!("Loki accepts log lines again");
        }
    }
}

fn timestamp(time: SystemTime) -> Timestamp {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since_epoch.subsec_nanos()).unwrap_or(0),
    }
}

/// Escapes a label value for Loki's label syntax.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}
