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

/// The IP addresses of this host's network interfaces (to find a Tailscale address).
pub fn interface_addrs() -> std::io::Result<Vec<std::net::IpAddr>> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(std::io::Error::from)?;
    Ok(addrs
        .filter_map(|ifa| ifa.address)
        .filter_map(|a| {
            if let Some(v4) = a.as_sockaddr_in() {
                Some(std::net::IpAddr::V4(v4.ip()))
            } else {
                a.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip()))
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_host_has_a_loopback_interface() {
        let addrs = super::interface_addrs().unwrap();
        assert!(addrs.iter().any(|a| a.is_loopback()), "{addrs:?}");
    }
}
