//! Traces and logs across the gateway and both services, checked at the
//! wire protocol: an OTLP receiver for spans and a Loki push endpoint for
//! log lines. One test, because the subscriber is global to the process.

mod common;

use std::time::Duration;

use lintas_telemetry::testing::{LokiReceiver, OtlpReceiver, ReceivedSpan};
use lintas_telemetry::{LogFormat, TelemetryConfig};
use serde_json::json;

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

const NEAR_CACHE_HITS: &str = "near_cache_requests_total{result=\"hit\"}";

fn span_named<'a>(spans: &'a [ReceivedSpan], trace_id: &str, name: &str) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|span| span.trace_id == trace_id && span.name == name)
        .collect()
}

/// Reads one user through a gateway with the shared Redis until a read is
/// a near-cache hit. Returns the trace ids of the reads before it and of
/// the hit.
async fn read_until_near_hit() -> (Vec<String>, String) {
    let platform = common::start_with(|gateway| {
        gateway.cache.redis_url = Some("redis://127.0.0.1:6379".to_owned());
        gateway.cache.key_prefix = format!("lintas-test-{}", uuid::Uuid::new_v4());
    })
    .await;
    for _ in 0..100 {
        if platform.metric("near_cache_connected").await == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let user = platform.create_user("Dewi", "dewi@example.com").await;
    let path = format!("/api/v1/users/{}", user["id"].as_str().unwrap());

    let mut redis_traces = Vec::new();
    for _ in 0..20 {
        let hits = platform.metric(NEAR_CACHE_HITS).await;
        let response = platform
            .client
            .get(platform.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let trace = response.headers()["x-trace-id"]
            .to_str()
            .unwrap()
            .to_owned();
        if platform.metric(NEAR_CACHE_HITS).await > hits {
            return (redis_traces, trace);
        }
        redis_traces.push(trace);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no near-cache hit within 20 reads");
}

fn parent_of<'a>(spans: &'a [ReceivedSpan], child: &ReceivedSpan) -> Option<&'a ReceivedSpan> {
    spans
        .iter()
        .find(|span| span.trace_id == child.trace_id && span.span_id == child.parent_span_id)
}

#[tokio::test]
async fn requests_are_traced_across_services() {
    let otlp = OtlpReceiver::start().await;
    let loki = LokiReceiver::start().await;
    let config = TelemetryConfig::from_lookup("lintas-test", LogFormat::Json, |name| match name {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(otlp.endpoint.clone()),
        "LOKI_URL" => Some(loki.url.clone()),
        _ => None,
    })
    .unwrap();
    let telemetry = lintas_telemetry::init(&config).unwrap();
    let platform = common::start().await;

    // A REST write that crosses the gateway, the order service and, from
    // there, the user service.
    let user = platform.create_user("Siti", "siti@example.com").await;
    let response = platform
        .client
        .post(platform.url("/api/v1/orders"))
        .json(&common::order_body(user["id"].as_str().unwrap(), 1_000))
        .send()
        .await
        .unwrap();
    let rest_trace = response.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let traceparent = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(rest_trace.len(), 32);
    assert!(traceparent.contains(&rest_trace), "{traceparent}");
    // No trace state was received, so none is sent back, not even empty.
    assert!(response.headers().get("tracestate").is_none());

    // A GraphQL read with a named operation.
    let graphql = platform
        .client
        .post(platform.url("/graphql"))
        .json(&json!({ "query": "query UsersWithOrders { users(first: 5) { nodes { id orders { id user { id } } } } }" }))
        .send()
        .await
        .unwrap();
    let graphql_trace = graphql.headers()["x-trace-id"].to_str().unwrap().to_owned();

    // A caller's valid traceparent is continued; a malformed one is replaced.
    let continued = platform
        .client
        .get(platform.url("/api/v1/users"))
        .header(
            "traceparent",
            format!("00-{CALLER_TRACE}-00f067aa0ba902b7-01"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(continued.headers()["x-trace-id"], CALLER_TRACE);
    // `00-1-2-01` has short fields that parse as numbers, as trace id 1.
    let mut fresh_traces = Vec::new();
    for malformed in ["00-not-a-trace-01", "00-1-2-01"] {
        let response = platform
            .client
            .get(platform.url("/api/v1/users"))
            .header("traceparent", malformed)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let fresh_trace = response.headers()["x-trace-id"].to_str().unwrap();
        assert_eq!(fresh_trace.len(), 32, "{malformed}");
        assert_ne!(fresh_trace, CALLER_TRACE, "{malformed}");
        assert_ne!(fresh_trace, format!("{:0>32}", "1"), "{malformed}");
        fresh_traces.push(fresh_trace.to_owned());
    }
    // The first request's spans are checked below.
    let fresh_trace = fresh_traces[0].clone();

    // Reads of one user through a gateway with Redis: the first ones read
    // Redis, and once the near cache contains the user, a read makes no
    // Redis call.
    let (redis_traces, near_trace) = read_until_near_hit().await;

    drop(platform);
    telemetry.shutdown().await;

    let spans = otlp
        .wait_for(Duration::from_secs(10), |spans| {
            spans
                .iter()
                .any(|span| span.trace_id == rest_trace && span.name == "db.users.get")
        })
        .await;

    // REST: gateway server span -> client span -> order service -> user service -> database.
    let server = span_named(&spans, &rest_trace, "POST /api/v1/orders");
    assert_eq!(server.len(), 1, "{spans:#?}");
    assert_eq!(server[0].kind, 2);
    assert_eq!(server[0].attributes["http.route"], "/api/v1/orders");
    assert_eq!(server[0].attributes["http.response.status_code"], "201");

    let order_server = span_named(&spans, &rest_trace, "order.v1.OrderService/CreateOrder");
    let order_server = order_server
        .iter()
        .find(|span| span.kind == 2)
        .expect("order service server span");
    assert_eq!(order_server.attributes["rpc.system"], "grpc");
    assert_eq!(order_server.attributes["rpc.grpc.status_code"], "0");
    let order_client = parent_of(&spans, order_server).expect("client span of the gateway");
    assert_eq!(order_client.kind, 3);
    assert_eq!(
        parent_of(&spans, order_client).map(|span| span.name.as_str()),
        Some("POST /api/v1/orders")
    );

    let user_lookup = span_named(&spans, &rest_trace, "user.v1.UserService/GetUser");
    let user_server = user_lookup
        .iter()
        .find(|span| span.kind == 2)
        .expect("user service server span");
    let user_client = parent_of(&spans, user_server).expect("client span in the order service");
    assert_eq!(
        parent_of(&spans, user_client).map(|span| span.span_id.as_str()),
        Some(order_server.span_id.as_str())
    );
    let database = span_named(&spans, &rest_trace, "db.users.get");
    assert_eq!(database.len(), 1);
    assert_eq!(
        parent_of(&spans, database[0]).map(|span| span.span_id.as_str()),
        Some(user_server.span_id.as_str())
    );
    assert!(
        !span_named(&spans, &rest_trace, "db.orders.create").is_empty(),
        "order insert span missing"
    );

    // Near cache: a Redis span under the reads that went to Redis, none
    // under the near-cache hit.
    let spans = otlp
        .wait_for(Duration::from_secs(10), |spans| {
            !span_named(spans, &near_trace, "GET /api/v1/users/{id}").is_empty()
        })
        .await;
    assert!(
        redis_traces
            .iter()
            .any(|trace| !span_named(&spans, trace, "redis MGET").is_empty()),
        "no redis MGET span under the reads before the near-cache hit"
    );
    assert!(
        span_named(&spans, &near_trace, "redis MGET").is_empty(),
        "the near-cache hit made a Redis span"
    );

    // GraphQL: the operation span and the batched backend calls share the trace.
    let operation = span_named(&spans, &graphql_trace, "query UsersWithOrders");
    assert_eq!(
        operation.len(),
        1,
        "{:#?}",
        spans
            .iter()
            .filter(|span| span.trace_id == graphql_trace)
            .collect::<Vec<_>>()
    );
    assert_eq!(operation[0].attributes["graphql.operation.type"], "query");
    assert!(
        !span_named(
            &spans,
            &graphql_trace,
            "order.v1.OrderService/ListOrdersByUsers"
        )
        .is_empty()
    );

    // The caller's trace is continued: the server span's parent is the caller's span.
    let continued_server = span_named(&spans, CALLER_TRACE, "GET /api/v1/users");
    assert_eq!(continued_server.len(), 1);
    assert_eq!(continued_server[0].parent_span_id, "00f067aa0ba902b7");
    let fresh_server = span_named(&spans, &fresh_trace, "GET /api/v1/users");
    assert_eq!(fresh_server.len(), 1);
    assert_eq!(fresh_server[0].parent_span_id, "");

    // Loki: lines from inside the request carry its trace id, under few labels.
    let lines = loki
        .wait_for(Duration::from_secs(10), |lines| {
            lines
                .iter()
                .any(|line| line.line.contains("order created") && line.line.contains(&rest_trace))
        })
        .await;
    let request_lines: Vec<_> = lines
        .iter()
        .filter(|line| line.line.contains(&rest_trace))
        .collect();
    assert!(
        request_lines
            .iter()
            .any(|line| line.line.contains("order created")),
        "{request_lines:#?}"
    );
    assert!(
        request_lines
            .iter()
            .any(|line| line.line.contains("request served")),
        "{request_lines:#?}"
    );
    for line in &lines {
        let names: Vec<&str> = line.labels.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["environment", "level", "service"],
            "{:?}",
            line.labels
        );
        assert!(
            !line.line.contains("siti@example.com"),
            "email logged: {}",
            line.line
        );
    }
}
