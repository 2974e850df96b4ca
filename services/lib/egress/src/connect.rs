//! Opening the TCP connection: a [`Dialer`] seam that receives only the checked, pinned
//! addresses. [`TokioDialer`] dials them; [`RecordingDialer`] records what would be
//! dialled and dials only loopback ([`LoopbackOnlyDialer`]), so tests can prove that a refused address was never
//! dialled without sending anything off the machine (TESTING.md, "Network rule").

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::net::TcpStream;

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
