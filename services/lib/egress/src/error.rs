//! The crate's one error type. Messages name the host and the rule that refused it; they
//! never contain the URL's path or query, headers or bodies, where secrets travel.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::ip_policy::Blocked;
use crate::resolve::ResolveError;
use crate::url_policy::{BlockedName, Host, UrlError};

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// The URL broke a syntax rule (scheme, userinfo, non-canonical IPv4, ...).
    #[error("refused URL: {0}")]
    Url(#[from] UrlError),
    /// The host name is blocked by name.
    #[error("{0}")]
    BlockedName(#[from] BlockedName),
    /// The URL's IP literal is in a blocked network.
    #[error("{0}")]
    BlockedAddress(#[from] Blocked),
    /// The name resolved to (at least one) blocked address.
    #[error("blocked: {host} resolves to {}, which {}", blocked.ip, blocked.predicate())]
    BlockedAnswer {
        /// The name.
        host: String,
        /// The first refused answer.
        blocked: Blocked,
    },
    /// DNS failed.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The name.
        host: String,
        /// Why.
        #[source]
        source: ResolveError,
    },
    /// No connection could be opened to the checked addresses.
    #[error("cannot connect to {host}: {source}")]
    Connect {
        /// The host.
        host: Host,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The dialer returned a stream to an address that was not checked.
    #[error("the connection to {host} went to {peer}, which is not one of the checked addresses")]
    Unpinned {
        /// The host.
        host: Host,
        /// Where the stream actually leads.
        peer: SocketAddr,
    },
    /// The TLS handshake failed (certificate, name, protocol).
    #[error("TLS with {host} failed: {source}")]
    Tls {
        /// The host.
        host: Host,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The host is not usable as a TLS server name.
    #[error("{host} is not a valid TLS server name")]
    ServerName {
        /// The host.
        host: Host,
    },
    /// The HTTP exchange failed.
    #[error("HTTP exchange with {host} failed: {source}")]
    Http {
        /// The host.
        host: Host,
        /// Why.
        #[source]
        source: hyper::Error,
    },
    /// The request could not be built (a caller-supplied header, for example).
    #[error("cannot build the request: {0}")]
    Request(#[from] http::Error),
    /// More redirects than allowed.
    #[error("more than {max} redirects")]
    TooManyRedirects {
        /// The limit.
        max: u8,
    },
    /// A redirect without a usable `Location`.
    #[error("redirect {status} from {host} has no usable Location header")]
    BadLocation {
        /// The host that redirected.
        host: Host,
        /// The status.
        status: u16,
    },
    /// A redirect hop failed; `source` says why.
    #[error("redirect {hop} (from {from}): {source}")]
    Redirect {
        /// 1 for the first redirect.
        hop: u8,
        /// The host that redirected.
        from: Host,
        /// Why the hop failed.
        #[source]
        source: Box<EgressError>,
    },
    /// The response is not text, JSON or XHTML.
    #[error(
        "content type {found:?} is not allowed; only text/*, application/json and application/xhtml+xml"
    )]
    ContentType {
        /// The `Content-Type` (empty when missing).
        found: String,
    },
    /// The body is larger than allowed.
    #[error(
        "the response body exceeds {limit} bytes; raise the limit (--max-bytes) to accept more"
    )]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The TLS configuration could not be built.
    #[error("cannot set up TLS: {0}")]
    TlsConfig(#[source] rustls::Error),
    /// The whole fetch (DNS, connect, redirects, body) took too long.
    #[error("gave up after {0:?} (the limit covers DNS, connecting, redirects and the body)")]
    Timeout(Duration),
    /// The guarded proxy does not connect to this port.
    #[error(
        "blocked: port {port} of {host} is not allowed (allowed ports: {})",
        port_list(allowed)
    )]
    PortNotAllowed {
        /// The host.
        host: Host,
        /// The refused port.
        port: u16,
        /// The ports the proxy allows.
        allowed: Vec<u16>,
    },
    /// The guarded proxy was given a TCP listener that is not on loopback. Its only access
    /// control is who can reach the listener, so it serves loopback or a unix socket.
    #[error(
        "the proxy listener {0} is not on loopback; bind it to 127.0.0.1 or ::1, or serve it on a unix socket"
    )]
    ProxyNotLoopback(SocketAddr),
    /// The guarded proxy's listener address could not be read.
    #[error("cannot read the proxy listener's address: {0}")]
    ProxyListener(#[source] io::Error),
}

fn port_list(ports: &[u16]) -> String {
    if ports.is_empty() {
        return "none".to_owned();
    }
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    ports.join(", ")
}

impl EgressError {
    /// The error behind any redirect wrapping: what actually went wrong.
    pub fn root(&self) -> &EgressError {
        match self {
            Self::Redirect { source, .. } => source.root(),
            other => other,
        }
    }

    /// Whether the SSRF policy refused the fetch (URL rules, names, addresses; for the
    /// guarded proxy also ports), as opposed to a network or protocol failure.
    pub fn is_policy_refusal(&self) -> bool {
        matches!(
            self.root(),
            Self::Url(_)
                | Self::BlockedName(_)
                | Self::BlockedAddress(_)
                | Self::BlockedAnswer { .. }
                | Self::TooManyRedirects { .. }
                | Self::PortNotAllowed { .. }
        )
    }

    /// The refused address, when an address rule refused the fetch.
    pub fn blocked(&self) -> Option<&Blocked> {
        match self.root() {
            Self::BlockedAddress(b) | Self::BlockedAnswer { blocked: b, .. } => Some(b),
            _ => None,
        }
    }
}
