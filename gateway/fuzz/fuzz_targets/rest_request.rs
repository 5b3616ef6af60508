//! The whole HTTP application, `gateway::app`, on arbitrary requests.
//!
//! Input: a request in HTTP/1 form. It is a request line `METHOD target`
//! (a protocol version after the target is ignored), header lines
//! `name: value`, an empty line, then the body. Lines end with `\n` or
//! `\r\n`. An input whose method or target is not valid HTTP is skipped,
//! and so is each header line that is not a valid header, because the HTTP
//! server rejects them before the application gets the request.
//! `Content-Length` is set from the body, which the server guarantees.
//!
//! Both backends point at a closed loopback port, so every backend call
//! fails at once with `UNAVAILABLE`.
//!
//! NOTE: authentication is off, as `gateway::Settings::with_backends` sets
//! it, so no request takes the 401 and 403 paths. The `jwt` target covers
//! the token verifier alone.
//!
//! Properties: the application never panics and always responds within
//! `MAX_RESPONSE_TIME`. The only 5xx statuses are 503 and 504, which an
//! unreachable backend causes.

#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::LazyLock;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri, header};
use gateway_fuzz::on_worker_stack;
use http_body_util::BodyExt as _;
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use tower::ServiceExt as _;

/// Time budget of one request inside the application, below the default
/// 10 s so that a request that runs into it costs the fuzzer less.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Maximum time a response, body included, may take.
const MAX_RESPONSE_TIME: Duration = Duration::from_secs(5);

struct Harness {
    runtime: Runtime,
    app: Router,
}

/// One runtime and one application for all inputs: building them costs far
/// more than handling a request.
static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the fuzzer can build a tokio runtime");
    let backend = closed_loopback_url();
    let mut settings = gateway::Settings::with_backends(&backend, &backend);
    settings.request_timeout = REQUEST_TIMEOUT;
    // The lazy gRPC channels spawn their workers on the current runtime.
    let app = {
        let _context = runtime.enter();
        gateway::app(&settings).expect("the gateway builds with its default settings")
    };
    Harness { runtime, app }
});

/// Returns the URL of a loopback port that nothing listens on: the port of
/// a listener that was bound and closed again.
fn closed_loopback_url() -> String {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .expect("the fuzzer can bind a loopback port");
    let port = listener
        .local_addr()
        .expect("a bound listener has an address")
        .port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// Parses the input format described at the top of this file.
fn parse_request(data: &[u8]) -> Option<Request<Body>> {
    let (head, body) = match find(data, b"\r\n\r\n") {
        Some(end) => (&data[..end], &data[end + 4..]),
        None => match find(data, b"\n\n") {
            Some(end) => (&data[..end], &data[end + 2..]),
            None => (data, &[][..]),
        },
    };
    let mut lines = head
        .split(|&byte| byte == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));

    let request_line = lines.next()?;
    let space = request_line.iter().position(|&byte| byte == b' ')?;
    let method = Method::from_bytes(&request_line[..space]).ok()?;
    let target = request_line[space + 1..]
        .split(|&byte| byte == b' ')
        .next()
        .unwrap_or_default();
    let target = Uri::try_from(target).ok()?;

    let mut request = Request::new(Body::from(body.to_vec()));
    *request.method_mut() = method;
    *request.uri_mut() = target;
    for line in lines {
        let Some(colon) = line.iter().position(|&byte| byte == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        request.headers_mut().append(name, value);
    }
    if !body.is_empty() {
        request
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    // What `into_make_service_with_connect_info` adds in `gateway::serve`.
    let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 40_000));
    request.extensions_mut().insert(ConnectInfo(peer));
    Some(request)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fuzz_target!(|data: &[u8]| {
    let Some(request) = parse_request(data) else {
        return;
    };
    let description = format!("{} {}", request.method(), request.uri());
    let harness = &*HARNESS;

    let status = on_worker_stack(|| {
        harness.runtime.block_on(async {
            let exchange = async {
                let response = harness
                    .app
                    .clone()
                    .oneshot(request)
                    .await
                    .expect("a Router never fails");
                let (parts, body) = response.into_parts();
                let body = body.collect().await;
                (parts.status, body.map(|_| ()))
            };
            let (status, body) = tokio::time::timeout(MAX_RESPONSE_TIME, exchange)
                .await
                .unwrap_or_else(|_| panic!("{description}: no response in {MAX_RESPONSE_TIME:?}"));
            if let Err(error) = body {
                panic!("{description}: response body failed: {error}");
            }
            status
        })
    });

    let unreachable_backend =
        status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::GATEWAY_TIMEOUT;
    assert!(
        !status.is_server_error() || unreachable_backend,
        "{description}: responded {status}"
    );
});
