//! One client connection: hyper's HTTP/1 server reads request heads (size and time
//! capped), each request is turned into a target, checked by the guard and dialled, then
//! tunnelled or forwarded. A successful `CONNECT` ends the HTTP part: the connection is
//! upgraded and relays bytes until either side closes, the idle timeout or the byte cap.

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, oneshot, watch};

use super::ProxyLimits;
use super::forward::{self, ProxyBody};
use super::meter::{self, Meter, Metered};
use super::target::{self, PortPolicy, Refusal, Target};
use crate::connect::Guard;
use crate::error::EgressError;
use crate::url_policy::Host;

/// hyper's smallest read buffer. The buffer is this much larger than the head limit, so
/// a head somewhat over the limit is read whole and answered 431 rather than cut off
/// mid-read (closing with unread bytes would reset the connection before the client
/// reads the answer).
const READ_BUFFER_MARGIN: usize = 8192;

/// What every connection of one proxy shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) guard: Guard,
    pub(crate) ports: PortPolicy,
    pub(crate) limits: ProxyLimits,
    pub(crate) slots: Arc<Semaphore>,
}

/// Who is connected, for logs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Peer {
    Tcp(SocketAddr),
    Unix,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Unix => f.write_str("unix socket"),
        }
    }
}

/// A checked, connected tunnel waiting for hyper to hand over the client's stream.
struct PendingTunnel {
    upgrade: OnUpgrade,
    upstream: TcpStream,
    host: Host,
    port: u16,
}

/// Where the request handler leaves the tunnel for the connection task (at most one:
/// after a `CONNECT` is answered 200 the connection speaks no more HTTP).
type TunnelSlot = Arc<Mutex<Option<oneshot::Sender<PendingTunnel>>>>;

