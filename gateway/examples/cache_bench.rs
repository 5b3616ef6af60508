//! Throughput and latency of `GET /api/v1/users/{id}` through the gateway
//! with the user cache in Redis, in memory and off, and of `GetUser` called
//! on the user service directly, side by side in one run.
//!
//! ```sh
//! cargo run --release -p gateway --example cache_bench
//! ```
//!
//! Everything runs in this process on 127.0.0.1: one user service on SQLite
//! in a temporary folder, and one gateway per cache mode. The load
//! generator shares the same cores, so the numbers compare the modes with
//! each other; they are not the capacity of a deployment. The Redis row uses
//! `REDIS_URL` (default `redis://127.0.0.1:6379`) and is skipped when that
//! Redis does not respond. `BENCH_SECONDS` sets the measured time per row
//! (default 5).

use std::future::Future;
use std::time::{Duration, Instant};

use lintas_proto::user::v1 as user_pb;
use lintas_proto::user::v1::user_service_client::UserServiceClient;
use tokio::net::TcpListener;
use tonic::transport::Channel;

/// Requests in flight at once, one per client task.
const CONCURRENCY: usize = 16;
/// Users the requests are spread over. All of them fit in the cache.
const USERS: usize = 100;
/// Unmeasured load before each row, so connections and caches are warm.
const WARM_UP: Duration = Duration::from_millis(500);

/// Result of one row.
struct Report {
    name: &'static str,
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = match std::env::var("BENCH_SECONDS") {
        Ok(value) => value.parse()?,
        Err(_) => 5,
    };
    let measured = Duration::from_secs(seconds);
    let redis_url =
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());

    let data = tempfile::tempdir()?;
    let user_url = start_user_service(&data).await?;
    let channel = Channel::from_shared(user_url.clone())?.connect().await?;
    let grpc = UserServiceClient::new(channel);
    let ids = create_users(grpc.clone()).await?;

    let mut gateways = Vec::new();
    if redis_responds(&redis_url).await {
        let settings = gateway::CacheSettings {
            redis_url: Some(redis_url.clone()),
            key_prefix: format!("lintas-bench-{}", uuid::Uuid::new_v4()),
            ..gateway::CacheSettings::default()
        };
        gateways.push(("GET /users/{id}, Redis cache", settings));
    } else {
        println!("No Redis responds at {redis_url}: skipping the Redis row.");
    }
    gateways.push((
        "GET /users/{id}, in-process cache",
        gateway::CacheSettings::default(),
    ));
    gateways.push((
        "GET /users/{id}, cache off",
        gateway::CacheSettings {
            enabled: false,
            ..gateway::CacheSettings::default()
        },
    ));

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()?;
    let mut reports = Vec::new();
    let mut backend_calls = Vec::new();
    for (name, cache) in gateways {
        let base = start_gateway(&user_url, cache).await?;
        let urls: Vec<String> = ids
            .iter()
            .map(|id| format!("{base}/api/v1/users/{id}"))
            .collect();
        let client = http.clone();
        let report = measure(name, measured, move |index| {
            let request = client.get(&urls[index % urls.len()]);
            async move {
                match request.send().await {
                    Ok(response) if response.status().is_success() => {
                        response.bytes().await.is_ok()
                    }
                    _ => false,
                }
            }
        })
        .await;
        reports.push(report);
        backend_calls.push((name, get_user_calls(&http, &base).await?));
    }

    let report = measure("gRPC GetUser, direct", measured, move |index| {
        let mut client = grpc.clone();
        let id = ids[index % ids.len()].clone();
        async move {
            client
                .get_user(user_pb::GetUserRequest { id })
                .await
                .is_ok()
        }
    })
    .await;
    reports.push(report);

    print_reports(&reports, measured);
    println!();
    for (name, calls) in backend_calls {
        println!("{name}: {calls} GetUser calls from the gateway");
    }
    Ok(())
}

async fn start_user_service(data: &tempfile::TempDir) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let database_url = format!("sqlite://{}", data.path().join("users.db").display());
    let settings = user_svc::Settings::new(database_url);
    tokio::spawn(user_svc::serve(listener, settings, std::future::pending()));
    Ok(url)
}

