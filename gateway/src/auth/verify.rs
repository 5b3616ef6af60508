//! Checks bearer tokens: signature, algorithm, expiry, not-before, issuer,
//! audience and subject.

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::jwks::JwksStore;
use super::{ADMIN_ROLE, Identity, JwtSettings};

/// Longest token accepted, in bytes; longer ones are rejected unread.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Longest subject accepted, in bytes.
const MAX_SUBJECT_LEN: usize = 255;

/// Shortest HS256 secret accepted: as long as the hash (RFC 7518 3.2).
pub const MIN_SECRET_LEN: usize = 32;

/// Why a token was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is malformed, forged, expired or for someone else: the
    /// client must get another one.
    #[error("{0}")]
    Invalid(String),
    /// The keys that would check the token could not be loaded; the client
    /// is not at fault.
    #[error("signing keys are unavailable: {0}")]
    KeysUnavailable(String),
}

fn invalid(message: impl Into<String>) -> TokenError {
    TokenError::Invalid(message.into())
}

/// Verifies tokens against the configured keys and claims.
pub struct Verifier {
    hs256: Option<DecodingKey>,
    jwks: Option<JwksStore>,
    issuer: String,
    audience: String,
    leeway: Duration,
    roles_claim: String,
}

impl Verifier {
    /// Checks the settings and loads a JWKS file, if one is configured.
    pub fn new(settings: &JwtSettings) -> anyhow::Result<Self> {
        if settings.hs256_secret.is_none() && settings.jwks.is_none() {
            anyhow::bail!("JWT authentication needs an HS256 secret, a JWKS file or a JWKS URL");
        }
        if settings.issuer.trim().is_empty() || settings.audience.trim().is_empty() {
            anyhow::bail!("JWT authentication needs the issuer and the audience to require");
        }
        let hs256 = match &settings.hs256_secret {
            Some(secret) if secret.0.len() < MIN_SECRET_LEN => anyhow::bail!(
                "the HS256 secret is {} bytes long; use at least {MIN_SECRET_LEN} random bytes",
                secret.0.len()
            ),
            Some(secret) => Some(DecodingKey::from_secret(&secret.0)),
            None => None,
        };
        let jwks = settings
            .jwks
            .as_ref()
            .map(|source| JwksStore::new(source.clone(), settings.jwks_refresh))
            .transpose()?;
        Ok(Self {
            hs256,
            jwks,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            leeway: settings.leeway,
            roles_claim: settings.roles_claim.clone(),
        })
    }

    /// Returns the identity a valid token asserts.
    pub async fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(invalid(format!(
                "token is longer than {MAX_TOKEN_LEN} bytes"
            )));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|error| invalid(format!("token is not a valid JWT: {}", describe(&error))))?;
        let key = self.key_for(header.alg, header.kid.as_deref()).await?;
        let claims = jsonwebtoken::decode::<Value>(token, &key, &self.validation(header.alg))
            .map_err(|error| invalid(describe(&error)))?
            .claims;
        self.identity(&claims)
    }

    async fn key_for(&self, alg: Algorithm, kid: Option<&str>) -> Result<DecodingKey, TokenError> {
        match (alg, &self.hs256, &self.jwks) {
            (Algorithm::HS256, Some(key), _) => Ok(key.clone()),
            (Algorithm::RS256 | Algorithm::ES256, _, Some(jwks)) => jwks.key(alg, kid).await,
            _ => Err(invalid(format!(
                "token algorithm {alg:?} is not accepted; accepted: {}",
                self.accepted().join(", ")
            ))),
        }
    }

    fn accepted(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.hs256.is_some() {
            names.push("HS256");
        }
        if self.jwks.is_some() {
            names.extend(["RS256", "ES256"]);
        }
        names
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway.as_secs();
        validation
    }

    fn identity(&self, claims: &Value) -> Result<Identity, TokenError> {
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|subject| is_valid_subject(subject))
            .ok_or_else(|| {
                invalid(format!(
                    "token subject must be 1 to {MAX_SUBJECT_LEN} visible ASCII characters"
                ))
            })?;
        let admin = match claims.get(&self.roles_claim) {
            None | Some(Value::Null) => false,
            Some(Value::String(role)) => role == ADMIN_ROLE,
            Some(Value::Array(roles)) => roles.iter().any(|role| role == ADMIN_ROLE),
            Some(_) => {
                return Err(invalid(format!(
                    "token claim {}: expected a role name or an array of role names",
                    self.roles_claim
                )));
            }
        };
        Ok(Identity {
            subject: subject.to_owned(),
            admin,
        })
    }
}

fn is_valid_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject.len() <= MAX_SUBJECT_LEN
        && subject.bytes().all(|byte| byte.is_ascii_graphic())
}

/// A client-facing description of a decoding failure; it never repeats the
/// token.
fn describe(error: &jsonwebtoken::errors::Error) -> String {
    match error.kind() {
        ErrorKind::ExpiredSignature => "token has expired".to_owned(),
        ErrorKind::ImmatureSignature => "token is not valid yet (nbf)".to_owned(),
        ErrorKind::InvalidIssuer => "token issuer is not accepted".to_owned(),
        ErrorKind::InvalidAudience => "token audience is not accepted".to_owned(),
        ErrorKind::InvalidSignature => "token signature is invalid".to_owned(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "token algorithm is not accepted".to_owned()
        }
        ErrorKind::MissingRequiredClaim(claim) => format!("token lacks the {claim} claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("token claim {claim} is malformed"),
        ErrorKind::Base64(_) | ErrorKind::Utf8(_) => "token is not valid base64url".to_owned(),
        ErrorKind::Json(_) => "token header or claims are not valid JSON".to_owned(),
        _ => "token is invalid".to_owned(),
    }
}
