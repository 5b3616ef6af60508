//! Traces and logs of one request across the three binaries.
//!
//! The request is one GraphQL document with two mutations: `createUser`,
//! and `createOrder` for an existing user. While placing the order, the
//! order service calls the user service to check that the user is active.
//! So all three binaries serve the request, and each writes a log line
//! inside it, because the services log writes (not reads) at the
//! production level `info`. The gateway returns the trace id in
//! `x-trace-id` and `traceparent`. The OTLP receiver must then contain one
//! connected trace with spans from all three, and the Loki endpoint log
//! lines from all three that carry the trace id.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use lintas_telemetry::testing::ReceivedSpan;
use reqwest::StatusCode;
use serde_json::json;

use crate::client::poll;
use crate::platform::Platform;
use crate::report::Category;

const SERVICES: [&str; 3] = ["gateway", "order-svc", "user-svc"];

/// How long spans and log lines may take to arrive. The OpenTelemetry
/// batch exporter sends every 5 s by default.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(20);

pub async fn run(
    category: &mut Category,
    platform: &Platform,
    user_id: &str,
    tag: &str,
) -> anyhow::Result<()> {
    let gateway = platform.admin();

    let trace_id = category
        .step(
            "POST /graphql with createUser and createOrder returns x-trace-id and a matching traceparent",
            async {
                let query = "mutation ($user: CreateUserInput!, $order: CreateOrderInput!) { \
                    createUser(input: $user) { id } createOrder(input: $order) { id status } }";
                let variables = json!({
                    "user": { "name": format!("Gita {tag}"), "email": format!("gita.{tag}@example.com") },
                    "order": {
                        "userId": user_id, "currency": "IDR",
                        "items": [{ "sku": "KOPI-250G", "quantity": 1, "unitPrice": "85000" }],
                        "shippingAddress": { "recipient": "Penerima", "line1": "Jl. Merdeka 17", "city": "Jakarta", "postalCode": "10110", "country": "ID" }
                    }
                });
                let reply = gateway
                    .post("/graphql", &json!({ "query": query, "variables": variables }))
                    .await?;
                let body = reply.expect(StatusCode::OK)?;
                ensure!(body.get("errors").is_none(), "GraphQL errors: {body}");
                ensure!(body["data"]["createOrder"]["status"] == "PENDING", "{body}");
                let header_names: Vec<&str> = reply.headers.keys().map(|name| name.as_str()).collect();
                let trace_id = reply
                    .header("x-trace-id")
                    .with_context(|| format!("the gateway sent no x-trace-id header (headers: {header_names:?})"))?;
                let traceparent = reply
                    .header("traceparent")
                    .with_context(|| format!("the gateway sent no traceparent header (headers: {header_names:?})"))?;
                ensure!(is_trace_id(&trace_id), "x-trace-id {trace_id:?} is not 32 lowercase hex digits");
                let parts: Vec<&str> = traceparent.split('-').collect();
                ensure!(
                    parts.len() == 4 && parts[0] == "00" && parts[1] == trace_id,
                    "traceparent {traceparent:?} does not carry trace id {trace_id}"
                );
                Ok(trace_id)
            },
        )
        .await;

    category
        .step(
            "a caller's traceparent is continued: x-trace-id is the caller's trace id",
            async {
                let trace_id = uuid::Uuid::new_v4().simple().to_string();
                let traceparent = format!(
                    "00-{trace_id}-{}-01",
                    &uuid::Uuid::new_v4().simple().to_string()[..16]
                );
                let response = platform
                    .http
                    .get(format!(
                        "{}/api/v1/users?page_size=1",
                        platform.gateway_url()
                    ))
                    .header("traceparent", &traceparent)
                    .bearer_auth(&platform.tokens.admin)
                    .send()
                    .await?;
                ensure!(
                    response.status() == StatusCode::OK,
                    "GET /api/v1/users returned {}",
                    response.status()
                );
                let returned = response
                    .headers()
                    .get("x-trace-id")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                ensure!(
                    returned == trace_id,
                    "sent trace id {trace_id}, x-trace-id is {returned:?}"
                );
                Ok(())
            },
        )
        .await
        .ok();

    let Ok(trace_id) = trace_id else {
        bail!(
            "the request's trace id is unknown, so its spans and log lines cannot be found; {}",
            diagnose_without_gateway(platform).await
        );
    };

    category
        .step(
            "OTLP receiver: one connected trace with spans from gateway, order-svc and user-svc",
            async {
                let spans = poll(
                    ARRIVAL_TIMEOUT,
                    Duration::from_millis(250),
                    "a complete trace",
                    || async {
                        let spans: Vec<ReceivedSpan> = platform
                            .otlp
                            .spans()
                            .into_iter()
                            .filter(|span| span.trace_id == trace_id)
                            .collect();
                        match trace_problem(&spans) {
                            None => Ok(Some(spans)),
                            Some(problem) => Err(anyhow::anyhow!(problem)),
                        }
                    },
                )
                .await;
                let received: Vec<ReceivedSpan> = platform
                    .otlp
                    .spans()
                    .into_iter()
                    .filter(|span| span.trace_id == trace_id)
                    .collect();
                save_trace(platform, &trace_id, &received);
                spans.map(drop)
            },
        )
        .await
        .ok();

    category
        .step(
            "Loki endpoint: log lines with the trace id from gateway, order-svc and user-svc",
            async {
                poll(ARRIVAL_TIMEOUT, Duration::from_millis(250), "log lines from all three", || async {
                    let services: BTreeSet<String> = platform
                        .loki
                        .lines()
                        .into_iter()
                        .filter(|line| line.line.contains(&trace_id))
                        .filter_map(|line| line.labels.get("service").cloned())
                        .collect();
                    let missing: Vec<&str> = SERVICES
                        .iter()
                        .copied()
                        .filter(|service| !services.contains(*service))
                        .collect();
                    if missing.is_empty() {
                        Ok(Some(()))
                    } else {
                        bail!("no line with trace id {trace_id} from {missing:?}; lines came from {services:?}")
                    }
                })
                .await
            },
        )
        .await
        .ok();

    Ok(())
}

