//! The fetch procedure: for each hop, check the URL, check the name, resolve once, check
//! every answer, dial only those addresses, speak HTTP/1.1 (TLS for https); follow at
//! most [`Limits::max_redirects`] redirects by hand, each hop checked again from the
//! start, dropping credentials when the origin changes; cap time, size and content type.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, COOKIE, HOST, LOCATION,
    PROXY_AUTHORIZATION, TE, TRANSFER_ENCODING, UPGRADE, USER_AGENT,
};
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::Empty;
use pincer_runtime::cidr::IpCidr;
use rustls::{ClientConfig, RootCertStore};
use url::{Position, Url};

use crate::connect::{Dialer, Guard, TokioDialer};
use crate::content;
use crate::error::EgressError;
use crate::ip_policy::IpPolicy;
use crate::resolve::{HickoryResolver, Resolver};
use crate::transport::{self, Response};
use crate::url_policy::{CheckedUrl, Host, NamePolicy};

/// Caps on one fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest body accepted, in bytes (default 2 MiB).
    pub max_body_bytes: usize,
    /// Time for the whole fetch: DNS, connecting, every redirect and the body (default 20 s).
    pub total_time: Duration,
    /// Redirects followed (default 3); one more is an error.
    pub max_redirects: u8,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 2 * 1024 * 1024,
            total_time: Duration::from_secs(20),
            max_redirects: 3,
        }
    }
}

/// What to fetch. Caller headers are sent on the first hop and on same-origin redirects;
/// `Authorization`, `Cookie` and `Proxy-Authorization` are dropped for good once a
/// redirect changes scheme, host or port. `Host`, `Connection`, `Accept-Encoding` and
/// the framing headers are always the fetcher's own.
#[derive(Debug, Clone, Default)]
pub struct FetchRequest {
    /// The URL.
    pub url: String,
    /// Extra request headers.
    pub headers: HeaderMap,
}

/// A fetched page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The URL that answered (after redirects).
    pub url: Url,
    /// The final status (any status that is not a followed redirect).
    pub status: StatusCode,
    /// The media type, lower-case, without parameters.
    pub content_type: String,
    /// The body as text (HTML rendered to readable text).
    pub text: String,
    /// How many redirects were followed.
    pub redirects: u8,
}

/// Builds a [`Fetcher`]. Defaults: nothing re-allowed, [`Limits::default`], the system
/// DNS configuration, tokio's TCP dialer, the webpki roots.
#[derive(Debug, Default)]
pub struct FetcherBuilder {
    allow_networks: Vec<IpCidr>,
    allow_hosts: Vec<String>,
    limits: Limits,
    resolver: Option<Arc<dyn Resolver>>,
    dialer: Option<Arc<dyn Dialer>>,
    roots: Option<RootCertStore>,
}

impl FetcherBuilder {
    /// Re-allows a blocked network (e.g. `127.0.0.1/32` for a test server).
    pub fn allow_network(mut self, net: IpCidr) -> Self {
        self.allow_networks.push(net);
        self
    }

    /// Re-allows exactly this host name if it is blocked by name; its addresses must still
    /// pass the IP policy.
    pub fn allow_host(mut self, name: impl Into<String>) -> Self {
        self.allow_hosts.push(name.into());
        self
    }

    /// The caps.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The resolver (tests: [`HickoryResolver::with_name_servers`] on a fake DNS server).
    pub fn resolver(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// The dialer (tests: [`crate::RecordingDialer`]).
    pub fn dialer(mut self, dialer: Arc<dyn Dialer>) -> Self {
        self.dialer = Some(dialer);
        self
    }

    /// Trusted TLS roots instead of the webpki roots (tests: a local CA).
    pub fn tls_roots(mut self, roots: RootCertStore) -> Self {
        self.roots = Some(roots);
        self
    }

    /// The fetcher.
    pub fn build(self) -> Result<Fetcher, EgressError> {
        let tls = transport::tls_config(self.roots.unwrap_or_else(transport::webpki_roots))?;
        Ok(Fetcher {
            guard: Guard {
                ips: IpPolicy::new(self.allow_networks),
                names: NamePolicy::new(&self.allow_hosts),
                resolver: self
                    .resolver
                    .unwrap_or_else(|| Arc::new(HickoryResolver::system())),
                dialer: self
                    .dialer
                    .unwrap_or_else(|| Arc::new(TokioDialer::default())),
            },
            limits: self.limits,
            tls,
        })
    }
}

/// Fetches web pages under the SSRF policy. Cheap to share (`&self` methods).
#[derive(Debug)]
pub struct Fetcher {
    /// The checks and the pinned dial, shared with the guarded proxy.
    guard: Guard,
    limits: Limits,
    tls: Arc<ClientConfig>,
}

impl Fetcher {
    /// A builder with the defaults.
    pub fn builder() -> FetcherBuilder {
        FetcherBuilder::default()
    }

