//! One HTTP/1.1 exchange over an already pinned TCP stream: TLS (rustls, webpki roots,
//! SNI = the URL's host name), hyper's client connection, and a size-capped body read.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use crate::error::EgressError;
use crate::url_policy::{CheckedUrl, Host};

/// A TLS client configuration trusting `roots` (the webpki roots by default), TLS 1.2+,
/// HTTP/1.1 over ALPN.
pub fn tls_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, EgressError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(EgressError::TlsConfig)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Mozilla's root certificates, as shipped by `webpki-roots`.
pub fn webpki_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// A response whose body has not been read yet. Dropping it closes the connection.
pub(crate) struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
    _connection: AbortOnDrop,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends `request` over `stream` (wrapped in TLS for https) and returns the response head.
pub(crate) async fn exchange(
    stream: TcpStream,
    url: &CheckedUrl,
    tls: &Arc<ClientConfig>,
    request: Request<Empty<Bytes>>,
) -> Result<Response, EgressError> {
    if !url.is_https() {
        return send(stream, url.host(), request).await;
    }
    let name = match url.host() {
        Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
        Host::Name(n) => ServerName::try_from(n.clone()).map_err(|_| EgressError::ServerName {
            host: url.host().clone(),
        })?,
    };
    let tls_stream = TlsConnector::from(Arc::clone(tls))
        .connect(name, stream)
        .await
        .map_err(|source| EgressError::Tls {
            host: url.host().clone(),
            source,
        })?;
    send(tls_stream, url.host(), request).await
}

async fn send<S>(
    io: S,
    host: &Host,
    request: Request<Empty<Bytes>>,
) -> Result<Response, EgressError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let http_err = |source| EgressError::Http {
        host: host.clone(),
        source,
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(http_err)?;
    let connection = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "egress connection ended with an error");
        }
    }));
    let response = sender.send_request(request).await.map_err(http_err)?;
    let (parts, body) = response.into_parts();
    Ok(Response {
        status: parts.status,
        headers: parts.headers,
        body,
        _connection: connection,
    })
}

impl Response {
    /// The body, refusing it as soon as it would exceed `limit` bytes (before reading it
    /// at all when `Content-Length` says so).
    pub(crate) async fn read_capped(
        self,
        host: &Host,
        limit: usize,
    ) -> Result<Vec<u8>, EgressError> {
        let declared = self
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(EgressError::TooLarge { limit });
        }
        let mut body = self.body;
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|source| EgressError::Http {
                host: host.clone(),
                source,
            })?;
            if let Ok(data) = frame.into_data() {
                if out.len() + data.len() > limit {
                    return Err(EgressError::TooLarge { limit });
                }
                out.extend_from_slice(&data);
            }
        }
        Ok(out)
    }
}
