//! Network egress (`Network::Egress`): the command reaches the web through the guarded
//! proxy's relay and through nothing else. The "proxy" here is a UNIX-socket server of
//! the test that answers every request with the request line it saw, so a test knows
//! exactly which requests went through it. Destinations beyond this machine are never
//! dialled: the command's namespace has no interface but loopback, which the tests check
//! first, so such a connect fails inside the jail before any packet exists.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Fixture, err, jail, out};
use pincer_jail::{EGRESS_PROXY_URL, EgressProxy, ExitStatus, JailOutcome, Network};

/// A UNIX-socket HTTP "proxy" recording the request lines it was sent.
struct TestProxy {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    seen: Arc<Mutex<Vec<String>>>,
}

impl TestProxy {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("proxy.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut first = String::new();
                    reader.read_line(&mut first).unwrap();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                            break;
                        }
                    }
                    let first = first.trim_end().to_owned();
                    log.lock().unwrap().push(first.clone());
                    let body = format!("via-proxy: {first}");
                    let mut conn = conn;
                    write!(
                        conn,
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .unwrap();
                });
            }
        });
        Self {
            _dir: dir,
            socket,
            seen,
        }
    }

    fn network(&self) -> Network {
        Network::Egress(EgressProxy::new(&self.socket).unwrap())
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn py_egress(fx: &Fixture, proxy: &TestProxy, code: &str) -> JailOutcome {
    let profile = fx
        .profile(["/usr/bin/python3", "-c", code])
        .network(proxy.network())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    jail().run(&profile).unwrap()
}

/// Python that prints the errno name of connecting (TCP) to `host:port`, or CONNECTED.
fn connect_py(host: &str, port: u16) -> String {
    format!(
        "import socket, errno\n\
         s = socket.socket(socket.AF_INET6 if ':' in '{host}' else socket.AF_INET)\n\
         s.settimeout(3)\n\
         try:\n  s.connect(('{host}', {port})); print('CONNECTED')\n\
         except OSError as e: print(errno.errorcode.get(e.errno, e))\n"
    )
}

#[test]
fn web_requests_go_through_the_proxy() {
    let (fx, proxy) = (Fixture::new(), TestProxy::start());
    let o = py_egress(
        &fx,
        &proxy,
        "import urllib.request\n\
         print(urllib.request.urlopen('http://example.test/some/page?q=1', timeout=10).read().decode())",
    );
    assert_eq!(o.status, ExitStatus::Exited(0), "{}", err(&o));
    assert_eq!(
        out(&o).trim(),
        "via-proxy: GET http://example.test/some/page?q=1 HTTP/1.1"
    );
    assert_eq!(
        proxy.seen(),
        ["GET http://example.test/some/page?q=1 HTTP/1.1"]
    );
    assert!(o.enforcement.egress_relay);
}

#[test]
fn the_proxy_variables_are_set_and_only_by_the_jail() {
    let (fx, proxy) = (Fixture::new(), TestProxy::start());
    let o = py_egress(
        &fx,
        &proxy,
        "import os\nfor k in sorted(os.environ):\n  print(k + '=' + os.environ[k])",
    );
    let env = out(&o);
    for k in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        assert!(env.contains(&format!("{k}={EGRESS_PROXY_URL}\n")), "{env}");
    }
    assert!(!env.to_lowercase().contains("no_proxy"), "{env}");
    // Without egress there is no proxy variable at all.
    let none = fx.py("import os; print(sorted(k for k in os.environ if 'proxy' in k.lower()))");
    assert_eq!(out(&none).trim(), "[]");
    // A caller cannot set or clear one.
    for k in ["HTTP_PROXY", "https_proxy", "NO_PROXY", "no_proxy"] {
        let refused = fx.profile(["true"]).env(k, "http://evil.test:1").build();
        assert!(
            refused.unwrap_err().to_string().contains("set by the jail"),
            "{k}"
        );
    }
}

#[test]
fn the_namespace_has_only_loopback() {
    let (fx, proxy) = (Fixture::new(), TestProxy::start());
    // Netlink is refused by seccomp, so ask for each interface index's name by ioctl
    // (SIOCGIFNAME; ENODEV where there is none).
    let code = "import socket, fcntl, struct\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         names = []\n\
         for i in range(1, 1025):\n\
         \x20 try: names.append(fcntl.ioctl(s, 0x8910, struct.pack('16si20x', b'', i))[:16].rstrip(b'\\0').decode())\n\
         \x20 except OSError: pass\n\
         print(names)";
    let o = py_egress(&fx, &proxy, code);
    assert_eq!(out(&o).trim(), "['lo']", "{}", err(&o));
    // Control: the same probe outside the jail sees the host's other interfaces.
    let host = common::bare_py(code);
    assert_ne!(host.trim(), "['lo']", "{host}");
    assert!(host.contains("'lo'"), "{host}");
}

