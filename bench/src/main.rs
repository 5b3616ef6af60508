//! The platform benchmark of Lintas.
//!
//! Starts PostgreSQL, Redis, the two services and four gateway processes
//! (cache on, cache off, telemetry off, and one for many connections) as in
//! production. Seeds users and orders through the gRPC APIs and warms the
//! cache. Then runs each scenario at a fixed concurrency for a fixed time:
//! wrk for the HTTP scenarios and a tonic client for the direct gRPC
//! baseline. Prints a table with throughput, latency, errors, gateway CPU
//! and peak memory, and the ratios against their targets, and writes them to
//! `BENCHMARKS.md`. `bench/run.sh` (`make bench`) builds and runs it.

mod load;
mod platform;
mod procstat;
mod report;
mod scenarios;
mod seed;
mod sink;
mod span_counter;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use tokio::task::JoinSet;

use crate::platform::{BenchPlatform, GatewayKind};
use crate::scenarios::{Load, Outcome};

/// Platform benchmark: starts the platform on loopback and measures it.
#[derive(Debug, Parser)]
struct Args {
    /// Root of the Lintas repository.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/.."))]
    repository: PathBuf,

    /// Folder with optimised builds of gateway, user-svc and order-svc
    /// [default: production under CARGO_TARGET_DIR, else
    /// REPOSITORY/target/production].
    #[arg(long)]
    bin_dir: Option<PathBuf>,

    /// Users to seed.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    users: u32,

    /// Orders to seed, each for a random user.
    #[arg(long, default_value_t = 100_000)]
    orders: u32,

    /// Seconds each scenario is measured.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=600))]
    duration_secs: u64,

    /// Seconds of load before each measurement, not counted.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=60))]
    warmup_secs: u64,

    /// Concurrent connections (or gRPC callers) of the scenarios.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    connections: u32,

    /// Connections of the many-connections scenario.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    many_connections: u32,

    /// wrk threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    threads: u32,

    /// File whose generated section receives the results.
    #[arg(long, default_value = "BENCHMARKS.md")]
    output: PathBuf,

    /// Print the results without writing them to the output file.
    #[arg(long)]
    no_write: bool,

    /// The command to record in the report [default: the driver's arguments].
    #[arg(long, env = "BENCH_COMMAND")]
    command: Option<String>,

    /// Run only these scenarios, by key: grpc-direct, rest-uncached,
    /// rest-cached, graphql-user, graphql-page, create-order,
    /// rest-cached-untraced, rest-cached-many. Writes nothing.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,

    /// Check that every scenario runs, on a small data set for one second
    /// each: fails on any error or a scenario without a completed request,
    /// and writes nothing.
    #[arg(long)]
    smoke: bool,
}

impl Args {
    /// Applies the settings that `--smoke` and `--only` imply.
    fn resolved(mut self) -> Self {
        if !self.only.is_empty() {
            self.no_write = true;
        }
        if self.smoke {
            self.users = 100;
            self.orders = 500;
            self.duration_secs = 1;
            self.warmup_secs = 1;
            self.connections = self.connections.min(16);
            self.many_connections = 100;
            self.no_write = true;
        }
        self
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse().resolved()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("benchmark failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(unknown) = args.only.iter().find(|key| {
        !scenarios::ALL
            .iter()
            .any(|scenario| scenario.key == key.as_str())
    }) {
        bail!("unknown scenario {unknown:?} in --only");
    }
    let repository = args
        .repository
        .canonicalize()
        .with_context(|| format!("repository {} not found", args.repository.display()))?;
    let bin_dir = args
        .bin_dir
        .clone()
        .unwrap_or_else(|| lintas_e2e::platform::profile_dir(&repository, "production"));
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        .to_string();
    let artifacts = repository.join("target/bench-artifacts").join(run_id);
    std::fs::create_dir_all(&artifacts)?;
    println!("==> artifacts in {}", artifacts.display());

