//! Opaque, tamper-evident page tokens for keyset pagination.
//!
//! A token is `base64url(payload) "." base64url(HMAC-SHA256(key, payload))`.
//! The JSON payload contains the cursor (the sort key and id of the last row
//! returned), a fingerprint of the query's filters and order, and the time it
//! was issued. A token is rejected when its signature does not verify, when it
//! is used with other filters or another order than it was issued for, or
//! when it is older than the codec's maximum age.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::time::now_micros;

type HmacSha256 = Hmac<Sha256>;

/// Default lifetime of a token: a day is long enough to page through any
/// listing by hand and short enough that old links stop working.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Maximum token length accepted; real tokens are well under 1 KiB.
pub const MAX_TOKEN_LEN: usize = 2048;

/// Reasons a page token is rejected. Each maps to `INVALID_ARGUMENT`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PageTokenError {
    #[error("page_token: malformed token")]
    Malformed,
    #[error(
        "page_token: signature does not match, the token was altered or issued by another deployment"
    )]
    BadSignature,
    #[error(
        "page_token: issued for different filters or ordering, start again from the first page"
    )]
    QueryMismatch,
    #[error("page_token: expired, start again from the first page")]
    Expired,
}

impl From<PageTokenError> for tonic::Status {
    fn from(error: PageTokenError) -> Self {
        tonic::Status::invalid_argument(error.to_string())
    }
}

/// Signs and verifies page tokens with one secret key.
#[derive(Clone)]
pub struct PageTokenCodec {
    key: Vec<u8>,
    max_age: Duration,
}

#[derive(Serialize, Deserialize)]
struct Payload<C> {
    /// Fingerprint of the query the token belongs to.
    q: String,
    /// Issue time in microseconds since the Unix epoch.
    iat: i64,
    /// Position after the last row of the page.
    c: C,
}

impl PageTokenCodec {
    /// Creates a codec that signs with `secret`. Replicas of one service must
    /// share the secret so that any of them accepts the others' tokens.
    pub fn new(secret: &[u8], max_age: Duration) -> Self {
        Self {
            key: secret.to_vec(),
            max_age,
        }
    }

    /// Creates a codec with a random secret, for a single process whose
    /// tokens need not survive a restart.
    pub fn with_random_secret() -> Self {
        let secret: [u8; 32] = rand::random();
        Self::new(&secret, DEFAULT_MAX_AGE)
    }

    /// Encodes `cursor` into a signed token bound to `query`.
    pub fn encode<C: Serialize>(&self, query: &str, cursor: &C) -> String {
        let payload = Payload {
            q: fingerprint(query),
            iat: now_micros(),
            c: cursor,
        };
        // serde_json fails only on maps with non-string keys, which no cursor has.
        let json = serde_json::to_vec(&payload).expect("page token payload serialises");
        let body = URL_SAFE_NO_PAD.encode(json);
        let signature = URL_SAFE_NO_PAD.encode(self.sign(body.as_bytes()));
        format!("{body}.{signature}")
    }

    /// Verifies `token` against `query` and returns its cursor.
    pub fn decode<C: DeserializeOwned>(
        &self,
        query: &str,
        token: &str,
    ) -> Result<C, PageTokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(PageTokenError::Malformed);
        }
        let (body, signature) = token.split_once('.').ok_or(PageTokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| PageTokenError::Malformed)?;

        let mut mac = self.mac();
        mac.update(body.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| PageTokenError::BadSignature)?;

        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| PageTokenError::Malformed)?;
        let payload: Payload<C> =
            serde_json::from_slice(&json).map_err(|_| PageTokenError::Malformed)?;

        if payload.q != fingerprint(query) {
            return Err(PageTokenError::QueryMismatch);
        }
        let age_micros = now_micros().saturating_sub(payload.iat);
        let max_age_micros = i64::try_from(self.max_age.as_micros()).unwrap_or(i64::MAX);
        if age_micros > max_age_micros || age_micros < -max_age_micros {
            return Err(PageTokenError::Expired);
        }
        Ok(payload.c)
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length.
        HmacSha256::new_from_slice(&self.key).expect("HMAC accepts any key length")
    }

    fn sign(&self, body: &[u8]) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }
}

/// Hashes a query description so that tokens stay short.
fn fingerprint(query: &str) -> String {
    let digest = Sha256::digest(query.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Cursor {
        key: String,
        id: String,
    }

    fn cursor() -> Cursor {
        Cursor {
            key: "alice".into(),
            id: "0001".into(),
        }
    }

    #[test]
    fn token_round_trips() {
        let codec = PageTokenCodec::with_random_secret();
        let token = codec.encode("name asc", &cursor());
        assert_eq!(codec.decode::<Cursor>("name asc", &token), Ok(cursor()));
    }

    #[test]
    fn token_for_other_query_is_rejected() {
        let codec = PageTokenCodec::with_random_secret();
        let token = codec.encode("name asc", &cursor());
        assert_eq!(
            codec.decode::<Cursor>("name desc", &token),
            Err(PageTokenError::QueryMismatch)
        );
    }

    #[test]
    fn altered_token_is_rejected() {
        let codec = PageTokenCodec::with_random_secret();
        let token = codec.encode("q", &cursor());
        let (body, signature) = token.split_once('.').unwrap();
        let mut json = URL_SAFE_NO_PAD.decode(body).unwrap();
        let last = json.len() - 3;
        json[last] ^= 1;
        let forged = format!("{}.{signature}", URL_SAFE_NO_PAD.encode(json));
        assert_eq!(
            codec.decode::<Cursor>("q", &forged),
            Err(PageTokenError::BadSignature)
        );
    }

    #[test]
    fn token_from_other_secret_is_rejected() {
        let issuer = PageTokenCodec::new(b"one", DEFAULT_MAX_AGE);
        let verifier = PageTokenCodec::new(b"two", DEFAULT_MAX_AGE);
        let token = issuer.encode("q", &cursor());
        assert_eq!(
            verifier.decode::<Cursor>("q", &token),
            Err(PageTokenError::BadSignature)
        );
    }

    #[test]
    fn expired_token_is_rejected() {
        let codec = PageTokenCodec::new(b"k", Duration::ZERO);
        let token = codec.encode("q", &cursor());
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(
            codec.decode::<Cursor>("q", &token),
            Err(PageTokenError::Expired)
        );
    }

    #[test]
    fn garbage_tokens_are_malformed() {
        let codec = PageTokenCodec::with_random_secret();
        for token in ["", "abc", "a.b.c", "!!!.???", &"x".repeat(5000)] {
            assert!(
                codec.decode::<Cursor>("q", token).is_err(),
                "token {token:?} was accepted"
            );
        }
    }
}
