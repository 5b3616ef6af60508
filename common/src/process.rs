//! The run loop the service binaries share: serve until SIGTERM or Ctrl-C,
//! with a Prometheus endpoint beside the main server.

use std::future::Future;
use std::pin::Pin;

use tokio::net::TcpListener;
use tokio::sync::watch;

/// Future that completes when the process should stop.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs `server` and a `GET /metrics` endpoint for `registry` until a
/// shutdown signal, then stops both. `server` receives the shutdown future
/// to pass to its graceful-shutdown hook. When the server returns first, for
/// example because it failed to start, the metrics endpoint stops too.
pub async fn serve_with_metrics<F, Fut>(
    metrics_listener: TcpListener,
    registry: prometheus::Registry,
    server: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    if let Err(error) = lintas_telemetry::register_metrics(&registry) {
        tracing::warn!(%error, "failed to add the telemetry counters to the metrics");
    }
    let (stop, stopped) = watch::channel(false);
    let mut metrics_stopped = stopped.clone();
    let metrics = tokio::spawn(lintas_telemetry::metrics::serve(
        metrics_listener,
        registry,
        async move {
            // An error means the sender is gone, which also means stop.
            let _ = metrics_stopped.wait_for(|stop| *stop).await;
        },
    ));

    let result = server(Box::pin(async move {
        crate::shutdown::signal().await;
        let _ = stop.send(true);
    }))
    .await;

    drop(stopped);
    match metrics.await {
        Ok(Err(error)) => tracing::error!(error = %format!("{error:#}"), "metrics endpoint failed"),
        Err(error) => tracing::error!(%error, "metrics endpoint task failed"),
        Ok(Ok(())) => {}
    }
    result
}
