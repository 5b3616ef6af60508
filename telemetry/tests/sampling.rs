//! A request that the sampler drops still gets a trace id for its logs and
//! responses, and nothing is exported for it.

use std::time::Duration;

use lintas_telemetry::testing::OtlpReceiver;
use lintas_telemetry::{LogFormat, TelemetryConfig};

#[tokio::test]
async fn sampled_out_span_keeps_trace_id() {
    let otlp = OtlpReceiver::start().await;
    let config =
        TelemetryConfig::from_lookup("sampling-test", LogFormat::Json, |name| match name {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(otlp.endpoint.clone()),
            "OTEL_TRACES_SAMPLER_ARG" => Some("0".to_owned()),
            _ => None,
        })
        .unwrap();
    let guard = lintas_telemetry::init(&config).unwrap();

    let span = tracing::info_span!("dropped");
    let trace_id = lintas_telemetry::propagation::trace_id(&span);
    drop(span);
    guard.shutdown().await;

    assert_eq!(trace_id.len(), 32, "{trace_id:?}");
    assert_ne!(trace_id, "0".repeat(32));
    let spans = otlp
        .wait_for(Duration::from_millis(500), |spans| !spans.is_empty())
        .await;
    assert!(
        spans.is_empty(),
        "a sampled-out span was exported: {spans:?}"
    );
}
