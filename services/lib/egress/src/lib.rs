//! SSRF-guarded outbound web fetch (SECURITY.md, "Outbound web (SSRF)").
//!
//! [`Fetcher::fetch`] takes a URL from an untrusted caller (the model, a chat user) and
//! returns the page as text, or the rule that refused it. Each hop: the URL is parsed
//! once and its raw text checked; the host is checked by name or as an IP literal; a name
//! is resolved once and **every** answer must pass the IP policy; the connection goes only
//! to those addresses (pinned); HTTP/1.1 (TLS with the webpki roots for https) is spoken
//! over that connection; redirects are followed by hand, each hop checked again.
//! `docs/egress.md` has the procedure, the block lists and the limits.
//!
//! | module | what |
//! |---|---|
//! | [`url_policy`] | [`CheckedUrl`]: http(s) only, no userinfo, canonical IPv4 only; names blocked by name |
//! | [`ip_policy`] | [`IpPolicy`]: the IPv4/IPv6 block lists, embedded IPv4 in transition prefixes, the allowlist |
//! | [`resolve`] | [`Resolver`] seam, [`HickoryResolver`], every answer checked |
//! | [`connect`] | [`Dialer`] seam: [`TokioDialer`], [`RecordingDialer`] and [`LoopbackOnlyDialer`] for tests |
//! | [`fetch`] | [`Fetcher`]: limits, redirects by hand, credentials dropped across origins |
//! | [`proxy`] | [`GuardedProxy`]: an HTTP forward proxy (CONNECT and absolute-form `http://`) whose every connection passes the same guard |
//! | `transport` | TLS (rustls) and one HTTP/1.1 exchange (hyper) over the pinned stream; capped body |
//! | [`content`] | allowed content types; the body as text |
//! | [`html_text`] | HTML to readable text in one linear pass (script and style dropped) |
//! | [`error`] | [`EgressError`], the crate's one error type |
//!
//! The policy modules are pure (no I/O): they are what the unit, property and fuzz tests
//! exercise. Tests never connect anywhere but loopback: refused addresses are checked by
//! classification or through [`RecordingDialer`], which records and refuses.

pub mod connect;
pub mod content;
pub mod error;
pub mod fetch;
pub mod html_text;
pub mod ip_policy;
pub mod proxy;
pub mod resolve;
mod transport;
pub mod url_policy;

pub use connect::{Dialer, LoopbackOnlyDialer, RecordingDialer, TokioDialer};
pub use error::EgressError;
pub use fetch::{FetchRequest, Fetched, Fetcher, FetcherBuilder, Limits};
pub use ip_policy::{BlockRule, Blocked, IpPolicy, classify};
pub use pincer_runtime::cidr::IpCidr;
pub use proxy::{GuardedProxy, GuardedProxyBuilder, ProxyLimits};
pub use resolve::{HickoryResolver, ResolveError, Resolver};
pub use transport::{tls_config, webpki_roots};
pub use url_policy::{BlockedName, CheckedUrl, Host, NamePolicy, NameRule, UrlError};
