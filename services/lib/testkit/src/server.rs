//! Shared server plumbing: bind a listener, serve an axum router, shut down gracefully.

use axum::serve::ListenerExt;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::TestkitError;

/// How long `shutdown` waits for in-flight requests before aborting the server task.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// A running axum server. Dropping it triggers a graceful shutdown in the background.
pub(crate) struct ServerHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// Binds `addr` and serves `router` until the returned handle is shut down or dropped.
    ///
    /// `stop` is shared with the fake's handlers so long-running requests (long polls,
    /// slow streams) can end early when the server stops.
    pub(crate) async fn serve(
        addr: SocketAddr,
        router: Router,
        stop: watch::Sender<bool>,
        name: &'static str,
    ) -> Result<Self, TestkitError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| TestkitError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| TestkitError::Bind { addr, source })?;
        let mut stopped = stop.subscribe();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                // An error means the sender is gone, which also means "stop".
                let _closed = stopped.wait_for(|stop| *stop).await;
            };
            // Streamed answers are many small writes: disable Nagle so they are not held
            // back waiting for the client's delayed ACK.
            let listener = listener.tap_io(|tcp| {
                let _best_effort = tcp.set_nodelay(true);
            });
            if let Err(error) = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(%error, fake = name, "fake server failed");
            }
        });
        tracing::debug!(addr = %local, fake = name, "fake server listening");
        Ok(Self {
            addr: local,
            stop,
            task: Some(task),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, lets in-flight requests finish (up to a deadline) and
    /// waits for the server task.
    pub(crate) async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(DRAIN_DEADLINE, &mut task)
                .await
                .is_err()
        {
            tracing::warn!(addr = %self.addr, "fake server did not drain in time; aborting");
            task.abort();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM; used by the fake binaries.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Locks a std mutex, recovering the data if another thread panicked while holding it
/// (a panicking test must not cascade into every other request).
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Seconds since the Unix epoch, as both APIs report `created`/`date`.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
