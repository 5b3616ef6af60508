//! Who is calling, and what they may do.
//!
//! Requests to the API carry a bearer JWT (`verify`), signed with a shared
//! HS256 secret or with RS256/ES256 keys from a JWKS (`jwks`). The
//! `authenticate` middleware turns it into a [`Caller`]; every operation in
//! [`crate::api::Api`] then asks [`policy::authorize`] before it calls a
//! backend, so one rule serves REST and GraphQL alike.

mod args;
mod call;
mod challenge;
pub mod issue;
mod jwks;
mod middleware;
pub mod policy;
mod verify;

use std::fmt;
use std::time::Duration;

pub use args::AuthArgs;
pub use call::Call;
pub use jwks::JwksSource;
pub use middleware::{Authenticator, Identified, authenticate, identify};
pub use verify::{MIN_SECRET_LEN, TokenError, Verifier};

/// How the gateway authenticates requests.
#[derive(Debug, Clone)]
pub enum AuthSettings {
    /// Every request is allowed everything. Only for local use: the binary
    /// runs this way only when told to explicitly.
    Disabled,
    /// Bearer JWTs are required on every API request.
    Jwt(JwtSettings),
}

/// Which tokens the gateway accepts.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// Secret of HS256 tokens; at least 32 bytes.
    pub hs256_secret: Option<Secret>,
    /// Public keys of RS256 and ES256 tokens.
    pub jwks: Option<JwksSource>,
    /// How long fetched JWKS keys are used before they are fetched again.
    pub jwks_refresh: Duration,
    /// Required `iss` claim.
    pub issuer: String,
    /// Required `aud` claim (one of the token's audiences).
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// Claim holding the caller's roles: a string or an array of strings.
    pub roles_claim: String,
}

impl JwtSettings {
    /// Settings for HS256 tokens with the documented defaults.
    pub fn hs256(secret: impl Into<Vec<u8>>, issuer: &str, audience: &str) -> Self {
        Self {
            hs256_secret: Some(Secret(secret.into())),
            jwks: None,
            jwks_refresh: Duration::from_secs(300),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway: Duration::from_secs(30),
            roles_claim: "roles".to_owned(),
        }
    }
}

/// Key material that never appears in logs or debug output.
#[derive(Clone)]
pub struct Secret(pub Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Secret({} bytes)", self.0.len())
    }
}

/// The role that grants everything.
pub const ADMIN_ROLE: &str = "admin";

/// What a verified token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`: for a regular user, the id of their user record.
    pub subject: String,
    pub admin: bool,
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credentials were checked: the request did not pass the
    /// authentication middleware. Every rule rejects it.
    Anonymous,
    /// Authentication is switched off; every rule allows it.
    Unchecked,
    /// The holder of a valid token.
    Authenticated(Identity),
}

impl Caller {
    /// Tells whether every rule allows this caller: an admin, or anyone
    /// while authentication is off.
    pub fn sees_everything(&self) -> bool {
        match self {
            Caller::Unchecked => true,
            Caller::Authenticated(identity) => identity.admin,
            Caller::Anonymous => false,
        }
    }

    /// The name an audit line gives the caller.
    pub fn actor(&self) -> &str {
        match self {
            Caller::Anonymous => "anonymous",
            Caller::Unchecked => "unauthenticated",
            Caller::Authenticated(identity) => &identity.subject,
        }
    }
}
