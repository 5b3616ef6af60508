//! Opaque, tamper-evident page tokens for keyset pagination.
//!
//! A token is `base64url(nonce || XChaCha20-Poly1305(key, payload))`, so a
//! client can neither read nor change it: the cursor inside holds the last
//! row's sort key, which may be an email address. The JSON payload contains
//! the cursor (the sort key and id of the last row returned), a fingerprint
//! of the query's filters and order, and the time it was issued. A token is
//! rejected when it does not decrypt, when it is used with other filters or
//! another order than it was issued for, or when it is older than the
//! codec's maximum age.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::time::now_micros;

/// Bytes of the random nonce at the start of a token.
const NONCE_LEN: usize = 24;

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
    #[error("page_token: does not decrypt: the token was altered or issued by another deployment")]
    Altered,
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

/// Encrypts and decrypts page tokens with one secret key.
#[derive(Clone)]
pub struct PageTokenCodec {
    cipher: XChaCha20Poly1305,
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
    /// Creates a codec whose key derives from `secret`, of any length.
    /// Replicas of one service must share the secret so that any of them
    /// accepts the others' tokens.
    pub fn new(secret: &[u8], max_age: Duration) -> Self {
        let key = Sha256::new()
            .chain_update(b"lintas page token key v2\0")
            .chain_update(secret)
            .finalize();
        Self {
            cipher: XChaCha20Poly1305::new(&key),
            max_age,
        }
    }

    /// Creates a codec with a random secret, for a single process whose
    /// tokens need not survive a restart.
    pub fn with_random_secret() -> Self {
        let secret: [u8; 32] = rand::random();
        Self::new(&secret, DEFAULT_MAX_AGE)
    }

    /// Encodes `cursor` into an encrypted token bound to `query`.
    pub fn encode<C: Serialize>(&self, query: &str, cursor: &C) -> String {
        let payload = Payload {
            q: fingerprint(query),
            iat: now_micros(),
            c: cursor,
        };
        // serde_json fails only on maps with non-string keys, which no cursor has.
        let json = serde_json::to_vec(&payload).expect("page token payload serialises");
        let nonce: [u8; NONCE_LEN] = rand::random();
        // Encryption fails only for plaintexts beyond 256 GiB.
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), json.as_slice())
            .expect("page token payload encrypts");
        let mut token = nonce.to_vec();
        token.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(token)
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
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| PageTokenError::Malformed)?;
        if bytes.len() <= NONCE_LEN {
            return Err(PageTokenError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let json = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), sealed)
            .map_err(|_| PageTokenError::Altered)?;
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
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for position in [0, NONCE_LEN, bytes.len() / 2, bytes.len() - 1] {
            let mut altered = bytes.clone();
            altered[position] ^= 1;
            assert_eq!(
                codec.decode::<Cursor>("q", &URL_SAFE_NO_PAD.encode(altered)),
                Err(PageTokenError::Altered),
                "byte {position}"
            );
        }
    }

    #[test]
    fn token_does_not_reveal_the_cursor() {
        let codec = PageTokenCodec::with_random_secret();
        let token = codec.encode("q", &cursor());
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("alice"), "{text}");
        // A fresh nonce makes each token different.
        assert_ne!(token, codec.encode("q", &cursor()));
    }

    #[test]
    fn token_from_other_secret_is_rejected() {
        let issuer = PageTokenCodec::new(b"one", DEFAULT_MAX_AGE);
        let verifier = PageTokenCodec::new(b"two", DEFAULT_MAX_AGE);
        let token = issuer.encode("q", &cursor());
        assert_eq!(
            verifier.decode::<Cursor>("q", &token),
            Err(PageTokenError::Altered)
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
        let short = URL_SAFE_NO_PAD.encode([0u8; NONCE_LEN]);
        for token in ["", "abc", "a.b.c", "!!!.???", &short, &"x".repeat(5000)] {
            assert!(
                codec.decode::<Cursor>("q", token).is_err(),
                "token {token:?} was accepted"
            );
        }
    }
}
