//! The scenarios, in run order, and the measurements taken around each.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::load::{self, Measured, WrkRun};
use crate::platform::{BenchPlatform, GatewayKind};
use crate::procstat;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Id {
    GrpcDirect,
    RestUncached,
    RestCached,
    GraphqlUser,
    GraphqlPage,
    RestCreateOrder,
    RestCachedUntraced,
    RestCachedMany,
}

/// Users in one page of the GraphQL page scenario.
pub const PAGE_USERS: f64 = 50.0;

pub struct Scenario {
    pub id: Id,
    /// Name for `--only`.
    pub key: &'static str,
    pub name: &'static str,
    /// The gateway under load; none for the direct gRPC baseline.
    pub gateway: Option<GatewayKind>,
    /// Request kind of `bench/lua/scenario.lua`.
    pub wrk_scenario: &'static str,
    pub many_connections: bool,
}

pub const ALL: [Scenario; 8] = [
    Scenario {
        id: Id::GrpcDirect,
        key: "grpc-direct",
        name: "direct gRPC GetUser (user-svc)",
        gateway: None,
        wrk_scenario: "",
        many_connections: false,
    },
    Scenario {
        id: Id::RestUncached,
        key: "rest-uncached",
        name: "REST GET /users/{id}, cache off",
        gateway: Some(GatewayKind::Uncached),
        wrk_scenario: "rest-user",
        many_connections: false,
    },
    Scenario {
        id: Id::RestCached,
        key: "rest-cached",
        name: "REST GET /users/{id}, cache warm",
        gateway: Some(GatewayKind::Cached),
        wrk_scenario: "rest-user",
        many_connections: false,
    },
    Scenario {
        id: Id::GraphqlUser,
        key: "graphql-user",
        name: "GraphQL user(id), cache warm",
        gateway: Some(GatewayKind::Cached),
        wrk_scenario: "graphql-user",
        many_connections: false,
    },
    Scenario {
        id: Id::GraphqlPage,
        key: "graphql-page",
        name: "GraphQL 50 users with orders",
        gateway: Some(GatewayKind::Cached),
        wrk_scenario: "graphql-page",
        many_connections: false,
    },
    Scenario {
        id: Id::RestCreateOrder,
        key: "create-order",
        name: "REST POST /orders (write)",
        gateway: Some(GatewayKind::Cached),
        wrk_scenario: "create-order",
        many_connections: false,
    },
    Scenario {
        id: Id::RestCachedUntraced,
        key: "rest-cached-untraced",
        name: "REST GET /users/{id}, cache warm, telemetry off",
        gateway: Some(GatewayKind::Untraced),
        wrk_scenario: "rest-user",
        many_connections: false,
    },
    Scenario {
        id: Id::RestCachedMany,
        key: "rest-cached-many",
        name: "REST GET /users/{id}, cache warm, many connections",
        gateway: Some(GatewayKind::ManyConnections),
        wrk_scenario: "rest-user",
        many_connections: true,
    },
];

/// Load settings shared by the scenarios.
pub struct Load<'a> {
    pub script: &'a Path,
    pub ids_file: &'a Path,
    pub ids: Arc<[String]>,
    pub connections: usize,
    pub many_connections: usize,
    pub threads: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// A scenario's figures.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub id: Id,
    pub connections: usize,
    pub measured: Measured,
    /// Gateway CPU seconds (user and system) per 1,000 requests.
    pub gateway_cpu_per_1k: Option<f64>,
    /// Gateway calls to the backends per request.
    pub backend_calls_per_request: Option<f64>,
    pub peak_rss_gateway: Option<u64>,
    pub peak_rss_user_svc: u64,
    pub peak_rss_order_svc: u64,
}

/// Warms up, then measures one scenario.
pub async fn run(
    scenario: &Scenario,
    platform: &BenchPlatform,
    load: &Load<'_>,
    http: &reqwest::Client,
) -> anyhow::Result<Outcome> {
    let connections = if scenario.many_connections {
        load.many_connections
    } else {
        load.connections
    };
    generate(scenario, platform, load, connections, load.warmup).await?;

    let gateway = scenario.gateway.map(|kind| platform.gateway(kind));
    let gateway_pid = gateway.and_then(|gateway| gateway.process.pid());
    let service_pids = [platform.user_svc.pid(), platform.order_svc.pid()];
    for pid in service_pids.iter().chain([&gateway_pid]).flatten() {
        procstat::reset_peak_rss(*pid)?;
    }
    let cpu_before = gateway_pid.map(procstat::cpu_seconds).transpose()?;
    let calls_before = match gateway {
        Some(gateway) => Some(backend_calls(http, &gateway.address).await?),
        None => None,
    };

    let measured = generate(scenario, platform, load, connections, load.duration).await?;

    let cpu_after = gateway_pid.map(procstat::cpu_seconds).transpose()?;
    let calls_after = match gateway {
        Some(gateway) => Some(backend_calls(http, &gateway.address).await?),
        None => None,
    };
    let per_request = |total: f64| total / (measured.requests.max(1) as f64);
    let peak = |pid: Option<u32>| pid.map(procstat::peak_rss_bytes).transpose();
    Ok(Outcome {
        id: scenario.id,
        connections,
        measured,
        gateway_cpu_per_1k: cpu_before
            .zip(cpu_after)
            .map(|(before, after)| per_request(after - before) * 1000.0),
        backend_calls_per_request: calls_before
            .zip(calls_after)
            .map(|(before, after)| per_request(after - before)),
        peak_rss_gateway: peak(gateway_pid)?,
        peak_rss_user_svc: peak(service_pids[0])?.unwrap_or_default(),
        peak_rss_order_svc: peak(service_pids[1])?.unwrap_or_default(),
    })
}

async fn generate(
    scenario: &Scenario,
    platform: &BenchPlatform,
    load: &Load<'_>,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Measured> {
    match scenario.gateway {
        None => {
            load::grpc_get_user(
                &platform.user_address,
                load.ids.clone(),
                connections,
                duration,
            )
            .await
        }
        Some(kind) => {
            let url = format!("http://{}", platform.gateway(kind).address);
            WrkRun {
                script: load.script,
                url: &url,
                scenario: scenario.wrk_scenario,
                ids_file: load.ids_file,
                token: &platform.tokens.admin,
                connections,
                threads: load.threads,
                duration,
            }
            .run()
            .await
        }
    }
}

/// Returns the gateway's `gateway_backend_calls_total`, summed over methods.
async fn backend_calls(http: &reqwest::Client, address: &str) -> anyhow::Result<f64> {
    let text = http
        .get(format!("http://{address}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    text.lines()
        .filter(|line| line.starts_with("gateway_backend_calls_total{"))
        .map(|line| {
            line.rsplit_once(' ')
                .and_then(|(_, value)| value.parse::<f64>().ok())
                .context("invalid gateway_backend_calls_total line")
        })
        .sum()
}