/// Serves one client connection to the end.
pub(crate) async fn serve<S>(
    shared: Arc<Shared>,
    io: S,
    peer: Peer,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = shared.limits;
    let meter = Arc::new(Meter::new(limits.max_bytes_per_connection));
    let io = TokioIo::new(Metered::new(io, Arc::clone(&meter)));
    let (tunnel_tx, mut tunnel_rx) = oneshot::channel();
    let slot: TunnelSlot = Arc::new(Mutex::new(Some(tunnel_tx)));
    let service = {
        let shared = Arc::clone(&shared);
        service_fn(move |request| {
            let shared = Arc::clone(&shared);
            let slot = Arc::clone(&slot);
            async move { Ok::<_, Infallible>(shared.handle(request, &slot, peer).await) }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .max_buf_size(limits.max_head_bytes.saturating_add(READ_BUFFER_MARGIN))
        .max_header_size(limits.max_head_bytes);
    let connection = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "guarded proxy: connection ended with an error");
                }
                break;
            }
            () = meter::idle(&meter, limits.idle_timeout) => {
                tracing::debug!(%peer, "guarded proxy: idle connection closed");
                return;
            }
            _ = stop.changed(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
    if let Ok(pending) = tunnel_rx.try_recv() {
        relay(pending, &meter, limits.idle_timeout, peer).await;
    }
    if meter.capped() {
        tracing::warn!(%peer, bytes = meter.bytes(), "guarded proxy: connection reached its byte cap");
    }
}

/// Relays bytes between the client and the tunnel's target.
async fn relay(pending: PendingTunnel, meter: &Meter, idle: Duration, peer: Peer) {
    let PendingTunnel {
        upgrade,
        mut upstream,
        host,
        port,
    } = pending;
    let upgraded = match upgrade.await {
        Ok(upgraded) => upgraded,
        Err(e) => {
            tracing::debug!(%peer, %host, port, error = %e, "guarded proxy: tunnel upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(upgraded);
    let end = tokio::select! {
        result = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match result {
            Ok(_) => "closed",
            Err(_) if meter.capped() => "byte cap",
            Err(_) => "error",
        },
        () = meter::idle(meter, idle) => "idle",
    };
    tracing::info!(%peer, %host, port, bytes = meter.bytes(), end, "guarded proxy: tunnel ended");
}

impl Shared {
    async fn handle(
        &self,
        mut request: Request<Incoming>,
        slot: &TunnelSlot,
        peer: Peer,
    ) -> Response<ProxyBody> {
        let target = match target::parse(request.method(), request.uri()) {
            Ok(target) => target,
            Err(Refusal::BadRequest(e)) => {
                tracing::debug!(%peer, error = %e, "guarded proxy: bad request");
                return ProxyBody::text(StatusCode::BAD_REQUEST, &e.to_string());
            }
            Err(Refusal::Guard(e)) => return answer_error(&e, peer),
        };
        let (host, port) = (target.host().clone(), target.port());
        let upstream = match self.connect(&host, port).await {
            Ok(stream) => stream,
            Err(e) => return answer_error(&e, peer),
        };
        match target {
            Target::Tunnel { .. } => {
                tracing::info!(%peer, %host, port, "guarded proxy: tunnel opened");
                let sender = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                let pending = PendingTunnel {
                    upgrade: hyper::upgrade::on(&mut request),
                    upstream,
                    host,
                    port,
                };
                let Some(Ok(())) = sender.map(|s| s.send(pending).map_err(drop)) else {
                    // Unreachable in HTTP/1: a connection upgrades at most once.
                    return ProxyBody::text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "this connection already carries a tunnel",
                    );
                };
                ProxyBody::empty()
            }
            Target::Forward(url) => {
                let method = request.method().clone();
                let result = match forward::upstream_request(request, &url) {
                    Ok(upstream_request) => {
                        forward::exchange(upstream, upstream_request, &url).await
                    }
                    Err(e) => Err(e),
                };
                match result {
                    Ok(response) => {
                        tracing::info!(%peer, %host, port, %method, status = response.status().as_u16(), "guarded proxy: forwarded");
                        response
                    }
                    Err(e) => answer_error(&e, peer),
                }
            }
        }
    }

    /// The port rule, then the guard, within the connect timeout.
    async fn connect(&self, host: &Host, port: u16) -> Result<TcpStream, EgressError> {
        self.ports.check(host, port)?;
        let limit = self.limits.connect_timeout;
        tokio::time::timeout(limit, self.guard.connect(host, port))
            .await
            .unwrap_or_else(|_| {
                Err(EgressError::Connect {
                    host: host.clone(),
                    source: io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("DNS and connecting took longer than {limit:?}"),
                    ),
                })
            })
    }
}

/// The status for a failure, with the error's own text as the body: `403` for the guard's
/// rules, `504` for timeouts, `502` for DNS, connect and HTTP failures.
fn answer_error(err: &EgressError, peer: Peer) -> Response<ProxyBody> {
    let status = if err.is_policy_refusal() || matches!(err, EgressError::Unpinned { .. }) {
        tracing::warn!(%peer, rule = %err, "guarded proxy: refused");
        StatusCode::FORBIDDEN
    } else {
        tracing::info!(%peer, error = %err, "guarded proxy: target unreachable");
        match err {
            EgressError::Connect { source, .. } if source.kind() == io::ErrorKind::TimedOut => {
                StatusCode::GATEWAY_TIMEOUT
            }
            _ => StatusCode::BAD_GATEWAY,
        }
    };
    ProxyBody::text(status, &err.to_string())
}

/// The answer to a client over the connection limit: `503`, then close. Best effort and
/// bounded in time; errors only mean the client went away.
pub(crate) async fn refuse_busy<S>(mut io: S, max: usize)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let body = format!("the proxy is serving its maximum of {max} connections; try again later\n");
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = async {
        io.write_all(head.as_bytes()).await?;
        io.shutdown().await?;
        // Read what the client sent, so closing does not reset the connection before it
        // has read the answer.
        let mut sink = [0u8; 4096];
        let mut total = 0;
        while total < 64 * 1024 {
            match io.read(&mut sink).await? {
                0 => break,
                n => total += n,
            }
        }
        Ok::<_, io::Error>(())
    };
    match tokio::time::timeout(Duration::from_secs(2), answer).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "guarded proxy: busy answer not delivered"),
        Err(_) => tracing::debug!("guarded proxy: busy answer timed out"),
    }
}
