//! Accepting gRPC connections. Every accepted socket gets `TCP_NODELAY`: server-streaming
//! responses are several small frames in a row, and with Nagle's algorithm each one after
//! the first waits for the peer's delayed ACK (~40 ms on Linux).

use futures::Stream;
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;

/// The accepted connections of `listener`, with `TCP_NODELAY` set, for
/// `tonic::transport::Server::serve_with_incoming*`.
pub fn incoming(
    listener: TcpListener,
) -> impl Stream<Item = std::io::Result<TcpStream>> + Send + 'static {
    TcpListenerStream::new(listener).map(|accepted| {
        accepted.inspect(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        })
    })
}
