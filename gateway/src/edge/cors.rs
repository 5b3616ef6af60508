//! Cross-origin resource sharing (CORS), denied by default.
//!
//! Without allowed origins the gateway sends no CORS headers, so browsers
//! block every cross-origin call from a page's scripts. With them,
//! tower-http's `CorsLayer` responds to every `OPTIONS` request as a
//! preflight and allows exactly those origins, with the methods and headers
//! that the API uses.

use std::time::Duration;

use anyhow::{Context, bail};
use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Request headers that a cross-origin page may send, beyond the ones
/// browsers always allow: those that the API reads.
const ALLOWED_HEADERS: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::IF_MATCH,
    HeaderName::from_static("idempotency-key"),
    HeaderName::from_static("traceparent"),
    HeaderName::from_static("x-request-id"),
];

/// Response headers that a cross-origin page may read, beyond the ones
/// browsers always expose.
const EXPOSED_HEADERS: [HeaderName; 6] = [
    header::ETAG,
    header::LOCATION,
    header::RETRY_AFTER,
    HeaderName::from_static("traceparent"),
    HeaderName::from_static("x-trace-id"),
    HeaderName::from_static("x-request-id"),
];

const ALLOWED_METHODS: [Method; 5] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PATCH,
    Method::DELETE,
];

/// How long a browser may reuse a preflight result. It is short, so that a
/// change of the allowed origins takes effect within minutes.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The entry that allows every origin.
const ANY_ORIGIN: &str = "*";

/// Cross-origin access: the web pages that may call the API from their
/// scripts. [`Default`] allows none.
#[derive(Debug, Clone, Default)]
pub struct CorsSettings {
    /// Origins whose pages may call the API, such as
    /// `https://app.example.com`, or the single entry `*` for every origin.
    /// Empty entries are ignored, and no entry denies every cross-origin call.
    pub allowed_origins: Vec<String>,
    /// Whether those pages may send cookies and HTTP authentication
    /// (`Access-Control-Allow-Credentials: true`). Browsers reject this
    /// together with `*`, so the gateway does too.
    pub allow_credentials: bool,
}

/// Builds the CORS layer, or returns `None` when no origin is allowed.
///
/// # Errors
///
/// Fails on an origin that is not `scheme://host[:port]`, on `*` mixed
/// with other origins, and on `*` with credentials.
pub fn layer(settings: &CorsSettings) -> anyhow::Result<Option<CorsLayer>> {
    let entries: Vec<&str> = settings
        .allowed_origins
        .iter()
        .map(|entry| entry.trim())
        .filter(|entry| !entry.is_empty())
        .collect();
    if entries.is_empty() {
        return Ok(None);
    }

    let allow_origin = if entries.contains(&ANY_ORIGIN) {
        if entries.len() > 1 {
            bail!(
                "CORS_ALLOWED_ORIGINS: `*` allows every origin and cannot be combined with others"
            );
        }
        if settings.allow_credentials {
            bail!(
                "CORS_ALLOWED_ORIGINS=* cannot be combined with CORS_ALLOW_CREDENTIALS: \
                 browsers reject credentials for any origin, so list the exact origins"
            );
        }
        AllowOrigin::any()
    } else {
        let origins = entries
            .iter()
            .map(|entry| parse_origin(entry))
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(origins)
    };

    let layer = CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods(ALLOWED_METHODS)
        .allow_headers(ALLOWED_HEADERS)
        .expose_headers(EXPOSED_HEADERS)
        .allow_credentials(settings.allow_credentials)
        .max_age(PREFLIGHT_MAX_AGE);
    Ok(Some(layer))
}

/// Parses one allowed origin into the form browsers send in `Origin`:
/// lowercase `scheme://host[:port]`, without the scheme's default port.
fn parse_origin(entry: &str) -> anyhow::Result<HeaderValue> {
    let origin = entry.to_ascii_lowercase();
    let expected = "Expected scheme://host[:port] with no path, such as https://app.example.com";
    let Some((scheme, authority)) = origin.split_once("://") else {
        bail!("CORS_ALLOWED_ORIGINS: {entry:?} is missing a scheme. {expected}");
    };
    if scheme != "http" && scheme != "https" {
        bail!("CORS_ALLOWED_ORIGINS: {entry:?} has the invalid scheme {scheme:?}. {expected}");
    }
    if authority.is_empty()
        || authority.contains(['/', '?', '#', '@'])
        || authority.contains(char::is_whitespace)
    {
        bail!("CORS_ALLOWED_ORIGINS: {entry:?} is not an origin. {expected}");
    }
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    if authority.ends_with(default_port) {
        bail!(
            "CORS_ALLOWED_ORIGINS: {entry:?} names the default port, which browsers leave out \
             of Origin; remove {default_port}"
        );
    }
    HeaderValue::from_str(&origin)
        .with_context(|| format!("CORS_ALLOWED_ORIGINS: {entry:?} is not a valid header value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(origins: &[&str], allow_credentials: bool) -> CorsSettings {
        CorsSettings {
            allowed_origins: origins.iter().map(|origin| (*origin).to_owned()).collect(),
            allow_credentials,
        }
    }

    #[test]
    fn no_origins_build_no_layer() {
        assert!(layer(&CorsSettings::default()).unwrap().is_none());
        assert!(layer(&settings(&["", "  "], false)).unwrap().is_none());
    }

    #[test]
    fn exact_origins_build_a_layer() {
        let origins = ["https://app.example.com", " http://localhost:3000 "];
        assert!(layer(&settings(&origins, true)).unwrap().is_some());
    }

    #[test]
    fn any_origin_builds_a_layer_without_credentials() {
        assert!(layer(&settings(&["*"], false)).unwrap().is_some());
    }

    #[test]
    fn any_origin_with_credentials_is_rejected() {
        let error = layer(&settings(&["*"], true)).unwrap_err().to_string();
        assert!(error.contains("CORS_ALLOW_CREDENTIALS"), "{error}");
    }

    #[test]
    fn any_origin_mixed_with_others_is_rejected() {
        let error = layer(&settings(&["*", "https://app.example.com"], false))
            .unwrap_err()
            .to_string();
        assert!(error.contains("cannot be combined"), "{error}");
    }

    #[test]
    fn origins_are_normalized_to_lowercase() {
        let origin = parse_origin("HTTPS://App.Example.com:8443").unwrap();
        assert_eq!(origin, "https://app.example.com:8443");
    }

    #[test]
    fn malformed_origins_are_rejected() {
        let table = [
            ("app.example.com", "missing a scheme"),
            ("ftp://app.example.com", "invalid scheme"),
            ("https://", "not an origin"),
            ("https://app.example.com/", "not an origin"),
            ("https://app.example.com/path", "not an origin"),
            ("https://user@app.example.com", "not an origin"),
            ("https://app example.com", "not an origin"),
            ("https://app.example.com:443", "default port"),
            ("http://app.example.com:80", "default port"),
        ];
        for (entry, expected) in table {
            let error = parse_origin(entry).unwrap_err().to_string();
            assert!(error.contains(expected), "{entry}: {error}");
        }
    }
}
