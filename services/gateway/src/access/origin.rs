//! The browser `Origin` check for operator connections (WebSocket and HTTP).
//!
//! - No `Origin`: not a browser; allowed here (authentication and rate limits still apply).
//! - `Origin: null` or anything that is not `http(s)://host[:port]`: refused.
//! - Listed in `gateway.controlUi.allowedOrigins` (compared normalised: lowercase scheme
//!   and host, default ports dropped): allowed.
//! - Same origin as the request (`Origin` host and port equal to the `Host` header's):
//!   allowed only when the host is an IP literal or `localhost`/`*.localhost`. A DNS name
//!   can be re-pointed at the gateway by an attacker's page (DNS rebinding), which then
//!   *is* same-origin; such names must be listed in `allowedOrigins` instead.
//!
//! A browser connection is never exempt from limits, even from loopback; callers should
//! not auto-approve devices over connections that carry an `Origin`.

use url::{Host, Url};

/// Why an `Origin` was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginVerdict {
    /// No `Origin` header: not a browser.
    NotBrowser,
    /// The page was served by this gateway, at an address that cannot be rebound.
    SameOrigin,
    /// Listed in `gateway.controlUi.allowedOrigins`.
    Allowed,
}

/// Why a browser connection was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// `Origin: null` (sandboxed frames, `file:` pages, some redirects).
    #[error("Origin \"null\" is refused; serve the page from an http(s) origin")]
    Null,
    /// Not `http(s)://host[:port]`.
    #[error("Origin {0:?} is not an http(s) origin")]
    Malformed(String),
    /// Same origin, but under a DNS name, which a hostile page could rebind.
    #[error("Origin {0:?} uses a DNS name; add it to gateway.controlUi.allowedOrigins to allow it")]
    UnlistedName(String),
    /// Another site.
    #[error("Origin {0:?} is not allowed; add it to gateway.controlUi.allowedOrigins")]
    NotAllowed(String),
}

/// A normalised origin.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Normal {
    scheme: String,
    host: Host<String>,
    port: u16,
}

/// Checks a request's `Origin` against its `Host` and the allowed origins.
pub fn check_origin(
    origin_header: Option<&str>,
    host_header: Option<&str>,
    allowed: &[String],
) -> Result<OriginVerdict, OriginError> {
    let Some(raw) = origin_header else {
        return Ok(OriginVerdict::NotBrowser);
    };
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("null") {
        return Err(OriginError::Null);
    }
    let shown: String = raw.chars().take(100).collect();
    let origin = parse_origin(raw).ok_or_else(|| OriginError::Malformed(shown.clone()))?;
    if allowed
        .iter()
        .filter_map(|a| parse_origin(a.trim()))
        .any(|a| a == origin)
    {
        return Ok(OriginVerdict::Allowed);
    }
    let same = host_header
        .and_then(|h| parse_authority(&origin.scheme, h.trim()))
        .is_some_and(|own| own == origin);
    if !same {
        return Err(OriginError::NotAllowed(shown));
    }
    if rebinding_safe(&origin.host) {
        Ok(OriginVerdict::SameOrigin)
    } else {
        Err(OriginError::UnlistedName(shown))
    }
}

/// `https://Example.COM:443` → `https://example.com`; `None` if not an http(s) origin.
/// Useful for validating and displaying `allowedOrigins` entries.
pub fn normalize_origin(s: &str) -> Option<String> {
    let o = parse_origin(s.trim())?;
    let default = default_port(&o.scheme);
    Some(if Some(o.port) == default {
        format!("{}://{}", o.scheme, o.host)
    } else {
        format!("{}://{}:{}", o.scheme, o.host, o.port)
    })
}

fn parse_origin(s: &str) -> Option<Normal> {
    let (scheme, authority) = s.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    default_port(&scheme)?;
    parse_authority(&scheme, authority)
}

/// `host[:port]` under `scheme`, with nothing else (no path, query, user info).
fn parse_authority(scheme: &str, authority: &str) -> Option<Normal> {
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', '\\', ' ']) {
        return None;
    }
    let url = Url::parse(&format!("{scheme}://{authority}")).ok()?;
    Some(Normal {
        scheme: url.scheme().to_owned(),
        host: url.host()?.to_owned(),
        port: url.port_or_known_default()?,
    })
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

