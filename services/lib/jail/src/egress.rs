//! Network egress for a jail ([`Network::Egress`](crate::Network::Egress)): the command
//! reaches the web only through a guarded proxy, over a relay it cannot bypass.
//!
//! 1. The child, in its new network namespace (whose only interface is loopback), brings
//!    `lo` up and binds [`EGRESS_PROXY_ADDR`] — while it still may — then hands the
//!    listening socket to the helper over a private `socketpair` (`SCM_RIGHTS`) and closes
//!    its own copy before anything else runs.
//! 2. The helper, outside the jail, accepts on that socket (a socket stays in the
//!    namespace it was made in) and relays each connection to the proxy's UNIX socket
//!    ([`relay`]). Pathname UNIX sockets do not depend on the network namespace, so the
//!    helper needs no network of its own.
//!
//! The command thus sees one TCP port on its loopback and nothing else: no interface
//! with a route, so a connect anywhere else fails in its own namespace and no packet
//! leaves. What the proxy lets through is the proxy's business (`pincer-egress`: the
//! same SSRF guard as `web_fetch`).

use std::io::{self, IoSlice, IoSliceMut, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};

use crate::profile::EGRESS_PROXY_ADDR;
use crate::sys;

/// Most connections the relay carries at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Stack size of the relay's threads (they only copy bytes).
const THREAD_STACK: usize = 64 * 1024;

/// The private channel the child hands its listening socket over: `(helper end, child
/// end)`, both close-on-exec.
pub(crate) fn channel() -> Result<(OwnedFd, OwnedFd), Errno> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
}

/// In the child, inside its new network namespace and before dropping privileges: brings
/// loopback up, binds the relay's address and sends the listening socket to the helper.
pub(crate) fn listen_and_hand_over(channel: &OwnedFd) -> Result<(), String> {
    sys::loopback_up().map_err(|e| format!("bringing up loopback: {}", e.desc()))?;
    let (ip, port) = EGRESS_PROXY_ADDR;
    let listener = TcpListener::bind(SocketAddr::from((ip, port)))
        .map_err(|e| format!("listening on 127.0.0.1:{port}: {e}"))?;
    let fds = [listener.as_raw_fd()];
    sendmsg::<()>(
        channel.as_raw_fd(),
        &[IoSlice::new(b"L")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| format!("handing the listener to the helper: {}", e.desc()))?;
    // `listener` is closed here: the command never holds it.
    Ok(())
}

/// In the helper, once the command runs: the listening socket the child sent.
pub(crate) fn receive(channel: &OwnedFd) -> Result<TcpListener, String> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!(RawFd);
    let msg = recvmsg::<()>(
        channel.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("the child sent no listener: {}", e.desc()))?;
    let mut received: Vec<OwnedFd> = Vec::new();
    for cmsg in msg
        .cmsgs()
        .map_err(|e| format!("bad control message: {e}"))?
    {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            received.extend(fds.into_iter().map(sys::own_received_fd));
        }
    }
    match <[OwnedFd; 1]>::try_from(received) {
        Ok([fd]) => {
            let listener = TcpListener::from(fd);
            listener
                .set_nonblocking(false)
                .map_err(|e| format!("the listener: {e}"))?;
            Ok(listener)
        }
        Err(v) => Err(format!(
            "the child sent {} descriptors instead of one",
            v.len()
        )),
    }
}

/// Relays every connection accepted on `listener` to the UNIX socket `proxy`, on threads
/// of the calling process, until the process exits. At most [`MAX_CONNECTIONS`] at once.
pub(crate) fn relay(listener: TcpListener, proxy: PathBuf) -> io::Result<()> {
    std::thread::Builder::new()
        .name("egress-relay".into())
        .stack_size(THREAD_STACK)
        .spawn(move || accept_loop(&listener, &proxy))
        .map(drop)
}