    /// The caps in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// `GET url` with no extra headers.
    pub async fn fetch(&self, url: &str) -> Result<Fetched, EgressError> {
        self.fetch_with(FetchRequest {
            url: url.to_owned(),
            headers: HeaderMap::new(),
        })
        .await
    }

    /// `GET` with caller headers; see [`FetchRequest`].
    pub async fn fetch_with(&self, request: FetchRequest) -> Result<Fetched, EgressError> {
        let limit = self.limits.total_time;
        tokio::time::timeout(limit, self.follow(request))
            .await
            .map_err(|_| EgressError::Timeout(limit))?
    }

    async fn follow(&self, request: FetchRequest) -> Result<Fetched, EgressError> {
        let mut url = CheckedUrl::parse(&request.url)?;
        let mut headers = request.headers;
        // Who redirected to `url`, so that errors of a later hop say where it came from.
        let mut from: Option<Host> = None;
        for hop in 0..=self.limits.max_redirects {
            let step = self
                .hop(&url, &headers, hop)
                .await
                .map_err(|source| match &from {
                    Some(from) => EgressError::Redirect {
                        hop,
                        from: from.clone(),
                        source: Box::new(source),
                    },
                    None => source,
                })?;
            let next = match step {
                Step::Done(page) => return Ok(page),
                Step::Redirect(next) => next,
            };
            if next.origin() != url.origin() {
                for name in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION] {
                    headers.remove(name);
                }
            }
            from = Some(url.host().clone());
            url = next;
        }
        Err(EgressError::TooManyRedirects {
            max: self.limits.max_redirects,
        })
    }

    /// One hop: the page, or where it redirects (already checked as a URL).
    async fn hop(
        &self,
        url: &CheckedUrl,
        headers: &HeaderMap,
        hop: u8,
    ) -> Result<Step, EgressError> {
        let response = self.exchange(url, headers).await?;
        let Some(status) = redirect_status(response.status) else {
            return self.finish(url, response, hop).await.map(Step::Done);
        };
        let location = response
            .headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| EgressError::BadLocation {
                host: url.host().clone(),
                status,
            })?;
        let next = url.redirect(location).map_err(|e| EgressError::Redirect {
            hop: hop + 1,
            from: url.host().clone(),
            source: Box::new(e.into()),
        })?;
        Ok(Step::Redirect(next))
    }

    /// One request/response on a fresh connection to the pinned addresses.
    async fn exchange(
        &self,
        url: &CheckedUrl,
        headers: &HeaderMap,
    ) -> Result<Response, EgressError> {
        let stream = self.guard.connect(url.host(), url.port()).await?;
        transport::exchange(stream, url, &self.tls, build_request(url, headers)?).await
    }

    async fn finish(
        &self,
        url: &CheckedUrl,
        response: Response,
        redirects: u8,
    ) -> Result<Fetched, EgressError> {
        let status = response.status;
        let content_type = content::allowed_media_type(&response.headers)?;
        let body = response
            .read_capped(url.host(), self.limits.max_body_bytes)
            .await?;
        let text = content::to_text(&content_type, &body);
        Ok(Fetched {
            url: url.url().clone(),
            status,
            content_type,
            text,
            redirects,
        })
    }
}

/// What one hop ended with.
enum Step {
    Done(Fetched),
    Redirect(CheckedUrl),
}

fn redirect_status(status: StatusCode) -> Option<u16> {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308).then_some(status.as_u16())
}

const DEFAULT_ACCEPT: &str =
    "text/html, application/xhtml+xml, application/json;q=0.9, text/*;q=0.8";
const USER_AGENT_VALUE: &str = concat!("pincer-egress/", env!("CARGO_PKG_VERSION"));

/// `GET` in origin form with the caller's headers, minus the ones the fetcher owns.
fn build_request(
    url: &CheckedUrl,
    headers: &HeaderMap,
) -> Result<Request<Empty<Bytes>>, EgressError> {
    let target = &url.url()[Position::BeforePath..Position::AfterQuery];
    let host = url.url().host_str().unwrap_or_default();
    let host = match url.url().port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let mut request = Request::get(target).body(Empty::new())?;
    let h = request.headers_mut();
    *h = headers.clone();
    for name in [TRANSFER_ENCODING, CONTENT_LENGTH, TE, UPGRADE] {
        h.remove(name);
    }
    h.remove("keep-alive");
    h.remove("proxy-connection");
    h.insert(
        HOST,
        HeaderValue::from_str(&host).map_err(http::Error::from)?,
    );
    h.insert(CONNECTION, HeaderValue::from_static("close"));
    h.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    h.entry(ACCEPT)
        .or_insert(HeaderValue::from_static(DEFAULT_ACCEPT));
    h.entry(USER_AGENT)
        .or_insert(HeaderValue::from_static(USER_AGENT_VALUE));
    Ok(request)
}
