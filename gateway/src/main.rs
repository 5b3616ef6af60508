//! The `gateway` binary: reads its configuration and calls [`gateway::serve`].

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use lintas_common::logging::{self, LogFormat};

/// HTTP gateway: REST and GraphQL over the user and order gRPC services.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address and port to serve HTTP on.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,

    /// URL of the user service.
    #[arg(
        long,
        env = "USER_SERVICE_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    user_service_url: String,

    /// URL of the order service.
    #[arg(
        long,
        env = "ORDER_SERVICE_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    order_service_url: String,

    /// Upper bound on each backend call, in milliseconds.
    #[arg(long, env = "BACKEND_TIMEOUT_MS", default_value_t = 5000)]
    backend_timeout_ms: u64,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 65536)]
    max_body_bytes: usize,

    /// Log line format: json or pretty.
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    logging::init(args.log_format);

    let mut settings =
        gateway::Settings::with_backends(&args.user_service_url, &args.order_service_url);
    settings.user_service.timeout = Duration::from_millis(args.backend_timeout_ms);
    settings.order_service.timeout = Duration::from_millis(args.backend_timeout_ms);
    settings.max_body_bytes = args.max_body_bytes;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to bind {}", args.listen))?;
    gateway::serve(listener, settings, lintas_common::shutdown::signal()).await
}
