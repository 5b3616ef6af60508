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
    let traceparent = headers.get(TRACEPARENT).map(http::HeaderValue::as_bytes);
    if !traceparent.is_some_and(is_well_formed) {
        return Context::new();
    }
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    })
}

/// The W3C trace parent header.
const TRACEPARENT: &str = "traceparent";

/// Checks the shape of a `traceparent` value: four fields of 2, 32, 16 and
/// 2 lowercase hex digits, as the W3C Trace Context specification requires,
/// and nothing after them in version 00. The OpenTelemetry propagator parses each field
/// as a number without checking its length, so `00-1-2-01` became trace id
/// 1. The propagator still rejects all-zero ids and version `ff`.
fn is_well_formed(value: &[u8]) -> bool {
    let lengths = [2, 32, 16, 2];
    let mut fields = value.split(|&byte| byte == b'-');
    let shaped = lengths.iter().all(|&length| {
        fields.next().is_some_and(|field| {
            field.len() == length
                && field
                    .iter()
                    .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(byte))
        })
    });
    // A later version may add fields after these four.
    shaped && (fields.next().is_none() || !value.starts_with(b"00"))
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

#[cfg(test)]
mod tests {
    use super::is_well_formed;

    #[test]
    fn traceparent_shape_is_checked() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(is_well_formed(valid.as_bytes()));
        let later_version = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
        assert!(is_well_formed(later_version.as_bytes()));
        let malformed = [
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-1-2-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "",
        ];
        for value in malformed {
            assert!(!is_well_formed(value.as_bytes()), "{value}");
        }
    }
}
