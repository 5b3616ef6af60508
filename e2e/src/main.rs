//! The end-to-end suite of Lintas.
//!
//! Starts the gateway, the user service and the order service as separate
//! processes, configured as in production, with their own PostgreSQL,
//! Redis, Prometheus and Alertmanager, then checks them from outside, one
//! category at a time (see `checks`). Prints progress as it goes and a
//! summary at the end, keeps every process's log in the artifacts folder,
//! and stops everything it started, also when a check fails or the run is
//! interrupted. `e2e/run.sh` installs what is missing, builds the binaries
//! and runs this program; `make test-e2e` runs that script.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use reqwest::StatusCode;
use serde_json::json;

use lintas_e2e::platform::{Paths, Platform};
use lintas_e2e::report::Report;
use lintas_e2e::{Shared, checks};

/// Categories after start-up, in run order.
const CATEGORIES: [&str; 9] = [
    "connectivity",
    "flows",
    "auth",
    "cache",
    "observability",
    "readme",
    "browser",
    "alerting",
    "failure",
];

/// End-to-end suite: starts the platform on loopback and checks it.
#[derive(Debug, Parser)]
struct Args {
    /// Root of the Lintas repository.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/.."))]
    repository: PathBuf,

    /// Folder with the gateway, user-svc and order-svc executables
    /// [default: debug under CARGO_TARGET_DIR, else REPOSITORY/target/debug].
    #[arg(long)]
    bin_dir: Option<PathBuf>,

    /// Name of this run, used for its artifacts folder [default: the Unix time].
    #[arg(long)]
    run_id: Option<String>,

    /// Artifacts folder of this run [default: REPOSITORY/target/e2e-artifacts/RUN_ID].
    #[arg(long)]
    artifacts: Option<PathBuf>,

    /// Run only these categories after start-up, comma-separated, from:
    /// connectivity, flows, auth, cache, observability, readme, browser,
    /// alerting, failure.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("the end-to-end suite could not run: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the suite; returns whether every check passed.
async fn run(args: Args) -> anyhow::Result<bool> {
    for name in &args.only {
        anyhow::ensure!(
            CATEGORIES.contains(&name.as_str()),
            "unknown category {name:?} in --only; the categories are {CATEGORIES:?}"
        );
    }
    let repository = std::fs::canonicalize(&args.repository)
        .with_context(|| format!("repository folder {} not found", args.repository.display()))?;
    let run_id = args.run_id.unwrap_or_else(|| {
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        format!("run-{seconds}")
    });
    let artifacts = args
        .artifacts
        .unwrap_or_else(|| repository.join("target/e2e-artifacts").join(&run_id));
    std::fs::create_dir_all(&artifacts)
        .with_context(|| format!("failed to create {}", artifacts.display()))?;
    let paths = Paths {
        bin_dir: args
            .bin_dir
            .unwrap_or_else(|| lintas_e2e::platform::profile_dir(&repository, "debug")),
        repository,
        artifacts: artifacts.clone(),
    };
    println!(
        "End-to-end run {run_id}; logs and artifacts in {}",
        artifacts.display()
    );

    let mut report = Report::new(run_id, artifacts.join("summary.txt"));
    let mut startup = report.category("start-up");
    let started = Platform::start(&mut startup, paths).await;
    let mut platform = match started {
        Ok(platform) => {
            report.finish(startup, Ok(()));
            platform
        }
        Err(error) => {
            report.finish(startup, Err(error));
            for name in CATEGORIES {
                report.skipped(name, "the platform did not start");
            }
            report.print_summary();
            return Ok(false);
        }
    };

    let mut shared = Shared {
        tag: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
        user: None,
    };
    let selected: Vec<&str> = CATEGORIES
        .into_iter()
        .filter(|name| args.only.is_empty() || args.only.iter().any(|only| only == name))
        .collect();
    let interrupted = tokio::select! {
        () = run_categories(&mut report, &mut platform, &mut shared, &selected) => false,
        () = interrupt() => true,
    };

    let mut teardown = report.category("teardown");
    let problems = platform.stop().await;
    let result = teardown
        .step("every process stopped", async {
            anyhow::ensure!(problems.is_empty(), "{}", problems.join("; "));
            Ok(())
        })
        .await
        .map(drop);
    report.finish(teardown, result);
    if interrupted {
        report.skipped("interrupted", "the run was interrupted by a signal");
    }
    report.print_summary();
    Ok(report.passed())
}

async fn run_categories(
    report: &mut Report,
    platform: &mut Platform,
    shared: &mut Shared,
    selected: &[&str],
) {
    for &name in selected {
        let mut category = report.category(name);
        let result = match name {
            "connectivity" => checks::connectivity::run(&mut category, platform).await,
            "flows" => checks::flows::run(&mut category, platform, shared).await,
            "auth" => match known_user(platform, shared).await {
                Ok((id, _)) => checks::auth::run(&mut category, platform, &id, &shared.tag).await,
                Err(error) => Err(error),
            },
            "cache" => checks::cache::run(&mut category, platform, &shared.tag).await,
            "observability" => match known_user(platform, shared).await {
                Ok((id, _)) => {
                    checks::observability::run(&mut category, platform, &id, &shared.tag).await
                }
                Err(error) => Err(error),
            },
            "readme" => checks::readme::run(&mut category, platform).await,
            "browser" => match known_user(platform, shared).await {
                Ok((id, name)) => checks::browser::run(&mut category, platform, &id, &name).await,
                Err(error) => Err(error),
            },
            "alerting" => checks::alerting::run(&mut category, platform).await,
            "failure" => match known_user(platform, shared).await {
                Ok((id, _)) => {
                    checks::failure::run(&mut category, platform, &id, &shared.tag).await
                }
                Err(error) => Err(error),
            },
            other => Err(anyhow::anyhow!("no category named {other}")),
        };
        report.finish(category, result);
    }
}

/// Returns the user that the flows created, or creates one when the flows
/// did not run or failed before creating it.
async fn known_user(platform: &Platform, shared: &mut Shared) -> anyhow::Result<(String, String)> {
    if let Some(user) = &shared.user {
        return Ok(user.clone());
    }
    let gateway = platform.admin();
    let name = format!("Fajar {}", shared.tag);
    let reply = gateway
        .post(
            "/api/v1/users",
            &json!({ "name": name, "email": format!("fajar.{}@example.com", shared.tag) }),
        )
        .await?;
    let id = reply.expect(StatusCode::CREATED)?["id"]
        .as_str()
        .context("the created user has no id")?
        .to_owned();
    shared.user = Some((id.clone(), name.clone()));
    Ok((id, name))
}

/// Completes on Ctrl-C or SIGTERM, so that teardown still runs.
async fn interrupt() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                eprintln!("failed to listen for SIGTERM: {error}");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    println!("\ninterrupted: stopping everything the suite started");
}
