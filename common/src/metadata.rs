//! Request ids carried in gRPC metadata and echoed in every response.

use lintas_proto::common::v1::ResponseMetadata;
use tonic::metadata::MetadataMap;

/// Metadata key that carries the request id between the gateway and services.
pub const REQUEST_ID_KEY: &str = "x-request-id";

/// Metadata key of an UNAVAILABLE status that a service returns because a
/// service it calls is unavailable; the value names that service. Such a
/// status comes from a working service, so its callers do not count it
/// against that service's circuit.
pub const UNAVAILABLE_DEPENDENCY_KEY: &str = "x-unavailable-dependency";

pub use lintas_telemetry::grpc::{CALLER_ROLE_KEY, CALLER_SUBJECT_KEY};

/// Maximum request id length accepted from a caller; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Returns the caller's request id when it is present and well formed, or a
/// new UUID otherwise.
///
/// A well-formed id is 1 to 128 characters of ASCII letters, digits, `-`,
/// `_` or `.`, so that it is safe to log and to copy into headers.
pub fn request_id(metadata: &MetadataMap) -> String {
    metadata
        .get(REQUEST_ID_KEY)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_valid_request_id(id))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Checks the format rule described on [`request_id`].
pub fn is_valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

/// Builds the metadata block of a response, with the trace id of the
/// current span (empty outside a trace).
pub fn response_metadata(request_id: &str) -> Option<ResponseMetadata> {
    Some(ResponseMetadata {
        request_id: request_id.to_owned(),
        trace_id: lintas_telemetry::current_trace_id(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_keeps_valid_caller_value() {
        let mut metadata = MetadataMap::new();
        metadata.insert(REQUEST_ID_KEY, "abc-123_x.y".parse().unwrap());
        assert_eq!(request_id(&metadata), "abc-123_x.y");
    }

    #[test]
    fn request_id_replaces_invalid_caller_value() {
        let mut metadata = MetadataMap::new();
        metadata.insert(REQUEST_ID_KEY, "bad id with spaces".parse().unwrap());
        let id = request_id(&metadata);
        assert_ne!(id, "bad id with spaces");
        assert!(uuid::Uuid::parse_str(&id).is_ok());
    }

    #[test]
    fn request_id_generated_when_missing() {
        let id = request_id(&MetadataMap::new());
        assert!(uuid::Uuid::parse_str(&id).is_ok());
    }

    #[test]
    fn overlong_request_id_is_invalid() {
        assert!(is_valid_request_id(&"a".repeat(128)));
        assert!(!is_valid_request_id(&"a".repeat(129)));
    }
}
