//! Shutdown: a signal (SIGTERM, SIGINT) becomes a cancellation that every task can await.
//! Servers take the token, stop accepting, drain in-flight work and return.

pub use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGTERM or SIGINT. Spawn it once from `main`.
pub async fn cancel_on_signal(token: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM; only Ctrl-C will stop this process");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => tracing::info!("SIGTERM received; shutting down"),
        r = tokio::signal::ctrl_c() => match r {
            Ok(()) => tracing::info!("interrupt received; shutting down"),
            Err(e) => tracing::error!(error = %e, "cannot listen for Ctrl-C"),
        },
        () = token.cancelled() => return,
    }
    token.cancel();
}
