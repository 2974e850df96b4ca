//! Which URLs may be fetched, decided once per URL (and per redirect hop), without I/O.
//!
//! [`CheckedUrl::parse`] reads the raw text **before** the `url` crate normalises it,
//! because the WHATWG parser turns `2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`,
//! `%31%32%37.0.0.1` and fullwidth digits into `127.0.0.1`: a guard that only saw the
//! result could not tell the operator what was written. The rules:
//!
//! - `http://` or `https://` (the `//` is required); no userinfo (`@` in the authority);
//!   a host is required; port 0 is refused;
//! - no backslash, ASCII whitespace or control character anywhere (the parser would drop
//!   or reinterpret them, e.g. `\` as `/`);
//! - no percent-encoding in the host;
//! - an IPv4 literal must be canonical dotted-quad (`a.b.c.d`, no leading zeros, no
//!   trailing dot); anything the parser would read as IPv4 but is not written that way
//!   is refused; IPv6 literals in brackets are fine (the IP policy judges them);
//! - host names `localhost`, `*.localhost`, `*.local`, `*.internal` (which covers
//!   `metadata.google.internal`) are refused by name, case-insensitively and with or
//!   without a trailing dot, unless the exact name is allowlisted ([`NamePolicy`]).
//!
//! The fragment is dropped; it is never sent.

use std::fmt;
use std::net::IpAddr;

use url::Url;

/// Why a URL was refused before any lookup or connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all, or the parser refused it.
    #[error("not a valid URL: {0}")]
    Syntax(#[from] url::ParseError),
    /// Only `http` and `https` are fetched.
    #[error("scheme {0:?} is not allowed; only http and https")]
    Scheme(String),
    /// `http:example.com` and similar: the parser guesses, we do not.
    #[error("the URL must start with http:// or https://")]
    MissingSlashes,
    /// A backslash, whitespace or control character, which parsers drop or reinterpret.
    #[error("the URL contains a backslash, whitespace or control character; percent-encode it")]
    ForbiddenCharacter,
    /// `user@host` or `user:password@host`.
    #[error("credentials in the URL (user@host) are not allowed")]
    Userinfo,
    /// `http:///path`, `http://:80/`.
    #[error("the URL has no host")]
    MissingHost,
    /// `%31%32%37.0.0.1`.
    #[error("percent-encoding in the host is not allowed")]
    PercentEncodedHost,
    /// `2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`, `127.0.0.1.`, fullwidth digits.
    #[error("blocked: {0:?} is a non-canonical IPv4 address; write it as a.b.c.d")]
    NonCanonicalIpv4(String),
    /// Port 0 or a port that is not a number.
    #[error("the port is not valid")]
    BadPort,
    /// `a..b`, or a name longer than DNS allows.
    #[error("the host name {0:?} is not a valid DNS name")]
    BadHostName(String),
}

/// Why a host name is blocked by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameRule {
    /// `localhost` and `*.localhost` (RFC 6761: always the local host).
    Localhost,
    /// `*.local` (multicast DNS, the local network).
    MulticastDns,
    /// `metadata.google.internal`: Google Cloud's metadata server.
    GoogleMetadata,
    /// `*.internal`: private names of cloud and corporate networks.
    Internal,
}

impl NameRule {
    /// The rule in a few words.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Localhost => "the local host (localhost, *.localhost)",
            Self::MulticastDns => "a local-network name (*.local)",
            Self::GoogleMetadata => "Google Cloud's metadata server",
            Self::Internal => "a private network name (*.internal)",
        }
    }
}

/// A host name refused by name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("blocked: {name} is {}", rule.describe())]
pub struct BlockedName {
    /// The name, lower-case, without a trailing dot.
    pub name: String,
    /// Which rule.
    pub rule: NameRule,
}

/// The rule that blocks `name` by name, if any. `name` is compared lower-case and
/// without one trailing dot.
pub fn name_rule(name: &str) -> Option<NameRule> {
    let name = normalize_name(name);
    let is = |suffix: &str| {
        name == suffix
            || name
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.ends_with('.'))
    };
    if is("localhost") {
        Some(NameRule::Localhost)
    } else if name == "metadata.google.internal" {
        Some(NameRule::GoogleMetadata)
    } else if is("internal") {
        Some(NameRule::Internal)
    } else if is("local") {
        Some(NameRule::MulticastDns)
    } else {
        None
    }
}

/// Lower-case, without one trailing dot.
fn normalize_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// Names blocked by name, and the exact names an operator re-allows.
///
/// Allowlisting is exact: allowing `printer.local` allows that name only, not
/// `other.local` or `x.printer.local`. An allowed name is still resolved and every
/// address it resolves to must pass the IP policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamePolicy {
    allow: Vec<String>,
}

impl NamePolicy {
    /// A policy re-allowing exactly these names.
    pub fn new<S: AsRef<str>>(allow: &[S]) -> Self {
        Self {
            allow: allow.iter().map(|s| normalize_name(s.as_ref())).collect(),
        }
    }

    /// `Ok` unless `name` is blocked by name and not allowlisted.
    pub fn check(&self, name: &str) -> Result<(), BlockedName> {
        let normalized = normalize_name(name);
        match name_rule(&normalized) {
            Some(rule) if !self.allow.contains(&normalized) => Err(BlockedName {
                name: normalized,
                rule,
            }),
            _ => Ok(()),
        }
    }
}

