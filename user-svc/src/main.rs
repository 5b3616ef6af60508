//! The `user-svc` binary: reads its configuration and calls [`user_svc::serve`].

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use lintas_common::logging::{self, LogFormat};

/// gRPC user service (user.v1.UserService).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address and port to serve gRPC on.
    #[arg(long, env = "USER_SVC_LISTEN", default_value = "0.0.0.0:50051")]
    listen: SocketAddr,

    /// SQLite database URL; the file is created when missing.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/users.db")]
    database_url: String,

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
    let settings = user_svc::Settings {
        database_url: args.database_url,
        page_token_secret: args.page_token_secret,
    };
    user_svc::serve(listener, settings, lintas_common::shutdown::signal()).await
}
