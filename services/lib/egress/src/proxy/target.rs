//! What a request to the proxy asks for, decided without I/O.
//!
//! `CONNECT host:port` (authority form) is a tunnel; `METHOD http://host/path` (absolute
//! form) is forwarded; anything else is a bad request. A CONNECT target is read through
//! the fetcher's URL rules ([`CheckedUrl::parse`] on `https://host:port/`), so a tunnel
//! and a URL canonicalise their host the same way: `2130706433:443`, `0x7f.1:443` and
//! `user@host:443` are refused exactly as `https://2130706433/` would be. Then the port
//! must be one the [`PortPolicy`] allows.

use http::{Method, Uri};

use crate::error::EgressError;
use crate::url_policy::{CheckedUrl, Host, UrlError};

/// The ports the proxy connects to unless configured otherwise.
pub const DEFAULT_PORTS: [u16; 2] = [80, 443];

/// Where a request goes, after the URL rules (names and addresses are checked later,
/// by the guard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `CONNECT host:port`: bytes are relayed both ways.
    Tunnel { host: Host, port: u16 },
    /// An absolute-form `http://` request, forwarded in origin form.
    Forward(CheckedUrl),
}

impl Target {
    pub(crate) fn host(&self) -> &Host {
        match self {
            Self::Tunnel { host, .. } => host,
            Self::Forward(url) => url.host(),
        }
    }

    pub(crate) fn port(&self) -> u16 {
        match self {
            Self::Tunnel { port, .. } => *port,
            Self::Forward(url) => url.port(),
        }
    }
}

/// Why a request is not one the proxy serves: answered `400 Bad Request`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadProxyRequest {
    /// `GET /path`: a request for a web server.
    #[error(
        "origin-form request (GET /path): this is a forward proxy; send GET http://host/path, or CONNECT host:port for https"
    )]
    OriginForm,
    /// `OPTIONS *`, or `host:port` with a method other than CONNECT.
    #[error("the request target must be an absolute http:// URL, or host:port with CONNECT")]
    NotAbsoluteForm,
    /// `GET https://...`, `GET ftp://...`.
    #[error(
        "scheme {0:?} is not forwarded: only http:// URLs are; https goes through CONNECT host:port"
    )]
    Scheme(String),
    /// `CONNECT host` without a port, `CONNECT http://...`, or characters a host and port
    /// cannot contain.
    #[error("CONNECT needs host:port (a DNS name or IP literal, and a port)")]
    ConnectTarget,
}

/// Why a request is refused before the guard looks up or dials anything.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Not a proxy request: 400.
    BadRequest(BadProxyRequest),
    /// A rule of the guard (URL rules, ports): 403.
    Guard(EgressError),
}

impl From<BadProxyRequest> for Refusal {
    fn from(e: BadProxyRequest) -> Self {
        Self::BadRequest(e)
    }
}

impl From<EgressError> for Refusal {
    fn from(e: EgressError) -> Self {
        Self::Guard(e)
    }
}

/// Reads the request line's method and target.
pub(crate) fn parse(method: &Method, uri: &Uri) -> Result<Target, Refusal> {
    if method == Method::CONNECT {
        return parse_connect(uri);
    }
    let Some(scheme) = uri.scheme_str() else {
        return Err(
            if uri.authority().is_none() && uri.path().starts_with('/') {
                BadProxyRequest::OriginForm
            } else {
                BadProxyRequest::NotAbsoluteForm
            }
            .into(),
        );
    };
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(BadProxyRequest::Scheme(scheme.to_ascii_lowercase()).into());
    }
    let url = CheckedUrl::parse(&uri.to_string()).map_err(EgressError::from)?;
    Ok(Target::Forward(url))
}

fn parse_connect(uri: &Uri) -> Result<Target, Refusal> {
    let authority = match (uri.scheme(), uri.authority(), uri.path_and_query()) {
        (None, Some(authority), None) if authority.port_u16().is_some() => authority,
        _ => return Err(BadProxyRequest::ConnectTarget.into()),
    };
    let raw = authority.as_str();
    // Only what a DNS name, an IP literal and a port are made of: `/`, `?`, `#`, `@`,
    // `%` and `\` would change how the URL below is read.
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':');
    let bracketed = raw.starts_with('[') && raw.matches('[').count() == 1;
    let ok = raw
        .bytes()
        .all(|b| plain(b) || (bracketed && matches!(b, b'[' | b']')));
    if raw.contains('@') {
        // Credentials get the URL rules' own refusal, as in a URL.
        return Err(EgressError::from(UrlError::Userinfo).into());
    }
    if !ok {
        return Err(BadProxyRequest::ConnectTarget.into());
    }
    let url = CheckedUrl::parse(&format!("https://{raw}/")).map_err(EgressError::from)?;
    Ok(Target::Tunnel {
        host: url.host().clone(),
        port: url.port(),
    })
}

