//! W3C trace context across process boundaries: extraction from and
//! injection into HTTP headers and gRPC metadata, and the trace id of the
//! current span.
//!
//! A malformed `traceparent` extracts as an empty context, so the receiver
//! starts a new trace instead of failing the request.

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Reads trace context from HTTP headers, which is also where gRPC carries
/// its metadata.
pub struct HeaderExtractor<'a>(pub &'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Writes trace context into HTTP headers.
pub struct HeaderInjector<'a>(pub &'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Returns the context that a request's headers carry; empty when they carry
/// none or a malformed one.
pub fn extract(headers: &http::HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    })
}

/// Writes the context of `span` into `headers` as `traceparent` (and
/// `tracestate` when there is one).
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    let context = span.context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
    // The W3C propagator writes `tracestate` even when the state is empty,
    // and an empty header tells the client nothing.
    if headers
        .get(TRACESTATE)
        .is_some_and(|value| value.is_empty())
    {
        headers.remove(TRACESTATE);
    }
}

/// The W3C trace state header.
const TRACESTATE: &str = "tracestate";

/// Returns the trace id of `span` as 32 lowercase hex digits, or an empty
/// string when the span belongs to no trace.
pub fn trace_id(span: &tracing::Span) -> String {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span_context.trace_id().to_string()
    } else {
        String::new()
    }
}

/// Records the span's trace id in its `trace_id` field, which the span must
/// declare, and returns it as [`trace_id`] does. Log outputs that copy span
/// fields into each line (the Loki client) then carry the trace id on every
/// line inside the span.
pub fn record_trace_id(span: &tracing::Span) -> String {
    let id = trace_id(span);
    if !id.is_empty() {
        span.record("trace_id", id.as_str());
    }
    id
}

/// Returns the trace id of the current span; see [`trace_id`].
pub fn current_trace_id() -> String {
    trace_id(&tracing::Span::current())
}
