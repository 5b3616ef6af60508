//! Issues HS256 tokens, for the quickstart's development key and for
//! tests. A deployment gets its tokens from an identity provider instead.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;

use super::ADMIN_ROLE;

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    roles: Vec<&'a str>,
}

/// What to put in a token.
#[derive(Debug, Clone)]
pub struct TokenSpec<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub subject: &'a str,
    pub admin: bool,
    pub lifetime: Duration,
}

/// Signs a token for `spec` with `secret`, valid from now.
pub fn hs256(secret: &[u8], spec: &TokenSpec<'_>) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = Claims {
        iss: spec.issuer,
        aud: spec.audience,
        sub: spec.subject,
        iat: now,
        nbf: now,
        exp: now + spec.lifetime.as_secs(),
        roles: vec![if spec.admin { ADMIN_ROLE } else { "user" }],
    };
    Ok(jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret),
    )?)
}
