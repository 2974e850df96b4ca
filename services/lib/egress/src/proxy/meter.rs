//! Per-connection accounting for the proxy: the client's stream is wrapped in
//! [`Metered`], which records when bytes last moved and how many moved in total. Every
//! byte of a connection passes the client's stream — request heads, forwarded bodies and
//! both directions of a tunnel — so one meter gives both limits: the idle timeout
//! ([`idle`]) and the optional byte cap, enforced by failing reads and writes once it is
//! reached.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Activity and volume of one client connection.
#[derive(Debug)]
pub(crate) struct Meter {
    start: Instant,
    /// Milliseconds after `start` when bytes last moved.
    last_ms: AtomicU64,
    bytes: AtomicU64,
    cap: Option<u64>,
    capped: AtomicBool,
}

impl Meter {
    pub(crate) fn new(cap: Option<u64>) -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            cap,
            capped: AtomicBool::new(false),
        }
    }

    /// Bytes moved so far, both directions.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Whether the byte cap ended the connection.
    pub(crate) fn capped(&self) -> bool {
        self.capped.load(Ordering::Relaxed)
    }

    fn last_activity(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    fn record(&self, n: usize) {
        if n == 0 {
            return;
        }
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Bytes left under the cap (`None`: no cap), or the error once it is reached.
    fn remaining(&self) -> io::Result<Option<u64>> {
        let Some(cap) = self.cap else {
            return Ok(None);
        };
        match cap.saturating_sub(self.bytes()) {
            0 => {
                self.capped.store(true, Ordering::Relaxed);
                Err(io::Error::other(format!(
                    "the connection reached the proxy's cap of {cap} bytes"
                )))
            }
            left => Ok(Some(left)),
        }
    }
}

/// Resolves once no byte has moved for `limit`.
pub(crate) async fn idle(meter: &Meter, limit: Duration) {
    loop {
        let deadline = meter.last_activity() + limit;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// A stream whose traffic is recorded in a [`Meter`].
#[derive(Debug)]
pub(crate) struct Metered<S> {
    inner: S,
    meter: Arc<Meter>,
}

impl<S> Metered<S> {
    pub(crate) fn new(inner: S, meter: Arc<Meter>) -> Self {
        Self { inner, meter }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let left = this.meter.remaining()?;
        let before = buf.filled().len();
        match left {
            // Near the cap: read no more than is left, through a smaller buffer.
            Some(left) if (buf.remaining() as u64) > left => {
                let mut small = vec![0u8; usize::try_from(left).unwrap_or(usize::MAX)];
                let mut small_buf = ReadBuf::new(&mut small);
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut small_buf))?;
                buf.put_slice(small_buf.filled());
            }
            _ => ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?,
        }
        this.meter.record(buf.filled().len() - before);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let left = this.meter.remaining()?;
        let allowed = match left {
            Some(left) => &buf[..buf.len().min(usize::try_from(left).unwrap_or(usize::MAX))],
            None => buf,
        };
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, allowed))?;
        this.meter.record(n);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn the_cap_counts_both_directions_and_then_fails() {
        let (a, mut b) = tokio::io::duplex(1024);
        let meter = Arc::new(Meter::new(Some(10)));
        let mut m = Metered::new(a, Arc::clone(&meter));
        b.write_all(b"hello world").await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(m.read(&mut buf).await.unwrap(), 10);
        assert_eq!(&buf[..10], b"hello worl");
        assert_eq!(meter.bytes(), 10);
        assert!(m.read(&mut buf).await.is_err());
        assert!(m.write(b"x").await.is_err());
        assert!(meter.capped());
    }

    #[tokio::test]
    async fn writes_are_trimmed_to_the_cap() {
        let (a, mut b) = tokio::io::duplex(1024);
        let meter = Arc::new(Meter::new(Some(4)));
        let mut m = Metered::new(a, Arc::clone(&meter));
        assert_eq!(m.write(b"abcdef").await.unwrap(), 4);
        let mut buf = [0u8; 8];
        assert_eq!(b.read(&mut buf).await.unwrap(), 4);
        assert!(m.write(b"x").await.is_err());
    }

    #[tokio::test]
    async fn idle_waits_for_silence() {
        let (a, mut b) = tokio::io::duplex(1024);
        let meter = Arc::new(Meter::new(None));
        let mut m = Metered::new(a, Arc::clone(&meter));
        let limit = Duration::from_millis(300);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(200)).await;
        b.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        m.read_exact(&mut one).await.unwrap();
        idle(&meter, limit).await;
        // Silence counts from the last byte (at 200 ms), not from the start.
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(490), "{waited:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
    }
}
