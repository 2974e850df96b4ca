//! The guarded HTTP forward proxy: the fetcher's SSRF guard for clients that speak HTTP
//! proxy (`HTTP_PROXY` / `HTTPS_PROXY`), such as programs in a sandbox (the executor runs
//! one for commands granted egress); `docs/egress.md` ("Guarded proxy") has the contract.
//!
//! For every request:
//!
//! 1. `CONNECT host:port` opens a tunnel; `METHOD http://host/path` (absolute form) is
//!    forwarded; anything else is `400` (`target`). The host goes through the
//!    fetcher's URL rules, so it is canonicalised exactly as a URL would be.
//! 2. The port must be in the list (80 and 443 unless configured).
//! 3. The guard (`connect::Guard`, the fetcher's steps): name rules or IP rules, one
//!    lookup with every answer checked, dial only those addresses, verify the peer.
//!    A refusal is `403` with the rule in one line, the same text as [`EgressError`]'s,
//!    and a `warn` log; DNS and connect failures are `502`/`504`.
//! 4. A tunnel relays bytes both ways; a forwarded request goes out in origin form without
//!    hop-by-hop headers or `Proxy-Authorization`, and its response comes back as is.
//!    Redirects are never followed here: the client follows them through the proxy, so
//!    every hop is checked again.
//!
//! There are no proxy credentials: who can reach the listener is the access control, so
//! [`GuardedProxy::serve_tcp`] refuses a listener that is not on loopback and
//! [`GuardedProxy::serve_unix`] relies on the socket file's permissions.
//!
//! | module | what |
//! |---|---|
//! | `target` | the request line to a tunnel or forward target; the port list (pure) |
//! | `conn` | one client connection: hyper's HTTP/1 server, the guard, tunnels |
//! | `forward` | hop-by-hop headers, the forwarded exchange, the response body type |
//! | `meter` | idle timeout and byte cap, counted on the client's stream |

mod conn;
mod forward;
mod meter;
mod target;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pincer_runtime::cidr::IpCidr;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::connect::{Dialer, Guard, TokioDialer};
use crate::error::EgressError;
use crate::ip_policy::IpPolicy;
use crate::resolve::{HickoryResolver, Resolver};
use crate::url_policy::NamePolicy;

pub use target::DEFAULT_PORTS;

/// How the proxy reads a request line, before any lookup or dial: the target's host and
/// port, or the text of the `400`/`403` it would answer. The proxy itself calls the same
/// parser; this entry point exists for the fuzz target and the property tests.
pub fn read_request_target(
    method: &http::Method,
    uri: &http::Uri,
) -> Result<(String, u16), String> {
    match target::parse(method, uri) {
        Ok(t) => Ok((t.host().to_string(), t.port())),
        Err(target::Refusal::BadRequest(e)) => Err(e.to_string()),
        Err(target::Refusal::Guard(e)) => Err(e.to_string()),
    }
}

/// Caps on the proxy and on each client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyLimits {
    /// Client connections served at once (default 64); one more is answered `503`.
    /// Each connection holds at most one upstream connection at a time (a tunnel or one
    /// forwarded request), so this also caps tunnels.
    pub max_connections: usize,
    /// A connection (tunnel or keep-alive) with no byte moving for this long is closed
    /// (default 120 s).
    pub idle_timeout: Duration,
    /// Largest request head (request line and headers) in bytes (default 16 KiB); a
    /// larger one is answered `431`.
    pub max_head_bytes: usize,
    /// Time for a request head to arrive once it has started (default 10 s).
    pub head_timeout: Duration,
    /// Time for DNS and connecting to a target (default 10 s); then `504`.
    pub connect_timeout: Duration,
    /// Bytes a client connection may move, both directions together, over its lifetime
    /// (default: no cap). Reaching it closes the connection.
    pub max_bytes_per_connection: Option<u64>,
    /// After shutdown, how long open connections may finish before they are cut
    /// (default 5 s).
    pub drain_timeout: Duration,
}

