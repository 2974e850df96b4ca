//! Who is on the other end of a request, and whether it is "local".
//!
//! The rule (SECURITY.md, "Gateway exposure"):
//! - a request is local only if the socket peer is loopback **and** it carries no
//!   forwarding header (`Forwarded`, `X-Forwarded-For`, `X-Forwarded-Proto`,
//!   `X-Forwarded-Host`, `X-Real-IP`);
//! - forwarding headers are honoured only when the peer is a trusted proxy; the client is
//!   then the right-most `X-Forwarded-For` hop that is not a trusted proxy (every
//!   `X-Forwarded-For` line, joined in order); if every hop is trusted, the left-most one;
//! - a trusted proxy that sends no `X-Forwarded-For`, or a hop that cannot be read on the
//!   way to the client, fails closed;
//! - forwarding headers from an untrusted peer never change the address (the peer is the
//!   client) but still make the request non-local.
//!
//! Being local never skips authentication; callers may use it only to auto-approve a device
//! on the same host.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use http::HeaderMap;
use http::header::HeaderName;

use super::cidr::{ProxyNet, normalize_ip};

/// Every header that marks a request as having passed through a proxy.
pub const FORWARDING_HEADERS: [&str; 5] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client of a request, as far as the gateway can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr {
    /// The client's normalised address: key rate limits and logs on this.
    pub ip: IpAddr,
    /// Loopback peer and no forwarding header at all.
    pub local: bool,
}

/// Why the client address could not be determined; the request must be refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientAddrError {
    /// A trusted proxy sent no `X-Forwarded-For`.
    #[error(
        "request from trusted proxy {proxy} has no X-Forwarded-For header; configure the proxy to set it, or remove {proxy} from gateway.trustedProxies"
    )]
    MissingForwardedFor {
        /// The proxy.
        proxy: IpAddr,
    },
    /// An `X-Forwarded-For` line is not text.
    #[error("X-Forwarded-For from trusted proxy {proxy} is not valid text")]
    UnreadableForwardedFor {
        /// The proxy.
        proxy: IpAddr,
    },
    /// A hop that had to be read is not an address.
    #[error("X-Forwarded-For hop {hop:?} from trusted proxy {proxy} is not an IP address")]
    BadHop {
        /// The hop, shortened to 64 characters.
        hop: String,
        /// The proxy.
        proxy: IpAddr,
    },
}

/// Whether any forwarding header is present (header names are case-insensitive).
pub fn has_forwarding_header(headers: &HeaderMap) -> bool {
    FORWARDING_HEADERS
        .iter()
        .any(|name| headers.contains_key(*name))
}

/// Resolves the client of a request from its socket peer, its headers and
/// `gateway.trustedProxies`.
pub fn resolve_client_addr<P: ProxyNet>(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted_proxies: &[P],
) -> Result<ClientAddr, ClientAddrError> {
    let peer = normalize_ip(peer);
    let forwarded = has_forwarding_header(headers);
    let local = peer.is_loopback() && !forwarded;
    let is_trusted = |ip: IpAddr| trusted_proxies.iter().any(|net| net.contains_ip(ip));
    if !is_trusted(peer) {
        return Ok(ClientAddr { ip: peer, local });
    }
    let mut lines = Vec::new();
    for value in headers.get_all(X_FORWARDED_FOR) {
        let text = value
            .to_str()
            .map_err(|_| ClientAddrError::UnreadableForwardedFor { proxy: peer })?;
        lines.push(text);
    }
    if lines.is_empty() {
        return Err(ClientAddrError::MissingForwardedFor { proxy: peer });
    }
    let joined = lines.join(",");
    let mut leftmost = None;
    for hop in joined.rsplit(',') {
        let ip = parse_hop(hop).ok_or_else(|| ClientAddrError::BadHop {
            hop: hop.trim().chars().take(64).collect(),
            proxy: peer,
        })?;
        if !is_trusted(ip) {
            return Ok(ClientAddr { ip, local });
        }
        leftmost = Some(ip);
    }
    // `rsplit` yields at least one item, and every item either returned or set `leftmost`.
    Ok(ClientAddr {
        ip: leftmost.unwrap_or(peer),
        local,
    })
}