/// Starts a gateway with no order service behind it, because user lookups
/// never call one. Its order service URL names loopback port 9, where no
/// order service runs.
async fn start_gateway(user_url: &str, cache: gateway::CacheSettings) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let mut settings = gateway::Settings::with_backends(user_url, "http://127.0.0.1:9");
    settings.cache = cache;
    tokio::spawn(gateway::serve(listener, settings, std::future::pending()));
    Ok(base)
}

/// Creates the users, retrying while the user service starts.
async fn create_users(client: UserServiceClient<Channel>) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(USERS);
    for index in 0..USERS {
        let request = user_pb::CreateUserRequest {
            name: format!("Bench User {index}"),
            email: format!("bench{index}@example.com"),
            ..Default::default()
        };
        let mut attempts = 0;
        let user = loop {
            match client.clone().create_user(request.clone()).await {
                Ok(response) => break response.into_inner().user.unwrap_or_default(),
                Err(status) if attempts < 50 => {
                    attempts += 1;
                    tracing::debug!(%status, "user service not ready yet");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(status) => anyhow::bail!("failed to create a user: {status}"),
            }
        };
        ids.push(user.id);
    }
    Ok(ids)
}

async fn redis_responds(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let ping = async {
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), ping).await,
        Ok(Ok(_))
    )
}

/// Runs `operation` from [`CONCURRENCY`] tasks for [`WARM_UP`], then again
/// for `duration` while recording each call's latency. `operation` gets a
/// running index and returns whether the call succeeded.
async fn measure<F, Fut>(name: &'static str, duration: Duration, operation: F) -> Report
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    run_tasks(WARM_UP, operation.clone()).await;
    let started = Instant::now();
    let results = run_tasks(duration, operation).await;
    let elapsed = started.elapsed();

    let mut latencies = Vec::new();
    let mut errors = 0;
    for (task_latencies, task_errors) in results {
        latencies.extend(task_latencies);
        errors += task_errors;
    }
    latencies.sort_unstable();
    Report {
        name,
        latencies,
        errors,
        elapsed,
    }
}

/// Returns each task's latencies of successful calls and its error count.
async fn run_tasks<F, Fut>(duration: Duration, operation: F) -> Vec<(Vec<Duration>, usize)>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let deadline = Instant::now() + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..CONCURRENCY {
        let operation = operation.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            // Tasks start at different users so they do not move in step.
            let mut index = task * 7;
            while Instant::now() < deadline {
                let started = Instant::now();
                if operation(index).await {
                    latencies.push(started.elapsed());
                } else {
                    errors += 1;
                }
                index += 1;
            }
            (latencies, errors)
        });
    }
    tasks.join_all().await
}

async fn get_user_calls(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let prefix = "gateway_backend_calls_total{method=\"user.v1.UserService/GetUser\"}";
    Ok(text
        .lines()
        .find_map(|line| line.strip_prefix(prefix))
        .map_or("0".to_owned(), |count| count.trim().to_owned()))
}

fn print_reports(reports: &[Report], measured: Duration) {
    let cores = std::thread::available_parallelism().map_or(0, |cores| cores.get());
    println!(
        "{CONCURRENCY} concurrent clients, {} s per row, {USERS} users, \
         one process on 127.0.0.1, {cores} cores",
        measured.as_secs()
    );
    println!(
        "{:<36} {:>9} {:>9} {:>8} {:>8} {:>8} {:>7}",
        "row", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"
    );
    for report in reports {
        let requests = report.latencies.len();
        println!(
            "{:<36} {:>9} {:>9.0} {:>8.3} {:>8.3} {:>8.3} {:>7}",
            report.name,
            requests,
            requests as f64 / report.elapsed.as_secs_f64(),
            percentile(&report.latencies, 0.50),
            percentile(&report.latencies, 0.95),
            percentile(&report.latencies, 0.99),
            report.errors,
        );
    }
}

/// Returns the `quantile` of sorted `latencies` in milliseconds, by the
/// nearest-rank method.
fn percentile(latencies: &[Duration], quantile: f64) -> f64 {
    if latencies.is_empty() {
        return f64::NAN;
    }
    let rank = (quantile * latencies.len() as f64).ceil() as usize;
    latencies[rank.clamp(1, latencies.len()) - 1].as_secs_f64() * 1000.0
}