    println!("==> starting the platform");
    let platform = BenchPlatform::start(&bin_dir, &artifacts).await?;
    let result = tokio::select! {
        result = measure(&args, &repository, &artifacts, &platform) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    println!("==> stopping the platform");
    platform.stop().await;
    result
}

async fn measure(
    args: &Args,
    repository: &Path,
    artifacts: &Path,
    platform: &BenchPlatform,
) -> anyhow::Result<()> {
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    println!(
        "==> seeding {} users and {} orders",
        args.users, args.orders
    );
    let ids = seed::users(&platform.user_address, args.users as usize, &tag).await?;
    seed::orders(&platform.order_address, &ids, args.orders as usize).await?;
    // Autovacuum collects statistics only a minute or more after the seed,
    // and without them PostgreSQL scans every order for each page.
    println!("==> analyzing the databases");
    for database in ["lintas_users", "lintas_orders"] {
        platform.postgres.analyze(database, artifacts).await?;
    }
    let ids_file = artifacts.join("user-ids.txt");
    std::fs::write(&ids_file, ids.join("\n") + "\n")?;

    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    println!("==> warming the cache with every user");
    warm_cache(
        &http,
        &platform.gateway(GatewayKind::Cached).address,
        &platform.tokens.admin,
        &ids,
    )
    .await?;

    let load = Load {
        script: &repository.join("bench/lua/scenario.lua"),
        ids_file: &ids_file,
        ids: ids.into(),
        connections: args.connections as usize,
        many_connections: args.many_connections as usize,
        threads: args.threads as usize,
        warmup: Duration::from_secs(args.warmup_secs),
        duration: Duration::from_secs(args.duration_secs),
    };
    let selected: Vec<&scenarios::Scenario> = scenarios::ALL
        .iter()
        .filter(|scenario| args.only.is_empty() || args.only.iter().any(|key| key == scenario.key))
        .collect();
    let mut outcomes: Vec<Outcome> = Vec::new();
    for (index, scenario) in selected.iter().enumerate() {
        println!(
            "==> [{}/{}] {} ({} s warm-up, {} s measured)",
            index + 1,
            selected.len(),
            scenario.name,
            args.warmup_secs,
            args.duration_secs
        );
        let outcome = scenarios::run(scenario, platform, &load, &http).await?;
        let measured = &outcome.measured;
        println!(
            "    {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
            measured.per_second(),
            measured.p50_ms,
            measured.p99_ms,
            measured.errors
        );
        if args.smoke && (measured.requests == 0 || measured.errors > 0) {
            bail!(
                "{}: {} requests, {} errors; see the logs in {}",
                scenario.name,
                measured.requests,
                measured.errors,
                artifacts.display()
            );
        }
        outcomes.push(outcome);
    }

    let received = &platform.sink.received;
    let dropping = processes_dropping_spans(artifacts);
    let drops = if dropping.is_empty() {
        "No process dropped a span.".to_owned()
    } else {
        format!(
            "The span queue overflowed, so spans were dropped, in: {}.",
            dropping.join(", ")
        )
    };
    let telemetry = format!(
        "The telemetry sink received {} spans and {} MiB of compressed log pushes. {drops}",
        received.spans.load(Ordering::Relaxed),
        received.log_bytes.load(Ordering::Relaxed) / (1024 * 1024)
    );
    let context = report::RunInfo {
        machine: machine_description(),
        commit: commit(repository),
        command: args
            .command
            .clone()
            .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" ")),
        users: args.users as usize,
        orders: args.orders as usize,
        duration_secs: args.duration_secs,
        date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        telemetry: &telemetry,
    };
    let text = report::render(&outcomes, &context);
    println!("\n{text}");
    if !args.no_write {
        let output = repository.join(&args.output);
        report::write_section(&output, &text)?;
        println!("==> results written to {}", output.display());
    }
    Ok(())
}

/// Returns the names of the processes whose log shows a full span queue.
/// The OpenTelemetry SDK logs its first dropped span at once, and the count
/// only at shutdown, after the report is written.
fn processes_dropping_spans(artifacts: &Path) -> Vec<String> {
    const FIRST_DROP: &str = "BatchSpanProcessor dropped a Span";
    let Ok(entries) = std::fs::read_dir(artifacts) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
        .filter(|path| log_contains(path, FIRST_DROP))
        .filter_map(|path| Some(path.file_stem()?.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names
}

/// Returns whether a line of the log at `path` contains `text`, reading
/// one line at a time: a gateway's log has a line per request.
fn log_contains(path: &Path, text: &str) -> bool {
    use std::io::BufRead;
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    std::io::BufReader::new(file)
        .split(b'\n')
        .map_while(Result::ok)
        .any(|line| String::from_utf8_lossy(&line).contains(text))
}

/// Fetches every user once through the gateway, so that every user is cached.
async fn warm_cache(
    http: &reqwest::Client,
    address: &str,
    token: &str,
    ids: &[String],
) -> anyhow::Result<()> {
    let ids: Arc<[String]> = ids.into();
    let mut workers = JoinSet::new();
    for worker in 0..32 {
        let http = http.clone();
        let ids = ids.clone();
        let token = token.to_owned();
        let base = format!("http://{address}/api/v1/users/");
        workers.spawn(async move {
            for id in ids.iter().skip(worker).step_by(32) {
                let status = http
                    .get(format!("{base}{id}"))
                    .bearer_auth(&token)
                    .send()
                    .await?
                    .status();
                if !status.is_success() {
                    bail!("GET /api/v1/users/{id} returned {status}");
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(result) = workers.join_next().await {
        result??;
    }
    Ok(())
}

fn machine_description() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU", |(_, name)| name.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{model}, {cores} cores, {memory_gib:.0} GiB memory, Linux {}",
        kernel.trim()
    )
}

fn commit(repository: &Path) -> String {
    let repository = repository.display().to_string();
    let head = command_output("git", &["-C", &repository, "rev-parse", "--short", "HEAD"]);
    let dirty = !command_output("git", &["-C", &repository, "status", "--porcelain"]).is_empty();
    if dirty {
        format!("{head} with uncommitted changes")
    } else {
        head
    }
}

/// Returns the trimmed stdout of a command, or "unknown" when it fails.
fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}