/// Describes what keeps `spans` from being one complete trace across the
/// three binaries, or returns `None` when nothing does.
fn trace_problem(spans: &[ReceivedSpan]) -> Option<String> {
    if spans.is_empty() {
        return Some("no span with the trace id has arrived".to_owned());
    }
    let services: BTreeSet<&str> = spans.iter().map(|span| span.service.as_str()).collect();
    let missing: Vec<&str> = SERVICES
        .iter()
        .copied()
        .filter(|service| !services.contains(service))
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "no span from {missing:?}; spans came from {services:?}"
        ));
    }
    let roots: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|span| span.parent_span_id.is_empty())
        .collect();
    if roots.len() != 1 || roots[0].service != "gateway" {
        let roots: Vec<String> = roots
            .iter()
            .map(|span| format!("{} {}", span.service, span.name))
            .collect();
        return Some(format!(
            "expected one root span, from the gateway; roots are {roots:?}"
        ));
    }
    let ids: HashSet<&str> = spans.iter().map(|span| span.span_id.as_str()).collect();
    let orphans: Vec<String> = spans
        .iter()
        .filter(|span| {
            !span.parent_span_id.is_empty() && !ids.contains(span.parent_span_id.as_str())
        })
        .map(|span| format!("{} {}", span.service, span.name))
        .collect();
    if !orphans.is_empty() {
        return Some(format!(
            "spans whose parent is not in the trace: {orphans:?}"
        ));
    }
    None
}

/// Describes, when the gateway reports no trace id, whether the services at
/// least share traces with each other, so that the report points at the
/// gateway.
async fn diagnose_without_gateway(platform: &Platform) -> String {
    // Each binary exports in its own batches, so wait for spans of both a
    // service and the gateway. Without gateway spans this waits the full time.
    let spans = platform
        .otlp
        .wait_for(ARRIVAL_TIMEOUT, |spans| {
            ["order-svc", "gateway"]
                .iter()
                .all(|service| spans.iter().any(|span| span.service == *service))
        })
        .await;
    let gateway_spans = spans
        .iter()
        .filter(|span| span.service == "gateway")
        .count();
    let mut by_trace: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for span in &spans {
        by_trace
            .entry(span.trace_id.as_str())
            .or_default()
            .insert(span.service.as_str());
    }
    let shared = by_trace
        .values()
        .filter(|services| services.contains("order-svc") && services.contains("user-svc"))
        .count();
    format!(
        "the OTLP receiver holds {gateway_spans} span(s) from the gateway and {shared} trace(s) that span both order-svc and user-svc"
    )
}

fn save_trace(platform: &Platform, trace_id: &str, spans: &[ReceivedSpan]) {
    let rendered: Vec<serde_json::Value> = spans
        .iter()
        .map(|span| {
            json!({
                "service": span.service, "name": span.name, "span_id": span.span_id,
                "parent_span_id": span.parent_span_id, "kind": span.kind, "attributes": span.attributes,
            })
        })
        .collect();
    let path = platform
        .paths
        .artifacts
        .join(format!("trace-{trace_id}.json"));
    if let Ok(text) = serde_json::to_string_pretty(&rendered) {
        let _ = std::fs::write(path, text);
    }
}

fn is_trace_id(text: &str) -> bool {
    text.len() == 32
        && text
            .chars()
            .all(|character| matches!(character, '0'..='9' | 'a'..='f'))
}
