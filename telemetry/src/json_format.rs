//! JSON log lines with the trace and span ids of the span they were
//! emitted in, so that a log line links to its trace.
//!
//! Each line is written straight into a string, without building a map
//! first: it is made once per event on the request path of every service.

use std::fmt::{self, Write as _};

use opentelemetry::trace::{SpanContext, TraceContextExt};
use tracing::Event;
use tracing::field::{Field, Visit};
use tracing::span::Id;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};

/// Keys that the line sets itself; an event field of the same name is left
/// out, so that no key appears twice.
const OWN_KEYS: [&str; 4] = ["timestamp", "level", "target", "service"];

/// Keys taken from the span context when there is one.
const TRACE_KEYS: [&str; 2] = ["trace_id", "span_id"];

/// Returns the OpenTelemetry span context of the tracing span `id`, when it has a
/// valid one.
pub(crate) fn span_context_of(id: &Id) -> Option<SpanContext> {
    let otel = tracing::dispatcher::get_default(|dispatch| {
        tracing_opentelemetry::get_otel_context(id, dispatch)
    })?;
    let span_context = otel.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

/// Appends the JSON object of one log line and a newline to `out`:
/// `timestamp`, `level`, `target`, `service`, the event's fields (its
/// `message` among them), and `trace_id` and `span_id` when `trace` is set.
pub(crate) fn write_line(
    out: &mut String,
    event: &Event<'_>,
    service: &str,
    trace: Option<&SpanContext>,
) -> fmt::Result {
    out.push_str("{\"timestamp\":\"");
    SystemTime.format_time(&mut Writer::new(out))?;
    out.push_str("\",\"level\":\"");
    out.push_str(event.metadata().level().as_str());
    out.push_str("\",\"target\":");
    write_str(out, event.metadata().target());
    out.push_str(",\"service\":");
    write_str(out, service);
    let mut fields = FieldWriter {
        out: &mut *out,
        skip_trace_keys: trace.is_some(),
        scratch: String::new(),
    };
    event.record(&mut fields);
    if let Some(trace) = trace {
        write!(
            out,
            ",\"trace_id\":\"{}\",\"span_id\":\"{}\"",
            trace.trace_id(),
            trace.span_id()
        )?;
    }
    out.push_str("}\n");
    Ok(())
}

/// Appends `value` as a JSON string, quoted and escaped.
fn write_str(out: &mut String, value: &str) {
    out.push('"');
    let mut start = 0;
    for (index, byte) in value.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&value[start..index]);
        if escape.is_empty() {
            // Infallible: writing to a String.
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escape);
        }
        start = index + 1;
    }
    out.push_str(&value[start..]);
    out.push('"');
}

/// Appends each field of an event as `,"name":value`.
struct FieldWriter<'a> {
    out: &'a mut String,
    /// Whether `trace_id` and `span_id` come from the span context, so that
    /// the event's own fields of those names are left out.
    skip_trace_keys: bool,
    /// Reused for fields recorded through `Debug`.
    scratch: String,
}

impl FieldWriter<'_> {
    /// Writes `,"name":` and returns true, or returns false for a field
    /// that the line sets itself.
    fn key(&mut self, field: &Field) -> bool {
        let name = field.name();
        if OWN_KEYS.contains(&name) || (self.skip_trace_keys && TRACE_KEYS.contains(&name)) {
            return false;
        }
        self.out.push(',');
        write_str(self.out, name);
        self.out.push(':');
        true
    }

    fn number(&mut self, field: &Field, value: impl fmt::Display) {
        if self.key(field) {
            let _ = write!(self.out, "{value}");
        }
    }
}

impl Visit for FieldWriter<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.key(field) {
            self.scratch.clear();
            let _ = write!(self.scratch, "{value:?}");
            write_str(self.out, &self.scratch);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.key(field) {
            write_str(self.out, value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field, value);
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.number(field, value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.number(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.number(field, value);
        } else if self.key(field) {
            // JSON has no NaN or infinity.
            self.out.push_str("null");
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.number(field, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.key(field) {
            self.scratch.clear();
            let _ = write!(self.scratch, "{value}");
            write_str(self.out, &self.scratch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::write_str;

    fn escaped(value: &str) -> String {
        let mut out = String::new();
        write_str(&mut out, value);
        out
    }

    #[test]
    fn write_str_escapes_like_serde_json() {
        for value in [
            "plain",
            "a \"quoted\" \\ path",
            "line\nbreak\ttab\r",
            "\u{1}\u{8}\u{c}\u{1f}",
            "é ✓ \u{7f}",
        ] {
            assert_eq!(
                escaped(value),
                serde_json::to_string(value).unwrap(),
                "{value:?}"
            );
        }
    }
}