impl Default for ProxyLimits {
    fn default() -> Self {
        Self {
            max_connections: 64,
            idle_timeout: Duration::from_secs(120),
            max_head_bytes: 16 * 1024,
            head_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            max_bytes_per_connection: None,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// Builds a [`GuardedProxy`] from the fetcher's policy inputs. Defaults: nothing
/// re-allowed, ports 80 and 443, [`ProxyLimits::default`], the system DNS configuration,
/// tokio's TCP dialer.
#[derive(Debug, Default)]
pub struct GuardedProxyBuilder {
    allow_networks: Vec<IpCidr>,
    allow_hosts: Vec<String>,
    ports: Option<Vec<u16>>,
    limits: ProxyLimits,
    resolver: Option<Arc<dyn Resolver>>,
    dialer: Option<Arc<dyn Dialer>>,
}

impl GuardedProxyBuilder {
    /// Re-allows a blocked network, as [`crate::FetcherBuilder::allow_network`].
    pub fn allow_network(mut self, net: IpCidr) -> Self {
        self.allow_networks.push(net);
        self
    }

    /// Re-allows exactly this host name if it is blocked by name, as
    /// [`crate::FetcherBuilder::allow_host`]; its addresses must still pass.
    pub fn allow_host(mut self, name: impl Into<String>) -> Self {
        self.allow_hosts.push(name.into());
        self
    }

    /// The only ports the proxy connects to, replacing [`DEFAULT_PORTS`]. An empty list
    /// refuses every target.
    pub fn ports(mut self, ports: impl IntoIterator<Item = u16>) -> Self {
        self.ports = Some(ports.into_iter().collect());
        self
    }

    /// The caps.
    pub fn limits(mut self, limits: ProxyLimits) -> Self {
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

    /// The proxy.
    pub fn build(self) -> GuardedProxy {
        let guard = Guard {
            ips: IpPolicy::new(self.allow_networks),
            names: NamePolicy::new(&self.allow_hosts),
            resolver: self
                .resolver
                .unwrap_or_else(|| Arc::new(HickoryResolver::system())),
            dialer: self
                .dialer
                .unwrap_or_else(|| Arc::new(TokioDialer::default())),
        };
        GuardedProxy {
            shared: Arc::new(conn::Shared {
                guard,
                ports: target::PortPolicy::new(
                    self.ports.unwrap_or_else(|| DEFAULT_PORTS.to_vec()),
                ),
                limits: self.limits,
                slots: Arc::new(Semaphore::new(self.limits.max_connections)),
            }),
        }
    }
}

/// An HTTP forward proxy whose every connection passes the SSRF guard. Cheap to clone;
/// one proxy may serve several listeners at once, sharing its connection limit.
#[derive(Debug, Clone)]
pub struct GuardedProxy {
    shared: Arc<conn::Shared>,
}

impl GuardedProxy {
    /// A builder with the defaults.
    pub fn builder() -> GuardedProxyBuilder {
        GuardedProxyBuilder::default()
    }

    /// The caps in force.
    pub fn limits(&self) -> ProxyLimits {
        self.shared.limits
    }

    /// The ports the proxy connects to.
    pub fn ports(&self) -> &[u16] {
        self.shared.ports.allowed()
    }

    /// Serves `listener` until `shutdown` resolves, then stops accepting (the listener is
    /// closed), lets open connections finish for [`ProxyLimits::drain_timeout`] and cuts
    /// the rest. Refuses a listener that is not on loopback: without credentials, the bind
    /// is the access control.
    pub async fn serve_tcp(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), EgressError> {
        let addr = listener.local_addr().map_err(EgressError::ProxyListener)?;
        check_listen_addr(addr)?;
        tracing::info!(%addr, "guarded proxy listening");
        self.run(listener, shutdown).await;
        Ok(())
    }

    /// Serves a unix socket until `shutdown` resolves, as [`Self::serve_tcp`]. Whoever may
    /// open the socket file may use the proxy: create it in a directory only the intended
    /// clients can reach. The socket file is left in place; the caller removes it.
    #[cfg(unix)]
    pub async fn serve_unix(
        &self,
        listener: tokio::net::UnixListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), EgressError> {
        let path = listener.local_addr().map_err(EgressError::ProxyListener)?;
        tracing::info!(path = ?path.as_pathname(), "guarded proxy listening");
        self.run(listener, shutdown).await;
        Ok(())
    }

    async fn run<L: Listen>(&self, listener: L, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((io, peer)) => {
                        self.admit(&mut connections, io, peer, stop_rx.clone());
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "guarded proxy: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(done) = connections.join_next(), if !connections.is_empty() => {
                    log_join(done);
                }
            }
        }
        drop(listener);
        // Receivers may all be gone already; nothing to tell then.
        let _ = stop_tx.send(true);
        let drain = self.shared.limits.drain_timeout;
        let drained = tokio::time::timeout(drain, async {
            while let Some(done) = connections.join_next().await {
                log_join(done);
            }
        })
        .await;
        if drained.is_err() {
            tracing::info!(
                open = connections.len(),
                "guarded proxy: cutting connections still open after {drain:?}"
            );
        }
        connections.shutdown().await;
        tracing::info!("guarded proxy stopped");
    }

    fn admit<S>(
        &self,
        connections: &mut JoinSet<()>,
        io: S,
        peer: conn::Peer,
        stop: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        match Arc::clone(&self.shared.slots).try_acquire_owned() {
            Ok(slot) => {
                let shared = Arc::clone(&self.shared);
                connections.spawn(async move {
                    conn::serve(shared, io, peer, stop).await;
                    drop(slot);
                });
            }
            Err(_) => {
                let max = self.shared.limits.max_connections;
                tracing::warn!(%peer, max, "guarded proxy: connection limit reached");
                connections.spawn(conn::refuse_busy(io, max));
            }
        }
    }
}

/// `Ok` for a loopback address (the only TCP bind the proxy serves).
pub fn check_listen_addr(addr: SocketAddr) -> Result<(), EgressError> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(EgressError::ProxyNotLoopback(addr))
    }
}

