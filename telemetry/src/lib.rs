//! Telemetry shared by the gateway and both services: traces, logs and
//! Prometheus metrics.
//!
//! [`init`] installs one `tracing` subscriber with three outputs: log lines
//! on stdout (JSON with `trace_id` and `span_id`, or a readable format), an
//! OpenTelemetry layer that exports spans over OTLP/gRPC when an endpoint is
//! configured, and a Loki push client when `LOKI_URL` is set. Trace ids are
//! assigned even when nothing is exported, so logs and responses always
//! carry one. `propagation` moves the W3C trace context across HTTP and
//! gRPC, `grpc` instruments tonic servers and clients, and `metrics` serves
//! Prometheus registries.

pub mod config;
pub mod grpc;
pub mod io_thread;
mod json_format;
mod log_layer;
pub mod loki;
pub mod metrics;
pub mod propagation;
#[cfg(feature = "testing")]
pub mod testing;

use std::time::Duration;

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use config::{LogFormat, TelemetryConfig};
pub use log_layer::JsonLines;

/// Adds the process's telemetry counters (log lines sent to and dropped
/// before Loki) to `registry`.
pub fn register_metrics(registry: &prometheus::Registry) -> prometheus::Result<()> {
    loki::LokiMetrics::global().register(registry)
}
pub use propagation::current_trace_id;

/// Keeps the exporters alive; [`TelemetryGuard::shutdown`] flushes them.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
    loki: Option<loki::LokiClient>,
    /// Writes the JSON lines still queued for stdout when dropped.
    stdout_flush: Option<WorkerGuard>,
}

impl TelemetryGuard {
    /// Exports every finished span and sends queued log lines, waiting at
    /// most a few seconds, so that requests served just before a shutdown
    /// are not lost.
    pub async fn shutdown(self) {
        let provider = self.provider;
        let flushed = tokio::task::spawn_blocking(move || {
            if let Err(error) = provider.force_flush() {
                eprintln!("failed to flush spans: {error}");
            }
            if let Err(error) = provider.shutdown_with_timeout(Duration::from_secs(5)) {
                eprintln!("failed to shut down the span exporter: {error}");
            }
        });
        let _ = tokio::time::timeout(Duration::from_secs(6), flushed).await;
        if let Some(loki) = self.loki {
            let _ = tokio::time::timeout(Duration::from_secs(5), loki.shutdown()).await;
        }
        drop(self.stdout_flush);
    }
}

/// Creates the stdout writer of JSON lines. A background thread takes the
/// lines from a queue and writes all that are waiting with one system
/// call. When the queue is full, the logging thread waits.
fn stdout_writer() -> (NonBlocking, WorkerGuard) {
    const STDOUT_BUFFER_BYTES: usize = 64 * 1024;
    // About a second of lines at full load. The queue's slots are allocated
    // up front: the library's default of 128,000 kept 4 MiB resident.
    const QUEUED_LINES: usize = 16 * 1024;
    tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUED_LINES)
        .lossy(false)
        .thread_name("stdout-log-writer")
        .finish(std::io::BufWriter::with_capacity(
            STDOUT_BUFFER_BYTES,
            std::io::stdout(),
        ))
}

/// Installs the global subscriber, tracer provider and propagator.
///
/// Fails when a second subscriber is installed in one process; the
/// one-process quickstart calls it once.
pub fn init(config: &TelemetryConfig) -> anyhow::Result<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    // The span exporter's connection and the Loki client run on a thread
    // of their own, so that an overloaded service still delivers its
    // telemetry instead of dropping it.
    let export_runtime =
        io_thread::start("telemetry-export").context("failed to start the export thread")?;
    let export_context = export_runtime.enter();
    let provider = tracer_provider(config)?;
    let tracer = provider.tracer("lintas");
    opentelemetry::global::set_tracer_provider(provider.clone());

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (loki_layer, loki) = match &config.loki_url {
        Some(url) => {
            let settings = loki::LokiSettings::new(
                url.clone(),
                config.service_name.clone(),
                config.environment.clone(),
            );
            let (layer, client) = loki::start(settings, loki::LokiMetrics::global().clone())?;
            (Some(layer), Some(client))
        }
        None => (None, None),
    };
    drop(export_context);
    let (stdout, stdout_flush) = match config.log_format {
        LogFormat::Json => {
            let (writer, flush) = stdout_writer();
            let lines = loki_layer
                .unwrap_or_else(|| JsonLines::new(config.service_name.clone()))
                .with_stdout(writer);
            (lines.boxed(), Some(flush))
        }
        // Colours only on a terminal, so that a log redirected to a file
        // stays plain text.
        LogFormat::Pretty => {
            let pretty = tracing_subscriber::fmt::layer()
                .compact()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
            (pretty.and_then(loki_layer).boxed(), None)
        }
    };

    tracing_subscriber::registry()
        .with(filter)
        .with(span_layer(tracer))
        .with(stdout)
        .try_init()
        .context("a tracing subscriber is already installed")?;

    tracing::info!(
        service = %config.service_name,
        otlp_endpoint = config.otlp_endpoint.as_deref().unwrap_or("none"),
        sampler = %config.sampler_description(),
        loki = config.loki_url.is_some(),
        "telemetry started"
    );
    Ok(TelemetryGuard {
        provider,
        loki,
        stdout_flush,
    })
}

/// Builds the OpenTelemetry layer, lean for a service's hot path. Spans
/// carry only the attributes set where they are made, and only warnings
/// and errors become span events. Each log line already goes to Loki with
/// its trace id, so copying every line into its span would double the
/// export.
fn span_layer<S>(tracer: opentelemetry_sdk::trace::Tracer) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(tracing_subscriber::filter::filter_fn(|metadata| {
            metadata.is_span() || *metadata.level() <= tracing::Level::WARN
        }))
}

fn tracer_provider(config: &TelemetryConfig) -> anyhow::Result<SdkTracerProvider> {
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attributes([opentelemetry::KeyValue::new(
            "deployment.environment.name",
            config.environment.clone(),
        )])
        .build();
    let mut builder = SdkTracerProvider::builder()
        .with_sampler(config.sampler())
        .with_resource(resource);
    if let Some(endpoint) = &config.otlp_endpoint {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .with_timeout(Duration::from_secs(5))
            .build()
            .context("failed to create the OTLP span exporter")?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}
