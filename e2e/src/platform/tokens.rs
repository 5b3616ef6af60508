//! Bearer tokens for the gateway: one HS256 secret per run, shared with the
//! gateway processes through the environment as a deployment would share
//! it, and the tokens the clients send, signed with it.

use std::time::Duration;

use gateway::auth::issue::{TokenSpec, hs256};

use super::process::Spec;

/// `iss` that the gateway requires.
pub const ISSUER: &str = "lintas-e2e";

/// `aud` that the gateway requires.
pub const AUDIENCE: &str = "lintas";

/// Subject of the admin token, the actor of its audit lines.
pub const ADMIN_SUBJECT: &str = "e2e-admin";

/// Lifetime of every token: longer than a whole suite or benchmark run.
const LIFETIME: Duration = Duration::from_secs(6 * 60 * 60);

/// The run's signing secret and the tokens made with it.
#[derive(Clone)]
pub struct Tokens {
    /// 64 random hex digits. The gateway uses them as a 64-byte secret,
    /// twice the minimum it accepts.
    secret: String,
    /// Token of [`ADMIN_SUBJECT`] with the `admin` role.
    pub admin: String,
}

impl Tokens {
    /// Makes a new secret and the admin token.
    pub fn new() -> anyhow::Result<Self> {
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let admin = sign(secret.as_bytes(), ADMIN_SUBJECT, true)?;
        Ok(Self { secret, admin })
    }

    /// Issues a regular user's token whose subject is `user_id`.
    pub fn user(&self, user_id: &str) -> anyhow::Result<String> {
        sign(self.secret.as_bytes(), user_id, false)
    }

    /// Issues a token with the right issuer and audience, signed with
    /// another secret, which the gateway must reject.
    pub fn forged(&self, subject: &str) -> anyhow::Result<String> {
        let other = format!("{}x", self.secret);
        sign(other.as_bytes(), subject, true)
    }

    /// Adds the gateway's JWT settings to `spec`.
    pub fn configure_gateway(&self, spec: Spec) -> Spec {
        spec.env("JWT_HS256_SECRET", &self.secret)
            .env("JWT_ISSUER", ISSUER)
            .env("JWT_AUDIENCE", AUDIENCE)
    }
}

fn sign(secret: &[u8], subject: &str, admin: bool) -> anyhow::Result<String> {
    hs256(
        secret,
        &TokenSpec {
            issuer: ISSUER,
            audience: AUDIENCE,
            subject,
            admin,
            lifetime: LIFETIME,
        },
    )
}

#[cfg(test)]
mod tests {
    use gateway::JwtSettings;
    use gateway::auth::{TokenError, Verifier};

    use super::*;

    /// Builds the gateway's own verifier with the settings that
    /// `configure_gateway` passes to the gateway.
    fn verifier(tokens: &Tokens) -> Verifier {
        Verifier::new(&JwtSettings::hs256(tokens.secret.clone(), ISSUER, AUDIENCE)).unwrap()
    }

    #[tokio::test]
    async fn gateway_accepts_issued_tokens() {
        let tokens = Tokens::new().unwrap();
        let verifier = verifier(&tokens);

        let admin = verifier.verify(&tokens.admin).await.unwrap();
        assert_eq!(admin.subject, ADMIN_SUBJECT);
        assert!(admin.admin);

        let user_id = "0190a000-0000-7000-8000-000000000001";
        let user = verifier
            .verify(&tokens.user(user_id).unwrap())
            .await
            .unwrap();
        assert_eq!(user.subject, user_id);
        assert!(!user.admin);
    }

    #[tokio::test]
    async fn gateway_rejects_forged_token() {
        let tokens = Tokens::new().unwrap();
        let forged = tokens.forged(ADMIN_SUBJECT).unwrap();
        let outcome = verifier(&tokens).verify(&forged).await;
        assert!(
            matches!(outcome, Err(TokenError::Invalid(_))),
            "{outcome:?}"
        );
    }

    #[test]
    fn every_run_has_its_own_secret() {
        assert_ne!(Tokens::new().unwrap().secret, Tokens::new().unwrap().secret);
    }
}
