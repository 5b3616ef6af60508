//! The address of the client that sent a request.
//!
//! Without trusted proxies it is the TCP peer. Behind `hops` reverse proxies
//! that each append the address of their own peer to `X-Forwarded-For`, it
//! is the entry that the outermost trusted proxy appended: the `hops`-th
//! from the right. Entries left of it were written by the client or by
//! untrusted proxies and are ignored, so a client cannot choose its address.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Returns the address of the client that sent a request with `headers`
/// over a connection from `peer`, through `trusted_proxy_hops` proxies.
///
/// When `X-Forwarded-For` has fewer entries than `trusted_proxy_hops`, the
/// request passed fewer proxies than configured, and its leftmost entry is
/// the client. Without the header, or when the chosen entry is not an IP
/// address, the peer is the client.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted_proxy_hops: usize) -> IpAddr {
    if trusted_proxy_hops == 0 {
        return peer;
    }
    // Several header lines form one comma-separated list, in order, as
    // HTTP defines for list fields.
    let entries: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let Some(entry) = entries
        .len()
        .checked_sub(trusted_proxy_hops)
        .map_or(entries.first(), |index| entries.get(index))
    else {
        return peer;
    };
    parse_address(entry).unwrap_or(peer)
}

/// Parses an address as proxies write it: `203.0.113.7`, `2001:db8::1`, or
/// either with a port (`203.0.113.7:41234`, `[2001:db8::1]:41234`).
fn parse_address(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
        .or_else(|| {
            let bracketed = entry.strip_prefix('[')?.strip_suffix(']')?;
            bracketed.parse().ok()
        })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const PEER: &str = "10.0.0.2";

    fn headers(lines: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_static(line));
        }
        headers
    }

    fn client(lines: &[&'static str], hops: usize) -> String {
        client_address(PEER.parse().unwrap(), &headers(lines), hops).to_string()
    }

    #[test]
    fn no_trusted_proxy_uses_peer() {
        assert_eq!(client(&["203.0.113.7"], 0), PEER);
    }

    #[test]
    fn one_hop_uses_rightmost_entry() {
        assert_eq!(client(&["203.0.113.7"], 1), "203.0.113.7");
        assert_eq!(client(&["198.51.100.1, 203.0.113.7"], 1), "203.0.113.7");
    }

    #[test]
    fn two_hops_skip_inner_proxy() {
        let spoofed_then_real = "198.51.100.1, 203.0.113.7, 10.0.0.9";
        assert_eq!(client(&[spoofed_then_real], 2), "203.0.113.7");
    }

    #[test]
    fn header_lines_form_one_list() {
        assert_eq!(client(&["198.51.100.1", "203.0.113.7"], 1), "203.0.113.7");
        assert_eq!(client(&["198.51.100.1", "203.0.113.7"], 2), "198.51.100.1");
    }

    #[test]
    fn short_list_uses_leftmost_entry() {
        assert_eq!(client(&["203.0.113.7"], 3), "203.0.113.7");
    }

    #[test]
    fn missing_header_uses_peer() {
        assert_eq!(client(&[], 1), PEER);
    }

    #[test]
    fn invalid_entry_uses_peer() {
        assert_eq!(client(&["unknown"], 1), PEER);
        assert_eq!(client(&["203.0.113.7, "], 1), PEER);
    }

    #[test]
    fn entries_with_ports_are_parsed() {
        let table = [
            ("203.0.113.7:41234", "203.0.113.7"),
            ("[2001:db8::1]:41234", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
        ];
        for (entry, expected) in table {
            assert_eq!(client(&[entry], 1), expected, "{entry}");
        }
    }
}
