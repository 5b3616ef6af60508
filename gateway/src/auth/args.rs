//! Command-line flags and environment variables of authentication, shared
//! by the binaries that start a gateway.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;

use super::{AuthSettings, JwksSource, JwtSettings, Secret};

/// Authentication flags.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthArgs {
    /// Run without authentication: every caller may do everything. Only
    /// for local use; without it the gateway needs a key below.
    #[arg(long, env = "AUTH_DISABLED", default_value = "off", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, hide_possible_values = true)]
    auth_disabled: bool,

    /// Secret of HS256 tokens, at least 32 bytes.
    #[arg(long, env = "JWT_HS256_SECRET", hide_env_values = true)]
    jwt_hs256_secret: Option<String>,

    /// JWKS file with the public keys of RS256 and ES256 tokens.
    #[arg(long, env = "JWT_JWKS_FILE", conflicts_with = "jwt_jwks_url")]
    jwt_jwks_file: Option<PathBuf>,

    /// JWKS URL of the identity provider (https; http only on loopback).
    #[arg(long, env = "JWT_JWKS_URL")]
    jwt_jwks_url: Option<String>,

    /// How long JWKS keys are used before they are loaded again, in
    /// seconds. A token naming an unknown key id loads them at once.
    #[arg(long, env = "JWT_JWKS_REFRESH_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    jwt_jwks_refresh_secs: u64,

    /// Required `iss` claim.
    #[arg(long, env = "JWT_ISSUER")]
    jwt_issuer: Option<String>,

    /// Required `aud` claim.
    #[arg(long, env = "JWT_AUDIENCE")]
    jwt_audience: Option<String>,

    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    #[arg(long, env = "JWT_LEEWAY_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=300))]
    jwt_leeway_secs: u64,

    /// Claim that holds the caller's roles; `admin` among them grants
    /// everything.
    #[arg(long, env = "JWT_ROLES_CLAIM", default_value = "roles")]
    jwt_roles_claim: String,
}

impl AuthArgs {
    /// Turns the flags into settings, or says what is missing.
    pub fn settings(self) -> anyhow::Result<AuthSettings> {
        let has_key = self.jwt_hs256_secret.is_some()
            || self.jwt_jwks_file.is_some()
            || self.jwt_jwks_url.is_some();
        if self.auth_disabled {
            anyhow::ensure!(
                !has_key,
                "AUTH_DISABLED is on while JWT keys are set; choose one"
            );
            tracing::warn!("authentication is off: every caller may do everything");
            return Ok(AuthSettings::Disabled);
        }
        anyhow::ensure!(
            has_key,
            "authentication is not configured: set JWT_HS256_SECRET, JWT_JWKS_FILE or \
             JWT_JWKS_URL with JWT_ISSUER and JWT_AUDIENCE, or AUTH_DISABLED=on for local use"
        );
        let (Some(issuer), Some(audience)) = (self.jwt_issuer, self.jwt_audience) else {
            anyhow::bail!("JWT authentication needs JWT_ISSUER and JWT_AUDIENCE");
        };
        let jwks = match (self.jwt_jwks_file, self.jwt_jwks_url) {
            (Some(path), _) => Some(JwksSource::File(path)),
            (None, Some(url)) => Some(JwksSource::Url(url)),
            (None, None) => None,
        };
        Ok(AuthSettings::Jwt(JwtSettings {
            hs256_secret: self
                .jwt_hs256_secret
                .map(|secret| Secret(secret.into_bytes())),
            jwks,
            jwks_refresh: Duration::from_secs(self.jwt_jwks_refresh_secs),
            issuer,
            audience,
            leeway: Duration::from_secs(self.jwt_leeway_secs),
            roles_claim: self.jwt_roles_claim,
        }))
    }
}