/// Where a checked URL points.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name: lower-case, punycode, without a trailing dot.
    Name(String),
    /// An IP literal.
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(n) => f.write_str(n),
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// A URL that passed the syntax rules. Names are not yet checked against a
/// [`NamePolicy`] nor resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedUrl {
    url: Url,
    host: Host,
    port: u16,
}

/// Scheme, host and port: what "same origin" compares.
pub type Origin = (String, Host, u16);

impl CheckedUrl {
    /// Checks and parses `raw` (see the module docs for the rules).
    pub fn parse(raw: &str) -> Result<Self, UrlError> {
        let raw_host = raw_host(raw)?;
        let mut url = Url::parse(raw)?;
        url.set_fragment(None);
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlError::Scheme(url.scheme().to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Userinfo);
        }
        let host = match url.host() {
            None => return Err(UrlError::MissingHost),
            Some(url::Host::Ipv4(v4)) => {
                // The parser accepted it as IPv4; it must also have been written that way.
                if raw_host != v4.to_string() {
                    return Err(UrlError::NonCanonicalIpv4(raw_host.to_owned()));
                }
                Host::Ip(IpAddr::V4(v4))
            }
            Some(url::Host::Ipv6(v6)) => Host::Ip(IpAddr::V6(v6)),
            Some(url::Host::Domain(d)) => Host::Name(checked_name(d)?),
        };
        let port = url.port_or_known_default().ok_or(UrlError::BadPort)?;
        if port == 0 {
            return Err(UrlError::BadPort);
        }
        Ok(Self { url, host, port })
    }

    /// The target of a redirect from this URL, checked like a new URL. `location` may be
    /// absolute, scheme-relative (`//host/path`) or a path; a path keeps this URL's
    /// (already checked) host.
    pub fn redirect(&self, location: &str) -> Result<Self, UrlError> {
        if location.chars().any(forbidden_char) {
            return Err(UrlError::ForbiddenCharacter);
        }
        if has_scheme(location) {
            Self::parse(location)
        } else if location.starts_with("//") {
            Self::parse(&format!("{}:{location}", self.url.scheme()))
        } else {
            Self::parse(self.url.join(location)?.as_str())
        }
    }

    /// The URL (normalised, without fragment).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The port (the scheme's default when none was written).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether this is `https`.
    pub fn is_https(&self) -> bool {
        self.url.scheme() == "https"
    }

    /// Scheme, host and port.
    pub fn origin(&self) -> Origin {
        (self.url.scheme().to_owned(), self.host.clone(), self.port)
    }
}

fn forbidden_char(c: char) -> bool {
    c == '\\' || c.is_ascii_whitespace() || c.is_ascii_control()
}

/// `scheme:` at the start (RFC 3986: a letter, then letters, digits, `+`, `-`, `.`).
fn has_scheme(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// The host exactly as written, after the raw-text rules.
fn raw_host(raw: &str) -> Result<&str, UrlError> {
    if raw.chars().any(forbidden_char) {
        return Err(UrlError::ForbiddenCharacter);
    }
    let Some((scheme, rest)) = raw.split_once(':').filter(|_| has_scheme(raw)) else {
        return Err(UrlError::Syntax(url::ParseError::RelativeUrlWithoutBase));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(UrlError::Scheme(scheme));
    }
    let after = rest.strip_prefix("//").ok_or(UrlError::MissingSlashes)?;
    let authority = after.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(UrlError::Userinfo);
    }
    let (host, port) = if authority.starts_with('[') {
        let end = authority
            .find(']')
            .ok_or(UrlError::Syntax(url::ParseError::InvalidIpv6Address))?;
        authority.split_at(end + 1)
    } else {
        authority
            .find(':')
            .map_or((authority, ""), |i| authority.split_at(i))
    };
    if host.is_empty() {
        return Err(UrlError::MissingHost);
    }
    // Empty, or `:` and digits.
    let port_ok = port
        .strip_prefix(':')
        .map_or(port.is_empty(), |p| p.bytes().all(|b| b.is_ascii_digit()));
    if !port_ok {
        return Err(UrlError::BadPort);
    }
    if host.contains('%') {
        return Err(UrlError::PercentEncodedHost);
    }
    if ends_in_number(host) && !is_canonical_ipv4(host) {
        return Err(UrlError::NonCanonicalIpv4(host.to_owned()));
    }
    Ok(host)
}

/// WHATWG's "ends in a number": the parser treats such a host as IPv4.
fn ends_in_number(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let last = host.rsplit('.').next().unwrap_or_default();
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    last.strip_prefix("0x")
        .or_else(|| last.strip_prefix("0X"))
        .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Exactly four decimal parts 0..=255 without leading zeros.
fn is_canonical_ipv4(host: &str) -> bool {
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
                && p.parse::<u8>().is_ok()
        })
}

/// A DNS name from the parser: no empty labels (one trailing dot is dropped), at most
/// 253 characters, labels at most 63.
fn checked_name(domain: &str) -> Result<String, UrlError> {
    let name = domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| !l.is_empty() && l.len() <= 63);
    if ok {
        Ok(name)
    } else {
        Err(UrlError::BadHostName(domain.to_owned()))
    }
}

#[cfg(test)]
#[path = "url_policy_tests.rs"]
mod tests;
