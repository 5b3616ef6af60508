//! JSON log lines with the trace and span ids of the span they were
//! emitted in, so that a log line links to its trace.

use std::fmt;

use opentelemetry::trace::{SpanContext, TraceContextExt};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::Id;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats each event as one JSON object: `timestamp`, `level`, `target`,
/// `service`, `message`, the event's fields, and `trace_id` and `span_id`
/// when the event happened inside a traced span.
pub struct JsonFormat {
    service: String,
}

impl JsonFormat {
    pub fn new(service: String) -> Self {
        Self { service }
    }
}

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let trace = context
            .parent_span()
            .and_then(|span| span_context_of(&span.id()));
        let line = event_line(event, &self.service, trace.as_ref())?;
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Returns the OpenTelemetry span context of the tracing span `id`, when it has a
/// valid one.
pub(crate) fn span_context_of(id: &Id) -> Option<SpanContext> {
    let otel = tracing::dispatcher::get_default(|dispatch| {
        tracing_opentelemetry::get_otel_context(id, dispatch)
    })?;
    let span_context = otel.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

/// Builds the JSON object of one log line, shared by stdout and the Loki
/// client so both carry the same fields.
pub(crate) fn event_line(
    event: &Event<'_>,
    service: &str,
    trace: Option<&SpanContext>,
) -> Result<Map<String, Value>, fmt::Error> {
    let mut line = Map::new();
    let mut timestamp = String::new();
    SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
    line.insert("timestamp".into(), Value::String(timestamp));
    line.insert(
        "level".into(),
        Value::String(event.metadata().level().to_string()),
    );
    line.insert(
        "target".into(),
        Value::String(event.metadata().target().to_owned()),
    );
    line.insert("service".into(), Value::String(service.to_owned()));
    event.record(&mut FieldVisitor(&mut line));
    if let Some(trace) = trace {
        line.insert(
            "trace_id".into(),
            Value::String(trace.trace_id().to_string()),
        );
        line.insert("span_id".into(), Value::String(trace.span_id().to_string()));
    }
    Ok(line)
}

struct FieldVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for FieldVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_owned(), Value::String(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::Bool(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), Value::String(value.to_string()));
    }
}
