//! The `tracing` layer that turns each event into one JSON line and hands
//! it to its outputs: stdout, the Loki queue, or both. The line is made
//! once, however many outputs take it.

use std::cell::RefCell;
use std::io::Write as _;

use tracing::{Event, Subscriber};
use tracing_appender::non_blocking::NonBlocking;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::json_format;
use crate::loki::LokiQueue;

/// JSON log lines for stdout and Loki.
pub struct JsonLines {
    service: String,
    /// Written by a background thread, so an event costs no system call.
    stdout: Option<NonBlocking>,
    loki: Option<LokiQueue>,
}

impl JsonLines {
    /// Creates a layer with no output. [`JsonLines::with_stdout`] and
    /// [`JsonLines::with_loki`] add them.
    pub(crate) fn new(service: String) -> Self {
        Self {
            service,
            stdout: None,
            loki: None,
        }
    }

    pub(crate) fn with_stdout(mut self, writer: NonBlocking) -> Self {
        self.stdout = Some(writer);
        self
    }

    pub(crate) fn with_loki(mut self, queue: LokiQueue) -> Self {
        self.loki = Some(queue);
        self
    }
}

thread_local! {
    /// The line being built, reused so that its buffer is allocated once
    /// per thread.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<S> Layer<S> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, context: Context<'_, S>) {
        let to_loki = self
            .loki
            .as_ref()
            .filter(|_| !is_transport_target(event.metadata().target()));
        if self.stdout.is_none() && to_loki.is_none() {
            return;
        }
        let trace = context
            .event_span(event)
            .and_then(|span| json_format::span_context_of(&span.id()));
        LINE.with(|line| {
            // A log call made while formatting re-enters this layer on the
            // same thread, and that inner line is dropped.
            let Ok(mut line) = line.try_borrow_mut() else {
                return;
            };
            line.clear();
            if json_format::write_line(&mut line, event, &self.service, trace.as_ref()).is_err() {
                return;
            }
            if let Some(stdout) = &self.stdout {
                // NOTE: a full stdout queue blocks the caller rather than
                // dropping the line.
                let _ = stdout.clone().write_all(line.as_bytes());
            }
            if let Some(queue) = to_loki {
                // Loki takes the line without its newline.
                queue.push(*event.metadata().level(), line.trim_end().to_owned());
            }
        });
    }
}

/// Events of the HTTP stack that carries the pushes, and of the Loki client
/// itself, are not pushed: a push would log, and the log would be pushed.
fn is_transport_target(target: &str) -> bool {
    ["hyper", "h2", "reqwest", "rustls", "lintas_telemetry::loki"]
        .iter()
        .any(|prefix| target.starts_with(prefix))
}
