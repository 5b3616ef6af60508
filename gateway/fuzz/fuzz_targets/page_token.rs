//! Signed page tokens (`lintas_common::page_token`).
//!
//! Input: the first byte chooses a mode, and the rest is its data:
//! - `r`: the data is a token. It must be rejected, because signing one
//!   takes the codec's secret.
//! - `p`: the data is a payload, which the target signs as the codec does,
//!   so that decoding gets past the signature to the payload's JSON, its
//!   query fingerprint and its issue time.
//! - `t`: the data describes a cursor, a query and an edit. The cursor must
//!   survive encoding and decoding unchanged (or, when its token is longer
//!   than `MAX_TOKEN_LEN`, be rejected as malformed), and the token must be
//!   rejected after the edit, after truncation, with an extra character
//!   and for another query.
//!
//! Any other first byte chooses the mode by its value modulo 3.
//!
//! Properties: decoding never panics. A token is accepted only when the
//! codec's key signed it, and an edited token or one used with another
//! query is rejected.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use lintas_common::page_token::{DEFAULT_MAX_AGE, MAX_TOKEN_LEN, PageTokenCodec, PageTokenError};
use serde::{Deserialize, Serialize};

const SECRET: &[u8] = b"fuzzing secret";
const QUERY: &str = "fuzz";

/// A cursor of the shape the services use: a sort key and a row id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Arbitrary)]
struct Cursor {
    key: String,
    id: String,
    total: Option<i64>,
}

/// The `t` mode's data.
#[derive(Debug, Arbitrary)]
struct RoundTrip {
    cursor: Cursor,
    query: String,
    other_query: String,
    /// Index of the token byte to replace, modulo the token's length.
    position: usize,
    /// The replacement, modulo 128 so that the token stays a string.
    replacement: u8,
}

fn codec() -> PageTokenCodec {
    PageTokenCodec::new(SECRET, DEFAULT_MAX_AGE)
}

fn reject_any_token(data: &[u8]) {
    let token = String::from_utf8_lossy(data);
    let decoded = codec().decode::<serde_json::Value>(QUERY, &token);
    assert!(decoded.is_err(), "a token nobody signed was accepted");
}

/// Signs `payload` as the codec documents its format:
/// `base64url(payload) "." base64url(HMAC-SHA256(key, base64url(payload)))`.
fn sign(payload: &[u8]) -> String {
    let body = URL_SAFE_NO_PAD.encode(payload);
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET).expect("HMAC takes any key");
    mac.update(body.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{body}.{signature}")
}

fn decode_signed_payload(data: &[u8]) {
    let token = sign(data);
    let decoded = codec().decode::<serde_json::Value>(QUERY, &token);
    if decoded.is_ok() {
        let payload: serde_json::Value =
            serde_json::from_slice(data).expect("an accepted payload is JSON");
        assert!(
            payload.is_object(),
            "accepted a payload that is not an object"
        );
    }
}

fn round_trip(data: &[u8]) {
    let Ok(input) = RoundTrip::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let codec = codec();
    let token = codec.encode(&input.query, &input.cursor);
    let decoded = codec.decode::<Cursor>(&input.query, &token);
    let fits = token.len() <= MAX_TOKEN_LEN;
    if fits {
        assert_eq!(
            decoded,
            Ok(input.cursor.clone()),
            "the cursor did not survive a round trip"
        );
    } else {
        // Reachable only with cursors far longer than the services' sort
        // keys, or full of characters that JSON escapes.
        assert_eq!(
            decoded,
            Err(PageTokenError::Malformed),
            "a token over the length limit was not rejected"
        );
    }
    if fits && input.other_query != input.query {
        assert_eq!(
            codec.decode::<Cursor>(&input.other_query, &token),
            Err(PageTokenError::QueryMismatch),
            "a token was accepted for another query"
        );
    }

    let mut edited = token.clone().into_bytes();
    let index = input.position % edited.len();
    edited[index] = input.replacement % 128;
    let edited = String::from_utf8(edited).expect("ASCII stays UTF-8");
    if edited != token {
        assert!(
            codec.decode::<Cursor>(&input.query, &edited).is_err(),
            "accepted a token with byte {index} changed: {edited}"
        );
    }
    assert!(
        codec
            .decode::<Cursor>(&input.query, &token[..index])
            .is_err(),
        "accepted a token cut to {index} bytes"
    );
    let extended = format!("{token}{}", char::from(input.replacement % 128));
    assert!(
        codec.decode::<Cursor>(&input.query, &extended).is_err(),
        "accepted a token with a character appended: {extended}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode {
        b'r' => reject_any_token(rest),
        b'p' => decode_signed_payload(rest),
        b't' => round_trip(rest),
        other => match other % 3 {
            0 => reject_any_token(rest),
            1 => decode_signed_payload(rest),
            _ => round_trip(rest),
        },
    }
});
