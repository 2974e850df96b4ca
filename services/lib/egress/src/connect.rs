//! Opening the TCP connection: a [`Dialer`] seam that receives only the checked, pinned
//! addresses. [`TokioDialer`] dials them; [`RecordingDialer`] records what would be
//! dialled and dials only loopback ([`LoopbackOnlyDialer`]), so tests can prove that a refused address was never
//! dialled without sending anything off the machine (TESTING.md, "Network rule").
//!
//! `Guard` (crate-private) is the whole path from a checked host to a pinned stream —
//! name rule or IP rule, one lookup, every answer checked, dial only those, verify the
//! peer — as the guarded proxy ([`crate::proxy`]) uses it. The fetcher runs the same
//! steps in `fetch.rs`.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::net::TcpStream;

use crate::error::EgressError;
use crate::ip_policy::IpPolicy;
use crate::resolve::{ResolveError, Resolver, check_answers};
use crate::url_policy::{Host, NamePolicy};

/// Connects to one of `addrs`. The fetcher passes only addresses that passed the IP
/// policy and checks afterwards that the stream's peer is one of them.
pub trait Dialer: Send + Sync + fmt::Debug {
    /// A connected stream to one of `addrs` (tried in order).
    fn dial<'a>(&'a self, addrs: &'a [SocketAddr]) -> BoxFuture<'a, io::Result<TcpStream>>;
}

/// Dials with tokio, one address after another, each attempt bounded by
/// `connect_timeout` (the fetch's total time limit bounds all of them).
#[derive(Debug, Clone)]
pub struct TokioDialer {
    /// Per-address connect timeout.
    pub connect_timeout: Duration,
}

impl Default for TokioDialer {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl Dialer for TokioDialer {
    fn dial<'a>(&'a self, addrs: &'a [SocketAddr]) -> BoxFuture<'a, io::Result<TcpStream>> {
        Box::pin(dial_in_order(addrs, self.connect_timeout))
    }
}

async fn dial_in_order(addrs: &[SocketAddr], timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to dial");
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Ok(Err(e)) => last = e,
            Err(_) => {
                last = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to {addr} took longer than {timeout:?}"),
                );
            }
        }
    }
    Err(last)
}

/// A dialer for tests: records every request, then dials only if every address is
/// loopback; anything else is refused without a packet being sent.
#[derive(Debug, Clone, Default)]
pub struct RecordingDialer {
    requests: Arc<Mutex<Vec<Vec<SocketAddr>>>>,
}

impl RecordingDialer {
    /// A dialer with an empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every `dial` call so far, with the addresses it was given.
    pub fn requests(&self) -> Vec<Vec<SocketAddr>> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every address any `dial` call was given, in order.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.requests().into_iter().flatten().collect()
    }
}

/// The start of the error message for a non-loopback address refused by
/// [`RecordingDialer`] or [`LoopbackOnlyDialer`].
pub const REFUSED_NON_LOOPBACK: &str = "refused to dial a non-loopback address";

impl Dialer for RecordingDialer {
    fn dial<'a>(&'a self, addrs: &'a [SocketAddr]) -> BoxFuture<'a, io::Result<TcpStream>> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(addrs.to_vec());
        LoopbackOnlyDialer.dial(addrs)
    }
}

/// Dials only when every address is loopback (`127.0.0.0/8`, `::1`), whatever the
/// policy allowed: a second lock for tests and for `pincer web fetch --loopback-only`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoopbackOnlyDialer;

impl Dialer for LoopbackOnlyDialer {
    fn dial<'a>(&'a self, addrs: &'a [SocketAddr]) -> BoxFuture<'a, io::Result<TcpStream>> {
        Box::pin(async move {
            if let Some(addr) = addrs.iter().find(|a| !a.ip().is_loopback()) {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("{REFUSED_NON_LOOPBACK}: {addr}"),
                ));
            }
            dial_in_order(addrs, Duration::from_secs(5)).await
        })
    }
}

/// The SSRF guard from a host to a connected stream: the same policy inputs and the same
/// steps for the fetcher and the guarded proxy.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    pub(crate) ips: IpPolicy,
    pub(crate) names: NamePolicy,
    pub(crate) resolver: Arc<dyn Resolver>,
    pub(crate) dialer: Arc<dyn Dialer>,
}

impl Guard {
    /// Name rule for names; the IP rule for literals. (Answers are checked after lookup.)
    pub(crate) fn check_host(&self, host: &Host) -> Result<(), EgressError> {
        match host {
            Host::Name(name) => Ok(self.names.check(name)?),
            Host::Ip(ip) => Ok(self.ips.check(*ip)?),
        }
    }

    /// The checked addresses of `host`: the literal, or every DNS answer (all of which
    /// must pass; one refused answer refuses the name).
    pub(crate) async fn addresses(
        &self,
        host: &Host,
        port: u16,
    ) -> Result<Vec<SocketAddr>, EgressError> {
        self.check_host(host)?;
        let ips =
            match host {
                Host::Ip(ip) => vec![*ip],
                Host::Name(name) => {
                    let answers = self.resolver.lookup_ip(name).await.map_err(|source| {
                        EgressError::Resolve {
                            host: name.clone(),
                            source,
                        }
                    })?;
                    if answers.is_empty() {
                        return Err(EgressError::Resolve {
                            host: name.clone(),
                            source: ResolveError::NoAddresses,
                        });
                    }
                    check_answers(&answers, &self.ips).map_err(|blocked| {
                        EgressError::BlockedAnswer {
                            host: name.clone(),
                            blocked,
                        }
                    })?;
                    answers
                }
            };
        Ok(ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect())
    }

    /// A stream to one of the checked addresses of `host`, refused unless its peer is one
    /// of them (pinning: never a second lookup, never an address that was not checked).
    pub(crate) async fn connect(&self, host: &Host, port: u16) -> Result<TcpStream, EgressError> {
        let addrs = self.addresses(host, port).await?;
        let connect_err = |source| EgressError::Connect {
            host: host.clone(),
            source,
        };
        let stream = self.dialer.dial(&addrs).await.map_err(connect_err)?;
        let peer = stream.peer_addr().map_err(connect_err)?;
        if !addrs.contains(&peer) {
            return Err(EgressError::Unpinned {
                host: host.clone(),
                peer,
            });
        }
        Ok(stream)
    }
}
