//! Test doubles of the telemetry backends, served on loopback port 0: an
//! OTLP/gRPC trace receiver (what Jaeger accepts) and a Loki push endpoint
//! that decodes the snappy-compressed protobuf format Loki accepts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use loki_api::prost::Message as _;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A span as the receiver stored it.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// `service.name` of the resource that sent the span.
    pub service: String,
    pub name: String,
    /// Lowercase hex.
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// OTLP span kind: 2 server, 3 client.
    pub kind: i32,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub status_code: i32,
    /// Attribute values rendered as strings.
    pub attributes: BTreeMap<String, String>,
}

/// OTLP trace receiver.
pub struct OtlpReceiver {
    /// Endpoint to export to, for example `http://127.0.0.1:41234`.
    pub endpoint: String,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    _stop: oneshot::Sender<()>,
}

#[derive(Clone)]
struct Collector(Arc<Mutex<Vec<ReceivedSpan>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut stored = self.0.lock().expect("span store lock");
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|resource| {
                    resource
                        .attributes
                        .iter()
                        .find(|attribute| attribute.key == "service.name")
                })
                .and_then(|attribute| attribute.value.as_ref())
                .map(|value| render(&value.value))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    stored.push(ReceivedSpan {
                        service: service.clone(),
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        kind: span.kind,
                        status_code: span.status.map_or(0, |status| status.code),
                        attributes: span
                            .attributes
                            .into_iter()
                            .map(|attribute| {
                                (
                                    attribute.key,
                                    attribute
                                        .value
                                        .map(|value| render(&value.value))
                                        .unwrap_or_default(),
                                )
                            })
                            .collect(),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl OtlpReceiver {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().expect("bound address"));
        let spans = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = oneshot::channel::<()>();
        let service = TraceServiceServer::new(Collector(spans.clone()));
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(tokio_stream_from(listener), async move {
                    let _ = stopped.await;
                }),
        );
        Self {
            endpoint,
            spans,
            _stop: stop,
        }
    }

    /// Returns every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().expect("span store lock").clone()
    }

    /// Polls until `ready` accepts the spans received, or `timeout` passes;
    /// returns the spans either way.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        ready: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if ready(&spans) || Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A log line as the Loki endpoint stored it.
#[derive(Debug, Clone)]
pub struct ReceivedLine {
    pub labels: BTreeMap<String, String>,
    pub line: String,
}

/// Loki push endpoint (`POST /loki/api/v1/push`).
pub struct LokiReceiver {
    /// Base URL to configure as `LOKI_URL`.
    pub url: String,
    lines: Arc<Mutex<Vec<ReceivedLine>>>,
    _stop: oneshot::Sender<()>,
}

impl LokiReceiver {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let url = format!("http://{}/", listener.local_addr().expect("bound address"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/loki/api/v1/push", post(push))
            .with_state(lines.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            url,
            lines,
            _stop: stop,
        }
    }

    pub fn lines(&self) -> Vec<ReceivedLine> {
        self.lines.lock().expect("line store lock").clone()
    }

    /// Polls until `ready` accepts the lines received, or `timeout` passes.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        ready: impl Fn(&[ReceivedLine]) -> bool,
    ) -> Vec<ReceivedLine> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.lines();
            if ready(&lines) || Instant::now() >= deadline {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn push(State(lines): State<Arc<Mutex<Vec<ReceivedLine>>>>, body: Bytes) -> StatusCode {
    let Ok(decompressed) = snap::raw::Decoder::new().decompress_vec(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let Ok(request) = loki_api::logproto::PushRequest::decode(decompressed.as_slice()) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut stored = lines.lock().expect("line store lock");
    for stream in request.streams {
        let labels = parse_labels(&stream.labels);
        for entry in stream.entries {
            stored.push(ReceivedLine {
                labels: labels.clone(),
                line: entry.line,
            });
        }
    }
    StatusCode::NO_CONTENT
}

/// Parses a Loki label set such as `{service="gateway",level="info"}`.
pub fn parse_labels(text: &str) -> BTreeMap<String, String> {
    text.trim_start_matches('{')
        .trim_end_matches('}')
        .split(',')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            Some((
                name.trim().to_owned(),
                value.trim().trim_matches('"').to_owned(),
            ))
        })
        .collect()
}

fn render(value: &Option<AnyValue>) -> String {
    match value {
        Some(AnyValue::StringValue(text)) => text.clone(),
        Some(AnyValue::IntValue(number)) => number.to_string(),
        Some(AnyValue::BoolValue(flag)) => flag.to_string(),
        Some(AnyValue::DoubleValue(number)) => number.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn tokio_stream_from(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    tokio_stream::wrappers::TcpListenerStream::new(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse() {
        let labels = parse_labels("{service=\"gateway\", level=\"info\"}");
        assert_eq!(labels["service"], "gateway");
        assert_eq!(labels["level"], "info");
    }
}