/// One `X-Forwarded-For` hop: `1.2.3.4`, `1.2.3.4:567`, `2001:db8::1`, `[2001:db8::1]` or
/// `[2001:db8::1]:567`; normalised. Anything else (`unknown`, empty, host names) is `None`.
pub fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(normalize_ip(ip));
    }
    if let Ok(sa) = hop.parse::<SocketAddr>() {
        return Some(normalize_ip(sa.ip()));
    }
    let inner = hop.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .parse::<Ipv6Addr>()
        .ok()
        .map(|v6| normalize_ip(IpAddr::V6(v6)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::cidr::IpCidr;
    use http::HeaderValue;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn nets(list: &[&str]) -> Vec<IpCidr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn loopback_without_headers_is_local() {
        let none: Vec<IpCidr> = Vec::new();
        let c = resolve_client_addr(ip("127.0.0.1"), &HeaderMap::new(), &none).unwrap();
        assert_eq!(
            c,
            ClientAddr {
                ip: ip("127.0.0.1"),
                local: true
            }
        );
        let c = resolve_client_addr(ip("::ffff:127.0.0.1"), &HeaderMap::new(), &none).unwrap();
        assert_eq!(
            c,
            ClientAddr {
                ip: ip("127.0.0.1"),
                local: true
            }
        );
        let c = resolve_client_addr(ip("::1"), &HeaderMap::new(), &none).unwrap();
        assert!(c.local);
        let c = resolve_client_addr(ip("192.168.1.2"), &HeaderMap::new(), &none).unwrap();
        assert!(!c.local);
    }

    #[test]
    fn proxy_on_loopback_without_trust_is_not_local_and_not_believed() {
        // The original incident: nginx on the same host made everything look local.
        let none: Vec<IpCidr> = Vec::new();
        let h = headers(&[("X-Forwarded-For", "203.0.113.9")]);
        let c = resolve_client_addr(ip("127.0.0.1"), &h, &none).unwrap();
        assert_eq!(
            c,
            ClientAddr {
                ip: ip("127.0.0.1"),
                local: false
            }
        );
    }

    #[test]
    fn trusted_proxy_yields_rightmost_untrusted_hop() {
        let trusted = nets(&["127.0.0.1", "10.0.0.0/8"]);
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1, 198.51.100.7"),
            ("X-Forwarded-For", "10.1.1.1"),
        ]);
        let c = resolve_client_addr(ip("127.0.0.1"), &h, &trusted).unwrap();
        assert_eq!(
            c,
            ClientAddr {
                ip: ip("198.51.100.7"),
                local: false
            }
        );
    }

    #[test]
    fn all_trusted_hops_yield_the_leftmost() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "10.0.0.5, 10.0.0.6")]);
        let c = resolve_client_addr(ip("10.0.0.1"), &h, &trusted).unwrap();
        assert_eq!(c.ip, ip("10.0.0.5"));
    }

    #[test]
    fn trusted_proxy_fails_closed() {
        let trusted = nets(&["127.0.0.1"]);
        let peer = ip("127.0.0.1");
        assert_eq!(
            resolve_client_addr(peer, &HeaderMap::new(), &trusted),
            Err(ClientAddrError::MissingForwardedFor { proxy: peer })
        );
        let h = headers(&[("x-real-ip", "1.2.3.4")]);
        assert!(resolve_client_addr(peer, &h, &trusted).is_err());
        for bad in ["unknown", "1.2.3.4,", "", "evil.example", "1.2.3.4 5.6.7.8"] {
            let h = headers(&[("x-forwarded-for", bad)]);
            assert!(
                matches!(
                    resolve_client_addr(peer, &h, &trusted),
                    Err(ClientAddrError::BadHop { .. })
                ),
                "{bad:?}"
            );
        }
        let mut h = HeaderMap::new();
        h.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"1.2.3.\xff").unwrap(),
        );
        assert!(matches!(
            resolve_client_addr(peer, &h, &trusted),
            Err(ClientAddrError::UnreadableForwardedFor { .. })
        ));
    }

    #[test]
    fn hops_left_of_the_client_are_not_read() {
        let trusted = nets(&["127.0.0.1"]);
        let h = headers(&[("x-forwarded-for", "garbage, 203.0.113.1")]);
        let c = resolve_client_addr(ip("127.0.0.1"), &h, &trusted).unwrap();
        assert_eq!(c.ip, ip("203.0.113.1"));
    }

    #[test]
    fn hop_forms() {
        assert_eq!(parse_hop(" 1.2.3.4 "), Some(ip("1.2.3.4")));
        assert_eq!(parse_hop("1.2.3.4:80"), Some(ip("1.2.3.4")));
        assert_eq!(parse_hop("[2001:db8::1]:443"), Some(ip("2001:db8::1")));
        assert_eq!(parse_hop("[2001:db8::1]"), Some(ip("2001:db8::1")));
        assert_eq!(parse_hop("::ffff:192.0.2.1"), Some(ip("192.0.2.1")));
        assert_eq!(parse_hop("unknown"), None);
        assert_eq!(parse_hop("_hidden"), None);
    }

    fn any_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
        ]
    }

    fn any_forwarding_header() -> impl Strategy<Value = (String, String)> {
        (
            prop::sample::select(FORWARDING_HEADERS.to_vec()),
            any::<bool>(),
            "[ -~]{0,40}",
        )
            .prop_map(|(name, upper, value)| {
                let name = if upper {
                    name.to_uppercase()
                } else {
                    name.to_owned()
                };
                (name, value)
            })
    }

    proptest! {
        #[test]
        fn spoofed_headers_from_untrusted_peers_change_nothing(
            peer in any_ip(),
            extra in prop::collection::vec(any_forwarding_header(), 0..4),
        ) {
            let trusted = nets(&["10.0.0.0/8"]);
            prop_assume!(!trusted[0].contains(peer));
            let pairs: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let c = resolve_client_addr(peer, &headers(&pairs), &trusted).unwrap();
            prop_assert_eq!(c.ip, normalize_ip(peer));
        }

        #[test]
        fn any_forwarding_header_makes_a_request_non_local(
            peer in prop_oneof![Just(ip("127.0.0.1")), Just(ip("::1")), Just(ip("::ffff:127.0.0.9"))],
            extra in prop::collection::vec(any_forwarding_header(), 1..4),
            trust_peer: bool,
        ) {
            let trusted = if trust_peer { nets(&["127.0.0.0/8", "::1"]) } else { Vec::new() };
            let pairs: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            if let Ok(c) = resolve_client_addr(peer, &headers(&pairs), &trusted) {
                prop_assert!(!c.local);
            }
        }

        #[test]
        fn mapped_peers_resolve_like_ipv4(a: [u8; 4], xff in prop::option::of(any::<[u8; 4]>())) {
            let trusted = nets(&["127.0.0.1"]);
            let v4 = IpAddr::from(a);
            let mapped = IpAddr::V6(std::net::Ipv4Addr::from(a).to_ipv6_mapped());
            let text = xff.map(|x| IpAddr::from(x).to_string());
            let h = match &text { Some(t) => headers(&[("x-forwarded-for", t)]), None => HeaderMap::new() };
            prop_assert_eq!(
                resolve_client_addr(v4, &h, &trusted),
                resolve_client_addr(mapped, &h, &trusted)
            );
        }
    }
}