fn accept_loop(listener: &TcpListener, proxy: &Path) {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(_) => {
                // Out of descriptors and the like: back off, keep serving.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::AcqRel);
            refuse(
                client,
                "503 Service Unavailable",
                "too many connections at once",
            );
            continue;
        }
        let slot = Slot(Arc::clone(&active));
        let proxy = proxy.to_owned();
        let spawned = std::thread::Builder::new()
            .name("egress-conn".into())
            .stack_size(THREAD_STACK)
            .spawn(move || {
                let _slot = slot;
                carry(client, &proxy);
            });
        // A thread that cannot start drops its connection (and its slot) with it.
        drop(spawned);
    }
}

/// Frees one connection slot when dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Answers a client the relay cannot serve with a plain HTTP error naming why.
fn refuse(mut client: TcpStream, status: &str, why: &str) {
    let body = format!("pincer jail: {why}\n");
    let _ = write!(
        client,
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.shutdown(Shutdown::Both);
}

/// Copies both ways between `client` and a new connection to `proxy` until both ends
/// are done.
fn carry(client: TcpStream, proxy: &Path) {
    let upstream = match connect(proxy) {
        Ok(upstream) => upstream,
        Err(e) => {
            refuse(
                client,
                "502 Bad Gateway",
                &format!("the egress proxy is not reachable ({e})"),
            );
            return;
        }
    };
    let (Ok(client_r), Ok(upstream_w)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let up = std::thread::Builder::new()
        .name("egress-up".into())
        .stack_size(THREAD_STACK)
        .spawn(move || {
            let _ = io::copy(&mut &client_r, &mut &upstream_w);
            let _ = upstream_w.shutdown(Shutdown::Write);
        });
    let _ = io::copy(&mut &upstream, &mut &client);
    let _ = client.shutdown(Shutdown::Write);
    if let Ok(up) = up {
        let _ = up.join();
    }
}

fn connect(proxy: &Path) -> io::Result<UnixStream> {
    UnixStream::connect(proxy)
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::net::UnixListener;

    use super::*;

    /// A UNIX "proxy" that answers every connection with what it read, upper-cased.
    fn echo_proxy(dir: &Path) -> PathBuf {
        let path = dir.join("proxy.sock");
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let mut conn = conn.unwrap();
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    conn.read_to_end(&mut buf).unwrap();
                    conn.write_all(&buf.to_ascii_uppercase()).unwrap();
                });
            }
        });
        path
    }

    fn roundtrip(addr: SocketAddr, msg: &[u8]) -> Vec<u8> {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(msg).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn relays_both_ways_with_half_close() {
        let dir = tempfile::tempdir().unwrap();
        let proxy = echo_proxy(dir.path());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        relay(listener, proxy).unwrap();
        assert_eq!(roundtrip(addr, b"connect example"), b"CONNECT EXAMPLE");
        // Many in a row: slots are given back.
        for i in 0..(MAX_CONNECTIONS + 8) {
            let msg = format!("n{i}");
            assert_eq!(
                roundtrip(addr, msg.as_bytes()),
                msg.to_uppercase().as_bytes()
            );
        }
    }

    #[test]
    fn a_missing_proxy_is_a_named_502() {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        relay(listener, dir.path().join("absent.sock")).unwrap();
        let out = String::from_utf8(roundtrip(addr, b"GET http://x/ HTTP/1.1\r\n\r\n")).unwrap();
        assert!(out.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{out}");
        assert!(out.contains("the egress proxy is not reachable"), "{out}");
    }

    #[test]
    fn the_listener_crosses_the_channel() {
        let (helper, child) = channel().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let fds = [listener.as_raw_fd()];
        sendmsg::<()>(
            child.as_raw_fd(),
            &[IoSlice::new(b"L")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        drop(listener);
        let got = receive(&helper).unwrap();
        assert_eq!(got.local_addr().unwrap(), addr);
        // Nothing more to receive: a second call says so instead of blocking.
        assert!(receive(&helper).unwrap_err().contains("sent no listener"));
    }
}
