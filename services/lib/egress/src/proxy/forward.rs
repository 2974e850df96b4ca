//! Forwarding one absolute-form `http://` request over a pinned connection: the request
//! goes out in origin form with the hop-by-hop headers and `Proxy-Authorization` removed
//! and `Host` set from the checked URL; the response comes back as it is (status, a body
//! streamed through, redirects included: the client follows them, and each hop comes
//! back through the proxy to be checked again) minus its hop-by-hop headers.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{
    CONNECTION, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING,
    UPGRADE,
};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use url::Position;

use crate::error::EgressError;
use crate::url_policy::CheckedUrl;

/// Removes the headers that describe one connection rather than the message (RFC 9110
/// 7.6.1): `Connection` and every header it names, `Keep-Alive`, `Proxy-Connection`,
/// `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`, and the proxy's own
/// `Proxy-Authorization` / `Proxy-Authenticate`, which must never travel further.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        CONNECTION,
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        UPGRADE,
        PROXY_AUTHORIZATION,
        PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// The request to send upstream: origin form, `Host` from the checked URL, one request
/// per connection.
pub(crate) fn upstream_request(
    request: Request<Incoming>,
    url: &CheckedUrl,
) -> Result<Request<Incoming>, EgressError> {
    let (mut parts, body) = request.into_parts();
    let target = &url.url()[Position::BeforePath..Position::AfterQuery];
    parts.uri = target.parse::<Uri>().map_err(http::Error::from)?;
    parts.version = http::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    let host = &url.url()[Position::BeforeHost..Position::AfterPort];
    parts.headers.insert(
        HOST,
        HeaderValue::from_str(host).map_err(http::Error::from)?,
    );
    parts
        .headers
        .insert(CONNECTION, HeaderValue::from_static("close"));
    Ok(Request::from_parts(parts, body))
}

/// Sends `request` over `stream` and returns the response, its body still streaming.
pub(crate) async fn exchange(
    stream: TcpStream,
    request: Request<Incoming>,
    url: &CheckedUrl,
) -> Result<Response<ProxyBody>, EgressError> {
    let http_err = |source| EgressError::Http {
        host: url.host().clone(),
        source,
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http_err)?;
    let driver = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "proxied upstream connection ended with an error");
        }
    }));
    let response = sender.send_request(request).await.map_err(http_err)?;
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(
        parts,
        ProxyBody::Relayed {
            body,
            _upstream: driver,
        },
    ))
}

/// A response body: the proxy's own one-line text, or an upstream body streamed through.
#[derive(Debug)]
pub(crate) enum ProxyBody {
    /// Written by the proxy.
    Local(Full<Bytes>),
    /// Read from upstream; the upstream connection lives as long as this body.
    Relayed {
        body: Incoming,
        _upstream: AbortOnDrop,
    },
}

impl ProxyBody {
    /// `status` with a `text/plain` body of one line.
    pub(crate) fn text(status: StatusCode, line: &str) -> Response<Self> {
        let mut response = Response::new(Self::Local(Full::new(Bytes::from(format!("{line}\n")))));
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }

    /// An empty `200` (the answer to a CONNECT that will be tunnelled).
    pub(crate) fn empty() -> Response<Self> {
        Response::new(Self::Local(Full::new(Bytes::new())))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Self::Local(full) => Pin::new(full)
                .poll_frame(cx)
                .map(|frame| frame.map(|r| r.map_err(|never: Infallible| match never {}))),
            Self::Relayed { body, .. } => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Local(full) => full.is_end_stream(),
            Self::Relayed { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Local(full) => full.size_hint(),
            Self::Relayed { body, .. } => body.size_hint(),
        }
    }
}

/// Aborts the task (the upstream connection's driver) when dropped, so a client that goes
/// away takes the upstream connection with it.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_removed() {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Secret-Hop"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("proxy-authenticate", "Basic"),
            ("te", "trailers"),
            ("trailer", "X-Checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-secret-hop", "1"),
            ("accept", "text/html"),
            ("authorization", "Bearer end-to-end"),
        ] {
            h.append(name, HeaderValue::from_static(value));
        }
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "authorization"]);
    }
}
