//! `cargo run --release`: the whole platform in one process.
//!
//! Starts the user service, the order service and the gateway, each on its
//! own port and talking real gRPC over loopback, with SQLite files in a data
//! folder. Loads a small demo data set into an empty database unless told
//! not to, then prints where everything is.

mod demo;
mod dev_auth;

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

    /// Serve and call gRPC in plaintext on addresses other than loopback,
    /// which the services reject otherwise: on or off. The quickstart has
    /// no TLS settings.
    #[arg(long, env = "ALLOW_PLAINTEXT", default_value = "off", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set, hide_possible_values = true)]
    allow_plaintext: bool,

    /// Load demo users and orders when the user database is empty.
    #[arg(long, env = "LINTAS_DEMO_DATA", default_value_t = true, action = clap::ArgAction::Set)]
    demo_data: bool,

    /// Run without authentication, so that requests need no token.
    #[arg(long, env = "AUTH_DISABLED", default_value_t = false, action = clap::ArgAction::Set)]
    auth_disabled: bool,

    /// Log line format: pretty or json.
    #[arg(long, env = "LOG_FORMAT", default_value = "pretty")]
    log_format: LogFormat,
}

// glibc's allocator took a fifth of the gateway's CPU under load, with
// contention between threads; mimalloc keeps per-thread heaps.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let telemetry = lintas_telemetry::init(&TelemetryConfig::from_env("lintas", args.log_format)?)?;
    lintas_common::memory::apply_process_settings();

    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("failed to create data folder {}", args.data_dir.display()))?;
    let user_listener = bind(args.user_svc_listen).await?;
    let order_listener = bind(args.order_svc_listen).await?;
    let gateway_listener = bind(args.gateway_listen).await?;
    let user_url = format!("http://{}", user_listener.local_addr()?);
    let order_url = format!("http://{}", order_listener.local_addr()?);
    let gateway_address = gateway_listener.local_addr()?;

    // The gateway stops first and drains its requests while the services
    // still answer them; the services stop after it.
    let (gateway_stop, gateway_stopping) = watch::channel(false);
    let (services_stop, services_stopping) = watch::channel(false);

    let mut user_settings = user_svc::Settings::new(sqlite_url(&args.data_dir, "users.db"));
    user_settings.allow_plaintext = args.allow_plaintext;
    let mut order_settings =
        order_svc::Settings::new(sqlite_url(&args.data_dir, "orders.db"), user_url.clone());
    order_settings.allow_plaintext = args.allow_plaintext;
    let mut gateway_settings = gateway::Settings::with_backends(&user_url, &order_url);
    gateway_settings.allow_plaintext = args.allow_plaintext;
    let secret = if args.auth_disabled {
        tracing::warn!("authentication is off: every caller may do everything");
        None
    } else {
        let secret = dev_auth::secret(&args.data_dir)?;
        gateway_settings.auth = gateway::AuthSettings::Jwt(gateway::JwtSettings::hs256(
            secret.clone(),
            dev_auth::ISSUER,
            dev_auth::AUDIENCE,
        ));
        Some(secret)
    };

    let mut services = tokio::task::JoinSet::new();
    services.spawn(user_svc::serve(
        user_listener,
        user_settings,
        stopped(&services_stopping),
    ));
    services.spawn(order_svc::serve(
        order_listener,
        order_settings,
        stopped(&services_stopping),
    ));
    let mut gateway = tokio::spawn(gateway::serve(
        gateway_listener,
        gateway_settings,
        stopped(&gateway_stopping),
    ));

    if args.demo_data {
        if let Err(error) = demo::load_if_empty(&user_url, &order_url).await {
            tracing::warn!(error = %format!("{error:#}"), "failed to load demo data");
        }
    }
    print_urls(gateway_address, &user_url, &order_url);
    if let Some(secret) = secret {
        let user_id = demo::oldest_user(&user_url).await.unwrap_or_else(|error| {
            tracing::warn!(error = %format!("{error:#}"), "no user for a regular token");
            None
        });
        let tokens = dev_auth::issue(&secret, &args.data_dir, user_id)?;
        print_tokens(gateway_address, &tokens);
    }
    eprintln!("  Press Ctrl-C to stop.");
    eprintln!();

    // Stop everything on a signal, or as soon as any server fails.
    let mut failure = None;
    let mut gateway_finished = false;
    tokio::select! {
        () = lintas_common::shutdown::signal() => {}
        result = &mut gateway => {
            gateway_finished = true;
            record_failure(&mut failure, result);
        }
        Some(result) = services.join_next() => record_failure(&mut failure, result),
    }
    let _ = gateway_stop.send(true);
    if !gateway_finished {
        record_failure(&mut failure, gateway.await);
    }
    let _ = services_stop.send(true);
    while let Some(result) = services.join_next().await {
        record_failure(&mut failure, result);
    }
    telemetry.shutdown().await;
    failure.map_or(Ok(()), Err)
}