fn rebinding_safe(host: &Host<String>) -> bool {
    match host {
        Host::Ipv4(_) | Host::Ipv6(_) => true,
        Host::Domain(d) => d == "localhost" || d.ends_with(".localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn allowed(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn no_origin_is_not_a_browser() {
        assert_eq!(
            check_origin(None, Some("127.0.0.1:18789"), &[]),
            Ok(OriginVerdict::NotBrowser)
        );
    }

    #[test]
    fn same_origin_on_addresses_and_localhost() {
        for (o, h) in [
            ("http://127.0.0.1:18789", "127.0.0.1:18789"),
            ("http://LOCALHOST:18789", "localhost:18789"),
            ("http://[::1]:18789", "[::1]:18789"),
            ("https://192.168.1.4", "192.168.1.4:443"),
            ("http://192.168.1.4:80", "192.168.1.4"),
            ("http://ui.localhost:8080", "ui.localhost:8080"),
        ] {
            assert_eq!(
                check_origin(Some(o), Some(h), &[]),
                Ok(OriginVerdict::SameOrigin),
                "{o} {h}"
            );
        }
    }

    #[test]
    fn other_sites_are_refused() {
        let err = check_origin(Some("https://evil.example"), Some("127.0.0.1:18789"), &[]);
        assert_eq!(
            err,
            Err(OriginError::NotAllowed("https://evil.example".into()))
        );
        // Port and scheme are part of the origin.
        assert!(check_origin(Some("http://127.0.0.1:8000"), Some("127.0.0.1:18789"), &[]).is_err());
        assert!(check_origin(Some("http://127.0.0.1"), Some("127.0.0.1:443"), &[]).is_err());
        assert!(check_origin(Some("http://127.0.0.1:18789"), None, &[]).is_err());
    }

    #[test]
    fn dns_rebinding_is_refused_unless_listed() {
        let o = Some("http://attacker.example:18789");
        let h = Some("attacker.example:18789");
        assert_eq!(
            check_origin(o, h, &[]),
            Err(OriginError::UnlistedName(
                "http://attacker.example:18789".into()
            ))
        );
        let list = allowed(&["https://pincer.example.ts.net"]);
        assert_eq!(
            check_origin(
                Some("https://Pincer.Example.ts.net:443"),
                Some("pincer.example.ts.net"),
                &list
            ),
            Ok(OriginVerdict::Allowed)
        );
    }

    #[test]
    fn allowed_list_is_exact_after_normalising() {
        let list = allowed(&["HTTPS://App.Example:443", "http://10.0.0.2:3000"]);
        assert_eq!(
            check_origin(Some("https://app.example"), None, &list),
            Ok(OriginVerdict::Allowed)
        );
        assert_eq!(
            check_origin(Some("http://10.0.0.2:3000"), None, &list),
            Ok(OriginVerdict::Allowed)
        );
        assert!(check_origin(Some("http://app.example"), None, &list).is_err());
        assert!(check_origin(Some("https://sub.app.example"), None, &list).is_err());
        assert!(check_origin(Some("https://app.example.evil"), None, &list).is_err());
    }

    #[test]
    fn null_and_malformed_are_refused() {
        let list = allowed(&["null", "file://"]);
        assert_eq!(
            check_origin(Some("null"), Some("127.0.0.1"), &list),
            Err(OriginError::Null)
        );
        for bad in [
            "file:///etc",
            "chrome-extension://abc",
            "https://a@127.0.0.1",
            "https://x/y",
            "",
            "127.0.0.1",
        ] {
            assert!(
                matches!(
                    check_origin(Some(bad), Some("127.0.0.1"), &list),
                    Err(OriginError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn normalises_for_display() {
        assert_eq!(
            normalize_origin("HTTPS://X.Net:443").as_deref(),
            Some("https://x.net")
        );
        assert_eq!(
            normalize_origin("http://x.net:8080").as_deref(),
            Some("http://x.net:8080")
        );
        assert_eq!(
            normalize_origin("http://[::1]:80").as_deref(),
            Some("http://[::1]")
        );
        assert_eq!(normalize_origin("ws://x.net"), None);
    }

    proptest! {
        /// Without a listing, a named origin is never accepted, whatever Host says.
        #[test]
        fn named_hosts_need_a_listing(name in "[a-z]{1,10}\\.(com|net|example)", port in 1u16.., host in "[ -~]{0,40}") {
            let o = format!("http://{name}:{port}");
            prop_assert!(check_origin(Some(&o), Some(&host), &[]).is_err());
        }
    }
}
