//! The `order-svc` binary: reads its configuration and calls [`order_svc::serve`].

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use lintas_common::logging::{self, LogFormat};

const DEFAULT_USER_SERVICE_TIMEOUT_MS: u64 =
    order_svc::DEFAULT_USER_SERVICE_TIMEOUT.as_millis() as u64;

/// gRPC order service (order.v1.OrderService).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address and port to serve gRPC on.
    #[arg(long, env = "ORDER_SVC_LISTEN", default_value = "0.0.0.0:50052")]
    listen: SocketAddr,

    /// SQLite database URL; the file is created when missing.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/orders.db")]
    database_url: String,

    /// gRPC URL of the user service, where CreateOrder checks that the user exists and is active.
    #[arg(
        long,
        env = "USER_SERVICE_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    user_service_url: String,

    /// Bound on one call to the user service, connect included, in milliseconds.
    #[arg(long, env = "USER_SERVICE_TIMEOUT_MS", default_value_t = DEFAULT_USER_SERVICE_TIMEOUT_MS)]
    user_service_timeout_ms: u64,

    /// Secret that signs page tokens; replicas must share it. Random per process when unset.
    #[arg(long, env = "PAGE_TOKEN_SECRET", hide_env_values = true)]
    page_token_secret: Option<String>,

    /// Log line format: json or pretty.
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    logging::init(args.log_format);

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to bind {}", args.listen))?;
    let settings = order_svc::Settings {
        database_url: args.database_url,
        page_token_secret: args.page_token_secret,
        user_service_url: args.user_service_url,
        user_service_timeout: Duration::from_millis(args.user_service_timeout_ms),
    };
    order_svc::serve(listener, settings, lintas_common::shutdown::signal()).await
}