#[test]
fn a_host_loopback_service_is_not_reachable() {
    let (fx, proxy) = (Fixture::new(), TestProxy::start());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let o = py_egress(&fx, &proxy, &connect_py("127.0.0.1", port));
    // Landlock (ABI 4+) refuses the port; without it the namespace's own loopback has no
    // listener there.
    let why = out(&o);
    assert!(
        why.trim() == "EACCES" || why.trim() == "ECONNREFUSED",
        "{why} {}",
        err(&o)
    );
    assert!(
        listener.accept().is_err(),
        "the host listener saw a connection"
    );
    assert!(proxy.seen().is_empty());
}

#[test]
fn addresses_beyond_the_machine_have_no_route() {
    let (fx, proxy) = (Fixture::new(), TestProxy::start());
    // TEST-NET-1, a public resolver and a metadata address, over TCP and UDP: with no
    // interface but loopback the kernel answers at once, before any packet is made.
    let code = "import socket, errno\n\
        def name(e): return errno.errorcode.get(e.errno, str(e))\n\
        for host in ['192.0.2.1', '8.8.8.8', '169.254.169.254']:\n\
        \x20 t = socket.socket(); t.settimeout(3)\n\
        \x20 try: t.connect((host, 80)); print(host, 'tcp CONNECTED')\n\
        \x20 except OSError as e: print(host, 'tcp', name(e))\n\
        \x20 u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
        \x20 try: u.sendto(b'x', (host, 53)); print(host, 'udp SENT')\n\
        \x20 except OSError as e: print(host, 'udp', name(e))\n";
    let o = py_egress(&fx, &proxy, code);
    let text = out(&o);
    for host in ["192.0.2.1", "8.8.8.8", "169.254.169.254"] {
        for proto in ["tcp", "udp"] {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{host} {proto} ")))
                .unwrap_or_else(|| panic!("no {host} {proto} line: {text} {}", err(&o)));
            // ENETUNREACH (no route); EACCES when Landlock refuses the TCP port first.
            assert!(
                line.ends_with("ENETUNREACH") || line.ends_with("EACCES"),
                "{line}"
            );
        }
    }
    assert!(proxy.seen().is_empty());
}

#[test]
fn binding_a_port_is_refused_where_landlock_handles_tcp() {
    let (fx, proxy) = (Fixture::new(), TestProxy::start());
    let o = py_egress(
        &fx,
        &proxy,
        "import socket, errno\n\
         s = socket.socket()\n\
         try:\n  s.bind(('127.0.0.1', 8080)); s.listen(); print('LISTENING')\n\
         except OSError as e: print(errno.errorcode.get(e.errno, e))\n",
    );
    if o.enforcement.landlock_tcp {
        assert_eq!(out(&o).trim(), "EACCES", "{}", err(&o));
    } else {
        // Without Landlock TCP rules a listener in the private namespace serves only the
        // command itself.
        assert_eq!(out(&o).trim(), "LISTENING", "{}", err(&o));
    }
}

#[test]
fn a_missing_proxy_is_named() {
    let fx = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let profile = fx
        .profile([
            "/usr/bin/python3",
            "-c",
            "import urllib.request, urllib.error\n\
             try: urllib.request.urlopen('http://example.test/', timeout=10)\n\
             except urllib.error.HTTPError as e: print(e.code, e.read().decode().strip())",
        ])
        .network(Network::Egress(
            EgressProxy::new(dir.path().join("absent.sock")).unwrap(),
        ))
        .build()
        .unwrap();
    let o = jail().run(&profile).unwrap();
    let text = out(&o);
    assert!(
        text.starts_with("502 pincer jail: the egress proxy is not reachable"),
        "{text} {}",
        err(&o)
    );
}

#[test]
fn the_proxy_socket_must_be_an_absolute_short_path() {
    for (path, why) in [
        ("relative.sock".to_owned(), "absolute"),
        (format!("/{}", "x".repeat(120)), "107 bytes"),
    ] {
        let e = EgressProxy::new(&path).unwrap_err().to_string();
        assert!(e.contains(why), "{e}");
    }
}
