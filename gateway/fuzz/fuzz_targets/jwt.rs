//! Bearer token verification (`gateway::auth::Verifier`).
//!
//! The verifier takes HS256 tokens signed with `SECRET` and RS256 or ES256
//! tokens whose keys are in the test JWKS file of `gateway/tests/fixtures`.
//! Input: the first byte chooses a mode, and the rest is its data:
//! - `r`: the data is a token. It must be rejected, because signing one
//!   takes the secret or a private key.
//! - `m`: the data describes a subject and an edit. A token issued for the
//!   subject by `gateway::auth::issue::hs256` must be accepted, and
//!   rejected after the edit, truncated and with a character appended.
//! - `c`: the data is the claims JSON of a token that the target signs
//!   with `SECRET`, so that verification gets past the signature to the
//!   claims.
//!
//! Any other first byte chooses the mode by its value modulo 3.
//!
//! Properties: verification never panics, and a token is accepted only
//! when its signature verifies and its claims pass every check: issuer,
//! audience, subject, expiry and not-before.

#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gateway::auth::issue::{TokenSpec, hs256};
use gateway::auth::{Identity, JwksSource, JwtSettings, TokenError, Verifier};
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tokio::runtime::Runtime;

const SECRET: &[u8] = b"a fuzzing secret of 32 bytes ...";
const ISSUER: &str = "fuzz-issuer";
const AUDIENCE: &str = "fuzz-audience";
const LEEWAY: Duration = Duration::from_secs(30);

struct Harness {
    runtime: Runtime,
    verifier: Verifier,
}

/// One verifier for all inputs, as the gateway has. It remembers verified
/// tokens, which the checks below allow for.
static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    // Reloading the JWKS file reads it with tokio.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the fuzzer can build a tokio runtime");
    let mut settings = JwtSettings::hs256(SECRET, ISSUER, AUDIENCE);
    settings.leeway = LEEWAY;
    let jwks = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/jwt/jwks.json"
    );
    settings.jwks = Some(JwksSource::File(jwks.into()));
    let verifier = {
        let _context = runtime.enter();
        Verifier::new(&settings).expect("the fuzzing settings are valid")
    };
    Harness { runtime, verifier }
});

fn verify(token: &str) -> Result<Identity, TokenError> {
    HARNESS.runtime.block_on(HARNESS.verifier.verify(token))
}

/// The `m` mode's data.
#[derive(Debug, Arbitrary)]
struct Edit {
    subject: String,
    admin: bool,
    /// Index of the token byte to replace, modulo the token's length.
    position: usize,
    /// The replacement, modulo 128 so that the token stays a string.
    replacement: u8,
}

fn reject_any_token(data: &[u8]) {
    let token = String::from_utf8_lossy(data);
    assert!(
        verify(&token).is_err(),
        "a token nobody signed was accepted"
    );
}

fn reject_edited_token(data: &[u8]) {
    let Ok(edit) = Edit::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let spec = TokenSpec {
        issuer: ISSUER,
        audience: AUDIENCE,
        subject: &edit.subject,
        admin: edit.admin,
        lifetime: Duration::from_secs(600),
    };
    let token = hs256(SECRET, &spec).expect("HS256 signing does not fail");
    let is_valid_subject = !edit.subject.is_empty()
        && edit.subject.len() <= 255
        && edit.subject.bytes().all(|byte| byte.is_ascii_graphic());
    match verify(&token) {
        Ok(identity) => {
            assert!(is_valid_subject, "accepted subject {:?}", edit.subject);
            assert_eq!(identity.subject, edit.subject);
            assert_eq!(identity.admin, edit.admin);
        }
        Err(error) => assert!(!is_valid_subject, "rejected a valid token: {error}"),
    }

    let mut edited = token.clone().into_bytes();
    let index = edit.position % edited.len();
    edited[index] = edit.replacement % 128;
    let edited = String::from_utf8(edited).expect("ASCII stays UTF-8");
    if edited != token {
        assert!(
            verify(&edited).is_err(),
            "accepted a token with byte {index} changed: {edited}"
        );
    }
    assert!(
        verify(&token[..index]).is_err(),
        "accepted a token cut to {index} bytes"
    );
    let extended = format!("{token}{}", char::from(edit.replacement % 128));
    assert!(
        verify(&extended).is_err(),
        "accepted a token with a character appended: {extended}"
    );
}

/// Signs `claims` as an HS256 JWT with `SECRET` (RFC 7519, RFC 7515).
fn sign(claims: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims);
    let signing_input = format!("{header}.{payload}");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET).expect("HMAC takes any key");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

fn check_signed_claims(data: &[u8]) {
    let Ok(identity) = verify(&sign(data)) else {
        return;
    };
    let claims: Value = serde_json::from_slice(data).expect("accepted claims are JSON");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs_f64();
    let leeway = LEEWAY.as_secs_f64();

    assert_eq!(claims["iss"], ISSUER, "accepted issuer {}", claims["iss"]);
    let audience_matches = match &claims["aud"] {
        Value::String(audience) => audience == AUDIENCE,
        Value::Array(audiences) => audiences.iter().any(|audience| audience == AUDIENCE),
        _ => false,
    };
    assert!(audience_matches, "accepted audience {}", claims["aud"]);
    assert_eq!(claims["sub"], identity.subject.as_str());
    let subject = &identity.subject;
    assert!(
        (1..=255).contains(&subject.len()) && subject.bytes().all(|byte| byte.is_ascii_graphic()),
        "accepted subject {subject:?}"
    );
    let expires = claims["exp"]
        .as_f64()
        .expect("accepted claims have a numeric exp");
    assert!(expires + leeway >= now, "accepted exp {expires}, now {now}");
    if let Some(not_before) = claims.get("nbf").and_then(Value::as_f64) {
        assert!(
            not_before - leeway <= now,
            "accepted nbf {not_before}, now {now}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode {
        b'r' => reject_any_token(rest),
        b'm' => reject_edited_token(rest),
        b'c' => check_signed_claims(rest),
        other => match other % 3 {
            0 => reject_any_token(rest),
            1 => reject_edited_token(rest),
            _ => check_signed_claims(rest),
        },
    }
});
