//! The JSON decoding of every REST write body.
//!
//! Input: the first byte chooses the body, its value modulo 6 indexing
//! `WriteBody::ALL` (so the digits `0` to `5` choose the bodies in order),
//! and the remaining bytes are the body.
//!
//! Properties: decoding never panics, and a rejection is a 4xx with a code
//! and a detail. An accepted body is a JSON object, or an empty cancel body.

#![no_main]

use gateway::fuzzing::{WriteBody, decode_write_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let kind = WriteBody::ALL[usize::from(selector) % WriteBody::ALL.len()];

    match decode_write_body(kind, body) {
        Ok(()) => {
            let is_empty_cancel =
                kind == WriteBody::Cancel && body.iter().all(u8::is_ascii_whitespace);
            let is_object =
                serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body).is_ok();
            assert!(
                is_object || is_empty_cancel,
                "{kind:?} accepted a body that is not a JSON object"
            );
        }
        Err(rejection) => {
            assert!(
                rejection.status.is_client_error(),
                "{kind:?} rejected a body with {}: {rejection:?}",
                rejection.status
            );
            assert!(!rejection.code.is_empty(), "{kind:?}: empty code");
            assert!(
                !rejection.detail.trim().is_empty(),
                "{kind:?}: empty detail for {}",
                rejection.code
            );
        }
    }
});
