//! The rule for plaintext gRPC: allowed on loopback, where no byte leaves
//! the host, so the one-process quickstart, the tests, the end-to-end suite
//! and the benchmark need no certificates. Anywhere else a server without
//! TLS, or a client calling a server without TLS, fails at startup unless
//! plaintext is allowed explicitly, as a cluster whose network is encrypted
//! by a service mesh may do.
//!
//! A host name counts as loopback only when it is `localhost`: other names
//! are not resolved, because what they resolve to can change after the
//! check.

use std::net::{IpAddr, SocketAddr};

use http::Uri;

/// Environment variable, the same in every binary, that allows plaintext to
/// and from addresses other than loopback.
pub const ALLOW_PLAINTEXT_ENV: &str = "ALLOW_PLAINTEXT";

/// A plaintext listener or connection that the rule forbids.
#[derive(Debug, thiserror::Error)]
pub enum PlaintextError {
    #[error(
        "plaintext gRPC on {address} is not allowed, because it is not a loopback address: \
         configure a TLS certificate and key, or set {ALLOW_PLAINTEXT_ENV}=on"
    )]
    Listener { address: SocketAddr },
    #[error(
        "plaintext gRPC to {url} is not allowed, because its host is not a loopback address: \
         configure TLS with an https URL and a CA file, or set {ALLOW_PLAINTEXT_ENV}=on"
    )]
    Remote { url: String },
}

/// Checks that a server may listen on `address` without TLS.
pub fn check_listener(address: SocketAddr, allow_plaintext: bool) -> Result<(), PlaintextError> {
    if allow_plaintext || address.ip().to_canonical().is_loopback() {
        Ok(())
    } else {
        Err(PlaintextError::Listener { address })
    }
}

/// Checks that a client may call the server at `uri` without TLS.
pub fn check_remote(uri: &Uri, allow_plaintext: bool) -> Result<(), PlaintextError> {
    if allow_plaintext || uri.host().is_some_and(is_loopback_host) {
        Ok(())
    } else {
        Err(PlaintextError::Remote {
            url: uri.to_string(),
        })
    }
}

/// Returns true if `host`, as written in a URL, is `localhost` or a
/// loopback IP address. IPv6 addresses may keep their brackets.
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host);
    unbracketed
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.3.2.1",
            "[::1]",
            "::1",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(is_loopback_host(host), "{host} is loopback");
        }
    }

    #[test]
    fn other_hosts() {
        for host in [
            "user-svc",
            "0.0.0.0",
            "10.0.0.1",
            "[::]",
            "localhost.example.com",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host} is not loopback");
        }
    }

    #[test]
    fn listener_on_all_interfaces_needs_permission() {
        let address: SocketAddr = "0.0.0.0:50051".parse().unwrap();
        let error = check_listener(address, false).unwrap_err();
        assert!(error.to_string().contains("0.0.0.0:50051"), "{error}");
        assert!(error.to_string().contains("ALLOW_PLAINTEXT=on"), "{error}");
        assert!(check_listener(address, true).is_ok());
    }

    #[test]
    fn listener_on_loopback_is_allowed() {
        assert!(check_listener("127.0.0.1:50051".parse().unwrap(), false).is_ok());
        assert!(check_listener("[::1]:50051".parse().unwrap(), false).is_ok());
    }

    #[test]
    fn remote_host_needs_permission() {
        let uri: Uri = "http://user-svc:50051".parse().unwrap();
        let error = check_remote(&uri, false).unwrap_err();
        assert!(
            error.to_string().contains("http://user-svc:50051"),
            "{error}"
        );
        assert!(check_remote(&uri, true).is_ok());
    }

    #[test]
    fn loopback_remote_is_allowed() {
        for url in [
            "http://127.0.0.1:50051",
            "http://localhost:50051",
            "http://[::1]:50051",
        ] {
            let uri: Uri = url.parse().unwrap();
            assert!(check_remote(&uri, false).is_ok(), "{url}");
        }
    }
}