fn log_join(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done
        && e.is_panic()
    {
        tracing::error!(error = %e, "guarded proxy: a connection task panicked");
    }
}

/// A listener the proxy serves: TCP on loopback, or a unix socket.
trait Listen: Send {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Io, conn::Peer)>> + Send;
}

impl Listen for TcpListener {
    type Io = tokio::net::TcpStream;

    async fn accept(&self) -> io::Result<(Self::Io, conn::Peer)> {
        let (stream, addr) = TcpListener::accept(self).await?;
        Ok((stream, conn::Peer::Tcp(addr)))
    }
}

#[cfg(unix)]
impl Listen for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;

    async fn accept(&self) -> io::Result<(Self::Io, conn::Peer)> {
        let (stream, _) = tokio::net::UnixListener::accept(self).await?;
        Ok((stream, conn::Peer::Unix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_tcp_binds_are_served() {
        for ok in ["127.0.0.1:3128", "127.9.9.9:1", "[::1]:3128"] {
            assert!(check_listen_addr(ok.parse().unwrap()).is_ok(), "{ok}");
        }
        for bad in [
            "0.0.0.0:3128",
            "[::]:3128",
            "192.168.1.5:3128",
            "10.0.0.1:1",
        ] {
            let err = check_listen_addr(bad.parse().unwrap()).unwrap_err();
            assert!(err.to_string().contains("not on loopback"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_builder_defaults() {
        let proxy = GuardedProxy::builder().build();
        assert_eq!(proxy.ports(), DEFAULT_PORTS);
        assert_eq!(proxy.limits(), ProxyLimits::default());
        let proxy = GuardedProxy::builder().ports([8443, 80, 8443]).build();
        assert_eq!(proxy.ports(), [80, 8443]);
    }
}
