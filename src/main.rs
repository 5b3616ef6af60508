//! `cargo run --release`: the whole platform in one process.
//!
//! Starts the user service, the order service and the gateway, each on its
//! own port and talking real gRPC over loopback, with SQLite files in a data
//! folder. Loads a small demo data set into an empty database unless told
//! not to, then prints where everything is.

mod demo;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use lintas_telemetry::{LogFormat, TelemetryConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Runs the gateway and both gRPC services in one process.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Folder for the SQLite files; created when missing.
    #[arg(long, env = "LINTAS_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,

    /// Address and port of the gateway (REST, GraphQL, docs).
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    gateway_listen: SocketAddr,

    /// Address and port of the user service.
    #[arg(long, env = "USER_SVC_LISTEN", default_value = "127.0.0.1:50051")]
    user_svc_listen: SocketAddr,

    /// Address and port of the order service.
    #[arg(long, env = "ORDER_SVC_LISTEN", default_value = "127.0.0.1:50052")]
    order_svc_listen: SocketAddr,

    /// Load demo users and orders when the user database is empty.
    #[arg(long, env = "LINTAS_DEMO_DATA", default_value_t = true, action = clap::ArgAction::Set)]
    demo_data: bool,

    /// Log line format: pretty or json.
    #[arg(long, env = "LOG_FORMAT", default_value = "pretty")]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let telemetry = lintas_telemetry::init(&TelemetryConfig::from_env("lintas", args.log_format)?)?;

    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("failed to create data folder {}", args.data_dir.display()))?;
    let user_listener = bind(args.user_svc_listen).await?;
    let order_listener = bind(args.order_svc_listen).await?;
    let gateway_listener = bind(args.gateway_listen).await?;
    let user_url = format!("http://{}", user_listener.local_addr()?);
    let order_url = format!("http://{}", order_listener.local_addr()?);
    let gateway_address = gateway_listener.local_addr()?;

    let (stop_sender, stop_receiver) = watch::channel(false);
    let stopped = move || {
        let mut receiver = stop_receiver.clone();
        async move {
            // An error means the sender is gone, which also means stop.
            let _ = receiver.wait_for(|stop| *stop).await;
        }
    };

    let user_settings = user_svc::Settings::new(sqlite_url(&args.data_dir, "users.db"));
    let order_settings =
        order_svc::Settings::new(sqlite_url(&args.data_dir, "orders.db"), user_url.clone());
    let gateway_settings = gateway::Settings::with_backends(&user_url, &order_url);

    let mut servers = tokio::task::JoinSet::new();
    servers.spawn(user_svc::serve(user_listener, user_settings, stopped()));
    servers.spawn(order_svc::serve(order_listener, order_settings, stopped()));
    servers.spawn(gateway::serve(
        gateway_listener,
        gateway_settings,
        stopped(),
    ));

    if args.demo_data {
        if let Err(error) = demo::load_if_empty(&user_url, &order_url).await {
            tracing::warn!(error = %format!("{error:#}"), "failed to load demo data");
        }
    }
    print_urls(gateway_address, &user_url, &order_url);

    // Stop everything on a signal, or as soon as any server fails.
    let first = tokio::select! {
        () = lintas_common::shutdown::signal() => None,
        finished = servers.join_next() => finished,
    };
    let _ = stop_sender.send(true);
    let mut failure = match first {
        Some(Ok(Err(error))) => Some(error),
        Some(Err(join_error)) => Some(anyhow::anyhow!("server task failed: {join_error}")),
        _ => None,
    };
    while let Some(result) = servers.join_next().await {
        if let Ok(Err(error)) = result {
            tracing::error!(error = %format!("{error:#}"), "server failed");
            failure.get_or_insert(error);
        }
    }
    telemetry.shutdown().await;
    failure.map_or(Ok(()), Err)
}

async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("failed to bind {address}; is another copy running? Set another port with the flags in --help"))
}

fn sqlite_url(folder: &std::path::Path, file: &str) -> String {
    format!("sqlite://{}", folder.join(file).display())
}

fn print_urls(gateway: SocketAddr, user_url: &str, order_url: &str) {
    let base = format!("http://{gateway}");
    println!();
    println!("  Lintas is running.");
    println!("  GraphQL playground  {base}/graphql");
    println!("  REST API            {base}/api/v1/users");
    println!("  OpenAPI page        {base}{}", gateway::DOCS_PATH);
    println!("  OpenAPI document    {base}{}", gateway::OPENAPI_PATH);
    println!("  Health              {base}/readyz");
    println!("  user-svc (gRPC)     {user_url}");
    println!("  order-svc (gRPC)    {order_url}");
    println!("  Press Ctrl-C to stop.");
    println!();
}
