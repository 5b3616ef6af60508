//! The subscriber exports spans over OTLP and pushes log lines to Loki with
//! the trace id in the line and only low-cardinality labels.

use std::time::Duration;

use lintas_telemetry::testing::{LokiReceiver, OtlpReceiver};
use lintas_telemetry::{LogFormat, TelemetryConfig};

#[tokio::test]
async fn spans_and_log_lines_reach_their_backends() {
    let otlp = OtlpReceiver::start().await;
    let loki = LokiReceiver::start().await;
    let config =
        TelemetryConfig::from_lookup("telemetry-test", LogFormat::Json, |name| match name {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(otlp.endpoint.clone()),
            "LOKI_URL" => Some(loki.url.clone()),
            _ => None,
        })
        .unwrap();
    let guard = lintas_telemetry::init(&config).unwrap();

    let span = tracing::info_span!(
        "work",
        otel.name = "unit of work",
        trace_id = tracing::field::Empty
    );
    let _ = lintas_telemetry::propagation::record_trace_id(&span);
    let trace_id = {
        let _entered = span.enter();
        // A field named like a key the line sets itself is left out, so
        // that the line has each key once.
        tracing::info!(
            item = 7,
            wait_ms = std::time::Duration::from_secs(5).as_millis(),
            trace_id = "not the span's",
            level = 3,
            "inside the \"span\"\n"
        );
        lintas_telemetry::current_trace_id()
    };
    drop(span);
    assert_eq!(trace_id.len(), 32, "{trace_id:?}");

    guard.shutdown().await;

    let spans = otlp
        .wait_for(Duration::from_secs(10), |spans| !spans.is_empty())
        .await;
    let exported = spans
        .iter()
        .find(|span| span.name == "unit of work")
        .expect("span exported");
    assert_eq!(exported.trace_id, trace_id);
    assert_eq!(exported.service, "telemetry-test");

    let lines = loki
        .wait_for(Duration::from_secs(10), |lines| {
            lines.iter().any(|line| line.line.contains("inside the"))
        })
        .await;
    let line = lines
        .iter()
        .find(|line| line.line.contains("inside the"))
        .expect("line pushed");
    let fields: serde_json::Value = serde_json::from_str(&line.line).expect("line is JSON");
    assert_eq!(fields["message"], "inside the \"span\"\n", "{}", line.line);
    assert_eq!(fields["item"], 7, "{}", line.line);
    assert_eq!(fields["wait_ms"], 5000, "{}", line.line);
    assert_eq!(fields["level"], "INFO", "{}", line.line);
    assert_eq!(fields["service"], "telemetry-test", "{}", line.line);
    assert_eq!(fields["trace_id"], trace_id.as_str(), "{}", line.line);
    assert_eq!(
        fields["span_id"].as_str().map(str::len),
        Some(16),
        "{}",
        line.line
    );
    assert_eq!(
        line.line.matches("\"trace_id\"").count(),
        1,
        "{}",
        line.line
    );
    assert_eq!(line.line.matches("\"level\"").count(), 1, "{}", line.line);
    let names: Vec<&str> = line.labels.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["environment", "level", "service"],
        "{:?}",
        line.labels
    );
    assert_eq!(line.labels["service"], "telemetry-test");
}