/// The ports the proxy connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PortPolicy {
    allowed: Vec<u16>,
}

impl PortPolicy {
    pub(crate) fn new(mut allowed: Vec<u16>) -> Self {
        allowed.sort_unstable();
        allowed.dedup();
        Self { allowed }
    }

    pub(crate) fn allowed(&self) -> &[u16] {
        &self.allowed
    }

    pub(crate) fn check(&self, host: &Host, port: u16) -> Result<(), EgressError> {
        if self.allowed.contains(&port) {
            Ok(())
        } else {
            Err(EgressError::PortNotAllowed {
                host: host.clone(),
                port,
                allowed: self.allowed.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn get(target: &str) -> Result<Target, Refusal> {
        parse(&Method::GET, &target.parse().unwrap())
    }

    fn connect(target: &str) -> Result<Target, Refusal> {
        parse(&Method::CONNECT, &target.parse().unwrap())
    }

    fn refusal_text(r: Result<Target, Refusal>) -> String {
        match r {
            Ok(t) => panic!("accepted: {t:?}"),
            Err(Refusal::BadRequest(e)) => format!("400 {e}"),
            Err(Refusal::Guard(e)) => format!("403 {e}"),
        }
    }

    #[test]
    fn connect_targets_are_canonicalised_like_urls() {
        let t = connect("Example.COM:443").unwrap();
        assert_eq!(
            t,
            Target::Tunnel {
                host: Host::Name("example.com".into()),
                port: 443
            }
        );
        let t = connect("[::1]:8443").unwrap();
        assert_eq!(t.host(), &Host::Ip("::1".parse::<IpAddr>().unwrap()));
        assert_eq!(t.port(), 8443);
        assert_eq!(connect("example.com:80").unwrap().port(), 80);
    }

    #[test]
    fn connect_refusals() {
        for (target, expected) in [
            ("2130706433:443", "403 refused URL: blocked: \"2130706433\""),
            ("0x7f.1:443", "403 refused URL: blocked: \"0x7f.1\""),
            ("127.1:443", "non-canonical IPv4"),
            ("user@example.com:443", "403 refused URL: credentials"),
            ("example.com", "400 CONNECT needs host:port"),
            ("http://example.com:443/", "400 CONNECT needs host:port"),
            ("/path", "400 CONNECT needs host:port"),
            ("[fe80::1%25eth0]:443", "400 CONNECT needs host:port"),
        ] {
            let text = refusal_text(connect(target));
            assert!(text.contains(expected), "{target}: {text}");
        }
    }

    #[test]
    fn absolute_form_http_is_forwarded() {
        let Target::Forward(url) = get("http://Example.com:8080/a?b=c").unwrap() else {
            panic!("not forwarded");
        };
        assert_eq!(url.host(), &Host::Name("example.com".into()));
        assert_eq!(url.port(), 8080);
        assert_eq!(url.url().as_str(), "http://example.com:8080/a?b=c");
        assert_eq!(get("http://example.com").unwrap().port(), 80);
    }

    #[test]
    fn other_forms_and_schemes_are_bad_requests() {
        for (target, expected) in [
            ("/index.html", "400 origin-form request"),
            ("*", "400 the request target must be an absolute"),
            (
                "example.com:80",
                "400 the request target must be an absolute",
            ),
            (
                "https://example.com/",
                "400 scheme \"https\" is not forwarded",
            ),
            ("ftp://example.com/", "400 scheme \"ftp\" is not forwarded"),
            ("http://0177.0.0.1/", "403 refused URL: blocked"),
            ("http://a@example.com/", "403 refused URL: credentials"),
        ] {
            let text = refusal_text(get(target));
            assert!(text.contains(expected), "{target}: {text}");
        }
    }

    #[test]
    fn ports_outside_the_list_are_refused_with_the_list() {
        let policy = PortPolicy::new(vec![443, 80, 443]);
        assert_eq!(policy.allowed(), [80, 443]);
        let host = Host::Name("example.com".into());
        assert!(policy.check(&host, 443).is_ok());
        let err = policy.check(&host, 22).unwrap_err();
        assert!(err.is_policy_refusal());
        assert_eq!(
            err.to_string(),
            "blocked: port 22 of example.com is not allowed (allowed ports: 80, 443)"
        );
        let none = PortPolicy::new(Vec::new());
        assert!(
            none.check(&host, 80)
                .unwrap_err()
                .to_string()
                .contains("none")
        );
    }
}
