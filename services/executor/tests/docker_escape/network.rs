//! Network attempts: no interface but loopback, no route anywhere, no host or bridge service.

use super::*;

/// Python that refuses to dial when the sandbox has any route (so a missing protection
/// cannot send a packet), then tries `connect`/`sendto` and prints the errno names.
fn dial_py(family: &str, addr: &str, port: u16) -> String {
    format!(
        "import socket, errno\n\
         routes = [l.split()[0] for l in open('/proc/net/route').read().splitlines()[1:]]\n\
         routes += [l.split()[-1] for l in open('/proc/net/ipv6_route').read().splitlines() if l.split()[-1] != 'lo']\n\
         if routes: print('ROUTE', routes); raise SystemExit(3)\n\
         for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):\n\
         \x20 s = socket.socket(socket.{family}, kind); s.settimeout(3)\n\
         \x20 try:\n\
         \x20   if kind == socket.SOCK_STREAM: s.connect(('{addr}', {port})); print('CONNECTED')\n\
         \x20   else: s.sendto(b'x', ('{addr}', {port})); print('SENT')\n\
         \x20 except OSError as e: print(errno.errorcode[e.errno])\n"
    )
}

#[tokio::test]
async fn there_is_no_interface_but_loopback() {
    let Some((_shared, h)) = harness("there_is_no_interface_but_loopback").await else {
        return;
    };
    let o = h
        .py("import socket\nprint(socket.if_nameindex())\n\
             print(open('/proc/net/route').read().splitlines()[1:])")
        .await;
    assert_eq!(out(&o), "[(1, 'lo')]\n[]\n", "{}", err(&o));
    assert_clean(&h).await;
}

#[tokio::test]
async fn tcp_to_a_listener_on_the_hosts_loopback_is_unreachable() {
    let Some((_shared, h)) =
        harness("tcp_to_a_listener_on_the_hosts_loopback_is_unreachable").await
    else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    // Control: the listener is reachable from the host.
    let probe = TcpListener::bind("127.0.0.1:0").unwrap();
    std::net::TcpStream::connect(probe.local_addr().unwrap()).unwrap();
    let o = h
        .py(&format!(
            "import socket, errno\n\
             try:\n  socket.create_connection(('127.0.0.1', {port}), timeout=3); print('CONNECTED')\n\
             except OSError as e: print(errno.errorcode[e.errno])"
        ))
        .await;
    // The sandbox's loopback is its own: nothing listens there.
    assert_says(&o, "ECONNREFUSED");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "the host listener saw a connection"
    );
    assert_clean(&h).await;
}

/// The Docker bridge's gateway address (docker0 on this host).
fn bridge_gateway() -> IpAddr {
    let out = std::process::Command::new("docker")
        .args([
            "network",
            "inspect",
            "bridge",
            "--format",
            "{{range .IPAM.Config}}{{.Gateway}} {{end}}",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "docker network inspect bridge failed");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find_map(|a| a.parse::<IpAddr>().ok().filter(IpAddr::is_ipv4))
        .expect("the bridge network has an IPv4 gateway")
}

#[tokio::test]
async fn the_docker_bridge_gateway_is_unreachable() {
    let Some((_shared, h)) = harness("the_docker_bridge_gateway_is_unreachable").await else {
        return;
    };
    let gateway = bridge_gateway();
    // A listener on that address of this host: what a sandbox on the bridge would reach.
    let listener = TcpListener::bind((gateway, 0)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let o = h.py(&dial_py("AF_INET", &gateway.to_string(), port)).await;
    assert_eq!(out(&o), "ENETUNREACH\nENETUNREACH\n", "{}", err(&o));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "the listener on {gateway} saw a connection"
    );
    assert_clean(&h).await;
}

#[tokio::test]
async fn a_non_local_destination_is_unreachable() {
    let Some((_shared, h)) = harness("a_non_local_destination_is_unreachable").await else {
        return;
    };
    // Documentation addresses; dialled only after the probe found no route at all.
    let o = h.py(&dial_py("AF_INET", "203.0.113.7", 443)).await;
    assert_eq!(out(&o), "ENETUNREACH\nENETUNREACH\n", "{}", err(&o));
    let o = h.py(&dial_py("AF_INET6", "2001:db8::7", 443)).await;
    assert_eq!(out(&o), "ENETUNREACH\nENETUNREACH\n", "{}", err(&o));
    assert_clean(&h).await;
}

#[tokio::test]
async fn an_abstract_socket_on_the_host_is_unreachable() {
    let Some((_shared, h)) = harness("an_abstract_socket_on_the_host_is_unreachable").await else {
        return;
    };
    let name = format!("pincer-docker-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = UnixListener::bind_addr(&addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    let o = h
        .py(&format!(
            "import socket\ns = socket.socket(socket.AF_UNIX)\n\
             try:\n  s.connect('\\0{name}'); print('CONNECTED')\n\
             except OSError as e: print(e.strerror)"
        ))
        .await;
    // A private network namespace has its own abstract socket table.
    assert_says(&o, "Connection refused");
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    assert_clean(&h).await;
}

#[tokio::test]
async fn exotic_socket_families_are_refused() {
    let Some((_shared, h)) = harness("exotic_socket_families_are_refused").await else {
        return;
    };
    for (family, kind, protocol) in [
        (libc::AF_PACKET, libc::SOCK_RAW, 0),
        (libc::AF_ALG, libc::SOCK_SEQPACKET, 0),
        (libc::AF_VSOCK, libc::SOCK_STREAM, 0),
        (libc::AF_KEY, libc::SOCK_RAW, 2),
        (libc::AF_TIPC, libc::SOCK_RDM, 0),
        // Raw IP: the family is allowed, CAP_NET_RAW is not there.
        (libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
    ] {
        let args = [i64::from(family), i64::from(kind), i64::from(protocol)];
        let o = h.py(&syscall_py(libc::SYS_socket, &args)).await;
        assert_says(&o, "EPERM");
    }
    // What stays: the families ordinary programs need.
    let o = h
        .py("import socket\nfor f in (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6):\n  socket.socket(f); print('ok')\n\
             socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0); print('ok')")
        .await;
    assert_eq!(out(&o), "ok\nok\nok\nok\n", "{}", err(&o));
    // Control: Docker's default profile lets AF_VSOCK through.
    let vsock = syscall_py(
        libc::SYS_socket,
        &[libc::AF_VSOCK.into(), libc::SOCK_STREAM.into(), 0],
    );
    assert_eq!(default_profile_py(&vsock), "OK");
    assert_clean(&h).await;
}
