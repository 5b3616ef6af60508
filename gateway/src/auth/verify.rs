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

/// Longest time a verified token is reused without checking its signature
/// again. A change of the JWKS keys forgets every verified token at once.
const VERIFIED_TTL: Duration = Duration::from_secs(60);

/// Most verified tokens remembered.
const VERIFIED_CAPACITY: u64 = 10_000;

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

/// A token that passed every check.
#[derive(Clone)]
struct Verified {
    identity: Identity,
    /// The token's `exp`, in seconds since the Unix epoch.
    expires: u64,
    /// The JWKS generation the token was checked under.
    generation: u64,
}

/// Verifies tokens against the configured keys and claims.
pub struct Verifier {
    hs256: Option<DecodingKey>,
    jwks: Option<JwksStore>,
    issuer: String,
    audience: String,
    leeway: Duration,
    roles_claim: String,
    /// Tokens that passed every check, with their `exp` and the JWKS
    /// generation they were checked under, so that a client sending the
    /// same token again costs a lookup instead of a signature check.
    verified: moka::sync::Cache<String, Verified>,
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
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                .time_to_live(VERIFIED_TTL)
                .build(),
        })
    }

    /// Returns the identity a valid token asserts.
    pub async fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(invalid(format!(
                "token is longer than {MAX_TOKEN_LEN} bytes"
            )));
        }
        let generation = self.jwks.as_ref().map_or(0, JwksStore::generation);
        if let Some(verified) = self.verified.get(token)
            && verified.generation == generation
            && unix_now() <= verified.expires.saturating_add(self.leeway.as_secs())
        {
            return Ok(verified.identity);
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|error| self.header_error(token, &error))?;
        // RFC 7515 requires a recipient to reject extensions marked critical
        // that it does not process, and this verifier processes none.
        if header_json(token).is_some_and(|header| header.contains_key("crit")) {
            return Err(invalid(
                "token header lists critical extensions (crit), which are not supported".to_owned(),
            ));
        }
        let key = self.key_for(header.alg, header.kid.as_deref()).await?;
        let claims = jsonwebtoken::decode::<Value>(token, &key, &self.validation(header.alg))
            .map_err(|error| invalid(describe(&error)))?
            .claims;
        let identity = self.identity(&claims)?;
        if let Some(expires) = claims.get("exp").and_then(Value::as_u64) {
            let verified = Verified {
                identity: identity.clone(),
                expires,
                generation,
            };
            self.verified.insert(token.to_owned(), verified);
        }
        Ok(identity)
    }

    async fn key_for(&self, alg: Algorithm, kid: Option<&str>) -> Result<DecodingKey, TokenError> {
        match (alg, &self.hs256, &self.jwks) {
            (Algorithm::HS256, Some(key), _) => Ok(key.clone()),
            (Algorithm::RS256 | Algorithm::ES256, _, Some(jwks)) => jwks.key(alg, kid).await,
            _ => Err(self.not_accepted(Some(&format!("{alg:?}")))),
        }
    }

    fn not_accepted(&self, alg: Option<&str>) -> TokenError {
        let alg = alg.map(|alg| format!(" {alg}")).unwrap_or_default();
        invalid(format!(
            "token algorithm{alg} is not accepted; accepted: {}",
            self.accepted().join(", ")
        ))
    }

    /// Explains why jsonwebtoken could not read the header of `token`. It
    /// reports every header problem as a JSON error, so the header is read
    /// again here to tell an unknown or missing `alg` from another field of
    /// the wrong type. At most 16 visible ASCII characters of `alg` are
    /// repeated, so the message cannot carry much of what the client sent.
    fn header_error(&self, token: &str, error: &jsonwebtoken::errors::Error) -> TokenError {
        let Some(header) = header_json(token) else {
            return invalid(format!("token is not a valid JWT: {}", describe(error)));
        };
        match header.get("alg") {
            Some(Value::String(alg)) if alg.parse::<Algorithm>().is_err() => {
                let printable = !alg.is_empty()
                    && alg.len() <= 16
                    && alg.bytes().all(|byte| byte.is_ascii_graphic());
                self.not_accepted(printable.then(|| format!("{alg:?}")).as_deref())
            }
            Some(Value::String(_)) => {
                invalid("token header has a field of the wrong type".to_owned())
            }
            _ => invalid("token header lacks an alg string".to_owned()),
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

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn is_valid_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject.len() <= MAX_SUBJECT_LEN
        && subject.bytes().all(|byte| byte.is_ascii_graphic())
}

/// Returns the JSON object in the header of `token`, if it has one.
fn header_json(token: &str) -> Option<serde_json::Map<String, Value>> {
    use base64::Engine;
    let segment = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(header) => Some(header),
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::issue::{TokenSpec, hs256};

    const SECRET: &[u8] = b"a-test-secret-that-is-32-bytes!!";

    fn verifier(leeway: Duration) -> Verifier {
        let mut settings = JwtSettings::hs256(SECRET, "issuer", "audience");
        settings.leeway = leeway;
        Verifier::new(&settings).unwrap()
    }

    fn token(lifetime: Duration) -> String {
        let spec = TokenSpec {
            issuer: "issuer",
            audience: "audience",
            subject: "ayu",
            admin: false,
            lifetime,
        };
        hs256(SECRET, &spec).unwrap()
    }

    #[tokio::test]
    async fn a_remembered_token_still_expires() {
        let verifier = verifier(Duration::ZERO);
        let token = token(Duration::from_secs(1));
        assert_eq!(verifier.verify(&token).await.unwrap().subject, "ayu");
        assert!(verifier.verified.get(&token).is_some());
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let error = verifier.verify(&token).await.unwrap_err();
        assert_eq!(error, TokenError::Invalid("token has expired".to_owned()));
    }

    #[tokio::test]
    async fn only_valid_tokens_are_remembered() {
        let verifier = verifier(Duration::ZERO);
        let mut forged = token(Duration::from_secs(60));
        forged.push('x');
        assert!(verifier.verify(&forged).await.is_err());
        assert!(verifier.verified.get(&forged).is_none());
    }
}
