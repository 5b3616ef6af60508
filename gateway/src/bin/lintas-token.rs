//! `lintas-token`: prints an HS256 token that a gateway with the same
//! `JWT_HS256_SECRET`, `JWT_ISSUER` and `JWT_AUDIENCE` accepts. For
//! development clusters and scripts; production tokens come from an
//! identity provider.

use std::time::Duration;

use clap::Parser;
use gateway::auth::issue::{TokenSpec, hs256};

/// Prints a bearer token signed with the gateway's HS256 secret.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Secret the gateway checks tokens with.
    #[arg(
        long,
        env = "JWT_HS256_SECRET",
        hide_env_values = true,
        required_unless_present = "secret_file"
    )]
    secret: Option<String>,

    /// File holding the secret as raw bytes, such as the quickstart's
    /// data/dev-jwt-secret.
    #[arg(long, conflicts_with = "secret")]
    secret_file: Option<std::path::PathBuf>,

    /// The token's `iss`: the gateway's JWT_ISSUER.
    #[arg(long, env = "JWT_ISSUER")]
    issuer: String,

    /// The token's `aud`: the gateway's JWT_AUDIENCE.
    #[arg(long, env = "JWT_AUDIENCE")]
    audience: String,

    /// The token's `sub`: a user id for a regular user.
    #[arg(long)]
    subject: String,

    /// Give the token the admin role.
    #[arg(long)]
    admin: bool,

    /// Lifetime of the token, in seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    lifetime_secs: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let secret = match (&args.secret, &args.secret_file) {
        (_, Some(path)) => std::fs::read(path)
            .map_err(|error| anyhow::anyhow!("failed to read {}: {error}", path.display()))?,
        (Some(secret), None) => secret.clone().into_bytes(),
        (None, None) => anyhow::bail!("set --secret, JWT_HS256_SECRET or --secret-file"),
    };
    anyhow::ensure!(
        secret.len() >= gateway::auth::MIN_SECRET_LEN,
        "the secret is {} bytes long; the gateway accepts only {} or more",
        secret.len(),
        gateway::auth::MIN_SECRET_LEN
    );
    let token = hs256(
        &secret,
        &TokenSpec {
            issuer: &args.issuer,
            audience: &args.audience,
            subject: &args.subject,
            admin: args.admin,
            lifetime: Duration::from_secs(args.lifetime_secs),
        },
    )?;
    println!("{token}");
    Ok(())
}