/// Completes when `stopping` turns true or its sender is dropped.
fn stopped(
    stopping: &watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut receiver = stopping.clone();
    async move {
        let _ = receiver.wait_for(|stop| *stop).await;
    }
}

/// Keeps the first server failure and logs the others.
fn record_failure(
    failure: &mut Option<anyhow::Error>,
    result: Result<anyhow::Result<()>, tokio::task::JoinError>,
) {
    let error = match result {
        Ok(Ok(())) => return,
        Ok(Err(error)) => error,
        Err(join_error) => anyhow::anyhow!("server task failed: {join_error}"),
    };
    if failure.is_some() {
        tracing::error!(error = %format!("{error:#}"), "server failed");
    } else {
        *failure = Some(error);
    }
}

async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("failed to bind {address}; is another copy running? Set another port with the flags in --help"))
}

fn sqlite_url(folder: &std::path::Path, file: &str) -> String {
    format!("sqlite://{}", folder.join(file).display())
}

// The banner goes to stderr, because stdout carries the log, which may be
// shipped somewhere, and the banner holds tokens.
fn print_urls(gateway: SocketAddr, user_url: &str, order_url: &str) {
    let base = format!("http://{gateway}");
    eprintln!();
    eprintln!("  Lintas is running.");
    eprintln!("  GraphQL playground  {base}/graphql");
    eprintln!("  REST API            {base}/api/v1/users");
    eprintln!("  OpenAPI page        {base}{}", gateway::DOCS_PATH);
    eprintln!("  OpenAPI document    {base}{}", gateway::OPENAPI_PATH);
    eprintln!("  Health              {base}/readyz");
    eprintln!("  user-svc (gRPC)     {user_url}");
    eprintln!("  order-svc (gRPC)    {order_url}");
    eprintln!();
}

fn print_tokens(gateway: SocketAddr, tokens: &dev_auth::Tokens) {
    let folder = tokens.folder.display();
    eprintln!("  Every API request needs a bearer token. These are valid for 24 hours,");
    eprintln!("  signed with the development key in {folder}/dev-jwt-secret:");
    eprintln!();
    eprintln!("  Admin (may do everything), also in {folder}/admin.token:");
    eprintln!("    Authorization: Bearer {}", tokens.admin);
    if let Some((token, id)) = &tokens.user {
        eprintln!();
        eprintln!("  Regular user {id} (own record and orders only),");
        eprintln!("  also in {folder}/user.token:");
        eprintln!("    Authorization: Bearer {token}");
    }
    eprintln!();
    eprintln!("  For example:");
    eprintln!(
        "    curl -H \"Authorization: Bearer $(cat {folder}/admin.token)\" http://{gateway}/api/v1/users"
    );
    eprintln!("  In the GraphQL playground, paste a token into the Headers tab.");
    eprintln!();
}
