//! Load generators: wrk for the HTTP scenarios, and a tonic client for the
//! direct gRPC baseline, each at a fixed concurrency for a fixed time.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use lintas_proto::user::v1::GetUserRequest;
use lintas_proto::user::v1::user_service_client::UserServiceClient;
use rand::Rng;
use serde::Deserialize;
use tokio::task::JoinSet;
use tonic::transport::{Channel, Endpoint};

/// HTTP/2 connections the direct gRPC client spreads its callers over.
const GRPC_CONNECTIONS: usize = 4;

/// Figures of one load run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    pub requests: u64,
    pub seconds: f64,
    /// Failed requests: transport errors and error statuses.
    pub errors: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Measured {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.seconds.max(f64::EPSILON)
    }
}

/// The JSON line that `bench/lua/scenario.lua` prints when wrk is done.
#[derive(Debug, Deserialize)]
struct WrkLine {
    requests: u64,
    duration_us: u64,
    errors: u64,
    status_errors: u64,
    p50_us: u64,
    p95_us: u64,
    p99_us: u64,
    max_us: u64,
}

/// One wrk run against `url`.
pub struct WrkRun<'a> {
    pub script: &'a Path,
    pub url: &'a str,
    pub scenario: &'a str,
    pub ids_file: &'a Path,
    /// Bearer token that every request carries.
    pub token: &'a str,
    pub connections: usize,
    pub threads: usize,
    pub duration: Duration,
}

impl WrkRun<'_> {
    pub async fn run(&self) -> anyhow::Result<Measured> {
        let threads = self.threads.min(self.connections).max(1);
        let output = tokio::process::Command::new("wrk")
            .arg(format!("--threads={threads}"))
            .arg(format!("--connections={}", self.connections))
            .arg(format!("--duration={}s", self.duration.as_secs().max(1)))
            .arg("--timeout=10s")
            .arg(format!("--script={}", self.script.display()))
            .arg(self.url)
            .env("BENCH_SCENARIO", self.scenario)
            .env("BENCH_USER_IDS", self.ids_file)
            .env("BENCH_TOKEN", self.token)
            .output()
            .await
            .context("failed to run wrk; install it with `apt-get install wrk`")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "wrk exited with {}: {}{}",
                output.status,
                stdout,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let line = stdout
            .lines()
            .rev()
            .find(|line| line.starts_with('{'))
            .with_context(|| format!("wrk printed no result line: {stdout}"))?;
        let parsed: WrkLine = serde_json::from_str(line)
            .with_context(|| format!("invalid wrk result line {line:?}"))?;
        let ms = |micros: u64| micros as f64 / 1000.0;
        Ok(Measured {
            requests: parsed.requests,
            seconds: parsed.duration_us as f64 / 1e6,
            errors: parsed.errors + parsed.status_errors,
            p50_ms: ms(parsed.p50_us),
            p95_ms: ms(parsed.p95_us),
            p99_ms: ms(parsed.p99_us),
            max_ms: ms(parsed.max_us),
        })
    }
}

/// Calls `GetUser` directly on the user service from `callers` concurrent
/// tasks for `duration`, each with a random id from `ids`.
pub async fn grpc_get_user(
    address: &str,
    ids: Arc<[String]>,
    callers: usize,
    duration: Duration,
) -> anyhow::Result<Measured> {
    let mut channels = Vec::new();
    for _ in 0..GRPC_CONNECTIONS {
        let channel = Endpoint::from_shared(format!("http://{address}"))?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("failed to connect to user-svc at {address}"))?;
        channels.push(channel);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let mut callers_set = JoinSet::new();
    for caller in 0..callers.max(1) {
        let client = UserServiceClient::new(channels[caller % channels.len()].clone());
        callers_set.spawn(call_until(client, ids.clone(), deadline));
    }
    let mut histogram = new_histogram();
    let mut errors = 0;
    while let Some(result) = callers_set.join_next().await {
        let (caller_histogram, caller_errors) = result?;
        histogram.add(caller_histogram)?;
        errors += caller_errors;
    }
    let seconds = started.elapsed().as_secs_f64();
    let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
    Ok(Measured {
        requests: histogram.len() + errors,
        seconds,
        errors,
        p50_ms: ms(0.50),
        p95_ms: ms(0.95),
        p99_ms: ms(0.99),
        max_ms: histogram.max() as f64 / 1000.0,
    })
}

async fn call_until(
    mut client: UserServiceClient<Channel>,
    ids: Arc<[String]>,
    deadline: Instant,
) -> (Histogram<u64>, u64) {
    let mut histogram = new_histogram();
    let mut errors = 0;
    while Instant::now() < deadline {
        let id = ids[rand::rng().random_range(0..ids.len())].clone();
        let sent = Instant::now();
        match client.get_user(GetUserRequest { id }).await {
            Ok(_) => {
                let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                histogram.saturating_record(micros.max(1));
            }
            Err(_) => errors += 1,
        }
    }
    (histogram, errors)
}

/// Latencies from 1 µs to 60 s with three significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}
