//! The results table, the ratios with their targets, and the generated
//! section of `BENCHMARKS.md`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

use crate::scenarios::{ALL, Id, Outcome, PAGE_USERS};

/// Marks the generated section in `BENCHMARKS.md`.
const START_MARK: &str = "<!-- platform-benchmark:start -->";
const END_MARK: &str = "<!-- platform-benchmark:end -->";

const MIB: f64 = 1024.0 * 1024.0;

/// Circumstances of the run, for the report's header.
pub struct RunInfo<'a> {
    pub machine: String,
    pub commit: String,
    pub command: String,
    pub users: usize,
    pub orders: usize,
    pub duration_secs: u64,
    pub date: String,
    /// Spans and log bytes the sink received during the run.
    pub telemetry: &'a str,
}

/// Renders the table and the ratios as Markdown.
pub fn render(outcomes: &[Outcome], context: &RunInfo<'_>) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Run on {}: {}.\n\nCommit `{}`, command `{}`. Data set: {} users, {} orders; \
         each scenario ran {} s after a warm-up. {}\n",
        context.date,
        context.machine,
        context.commit,
        context.command,
        context.users,
        context.orders,
        context.duration_secs,
        context.telemetry,
    );
    text.push_str(
        "| Scenario | Conns | Req/s | p50 ms | p95 ms | p99 ms | max ms | Errors | \
         Gateway CPU s / 1k req | Backend calls / req | Peak RSS gateway / user-svc / order-svc MiB |\n",
    );
    text.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
    for outcome in outcomes {
        let name = ALL
            .iter()
            .find(|scenario| scenario.id == outcome.id)
            .map_or("?", |scenario| scenario.name);
        let measured = &outcome.measured;
        let _ = writeln!(
            text,
            "| {name} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} | {} | {} / {:.1} / {:.1} |",
            outcome.connections,
            measured.per_second(),
            measured.p50_ms,
            measured.p95_ms,
            measured.p99_ms,
            measured.max_ms,
            measured.errors,
            outcome
                .gateway_cpu_per_1k
                .map_or_else(|| "-".to_owned(), |cpu| format!("{cpu:.3}")),
            outcome
                .backend_calls_per_request
                .map_or_else(|| "-".to_owned(), |calls| format!("{calls:.2}")),
            outcome.peak_rss_gateway.map_or_else(
                || "-".to_owned(),
                |bytes| format!("{:.1}", bytes as f64 / MIB)
            ),
            outcome.peak_rss_user_svc as f64 / MIB,
            outcome.peak_rss_order_svc as f64 / MIB,
        );
    }
    text.push('\n');
    text.push_str("| Ratio or limit | Measured | Target | Met |\n| --- | ---: | --- | --- |\n");
    for check in checks(outcomes) {
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} |",
            check.name,
            check.measured,
            check.target,
            if check.met { "yes" } else { "**no**" }
        );
    }
    text
}

struct Check {
    name: &'static str,
    measured: String,
    target: &'static str,
    met: bool,
}

fn checks(outcomes: &[Outcome]) -> Vec<Check> {
    let find = |id: Id| outcomes.iter().find(|outcome| outcome.id == id);
    let rate = |id: Id| find(id).map(|outcome| outcome.measured.per_second());
    let ratio = |top: Option<f64>, bottom: Option<f64>| {
        top.zip(bottom)
            .map(|(top, bottom)| top / bottom.max(f64::EPSILON))
    };
    let mut checks = Vec::new();
    let mut push_ratio = |name, value: Option<f64>, target, minimum: f64| {
        if let Some(value) = value {
            checks.push(Check {
                name,
                measured: format!("{value:.2}x"),
                target,
                met: value >= minimum,
            });
        }
    };
    push_ratio(
        "REST uncached / direct gRPC throughput",
        ratio(rate(Id::RestUncached), rate(Id::GrpcDirect)),
        ">= 0.8x",
        0.8,
    );
    push_ratio(
        "REST cached / uncached throughput",
        ratio(rate(Id::RestCached), rate(Id::RestUncached)),
        ">= 2x",
        2.0,
    );
    push_ratio(
        "telemetry on / off throughput (cached REST)",
        ratio(rate(Id::RestCached), rate(Id::RestCachedUntraced)),
        ">= 0.9x",
        0.9,
    );
    push_ratio(
        "GraphQL user / REST user throughput (cached)",
        ratio(rate(Id::GraphqlUser), rate(Id::RestCached)),
        "(reported)",
        0.0,
    );
    push_ratio(
        "GraphQL page users/s / REST cached users/s",
        ratio(
            rate(Id::GraphqlPage).map(|rate| rate * PAGE_USERS),
            rate(Id::RestCached),
        ),
        ">= 0.7x",
        0.7,
    );
    if let Some(cached) = find(Id::RestCached) {
        checks.push(Check {
            name: "REST cached p99 latency",
            measured: format!(
                "{:.2} ms at {} conns",
                cached.measured.p99_ms, cached.connections
            ),
            target: "< 5 ms at 64 conns",
            met: cached.measured.p99_ms < 5.0,
        });
    }
    if let Some(page) = find(Id::GraphqlPage)
        && let Some(calls) = page.backend_calls_per_request
    {
        // Requests still in flight when wrk stops have made their calls but
        // are not counted as completed: allow two calls for each of them.
        let in_flight = page.connections as f64 / page.measured.requests.max(1) as f64;
        checks.push(Check {
            name: "GraphQL page backend calls per request",
            measured: format!("{calls:.2}"),
            target: "<= 2, plus the requests in flight at the end",
            met: calls <= 2.0 * (1.0 + in_flight),
        });
    }
    if let Some(many) = find(Id::RestCachedMany) {
        let rss = many.peak_rss_gateway.unwrap_or(u64::MAX) as f64 / MIB;
        checks.push(Check {
            name: "gateway peak RSS at many connections",
            measured: format!("{rss:.1} MiB at {} conns", many.connections),
            target: "< 64 MiB",
            met: rss < 64.0,
        });
        checks.push(Check {
            name: "errors at many connections",
            measured: many.measured.errors.to_string(),
            target: "0",
            met: many.measured.errors == 0,
        });
    }
    checks
}

/// Replaces the generated section of `path`, or appends one when there is
/// none yet.
pub fn write_section(path: &Path, body: &str) -> anyhow::Result<()> {
    let current = std::fs::read_to_string(path).unwrap_or_default();
    let section = format!("{START_MARK}\n{body}{END_MARK}\n");
    let updated = match (current.find(START_MARK), current.find(END_MARK)) {
        (Some(start), Some(end)) if start < end => format!(
            "{}{section}\n{}",
            &current[..start],
            current[end + END_MARK.len()..].trim_start_matches('\n')
        ),
        _ => format!("{current}\n## Platform benchmark\n\n{section}"),
    };
    std::fs::write(path, updated).with_context(|| format!("failed to write {}", path.display()))
}
