//! The guarded proxy: every CONNECT and absolute-form request passes the fetcher's guard.
//! Refused targets are answered 403 with the fetcher's own words and never dialled;
//! allowed loopback targets are tunnelled or forwarded. Names resolve through the fake
//! DNS server; the proxy dials through the recording dialer (loopback only).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::proxy::{
    EchoServer, RunningProxy, TlsEchoServer, assert_connect_refused, body_echo_server, dns,
    proxy_builder,
};
use common::{Reply, Server, fetcher, ip};
use pincer_egress::connect::REFUSED_NON_LOOPBACK;
use pincer_egress::{ProxyLimits, RecordingDialer};
use pincer_testkit::dns::RecordType;
use rustls::RootCertStore;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;

const LOOPBACK: &[&str] = &["127.0.0.0/8"];

fn get(url: &str) -> String {
    format!("GET {url} HTTP/1.1\r\nHost: proxied\r\n\r\n")
}

#[tokio::test]
async fn a_name_resolving_to_a_private_address_is_refused_in_the_fetchers_words() {
    let dns = dns().await;
    let dialer = RecordingDialer::new();
    let proxy = RunningProxy::tcp(proxy_builder(&dns, &dialer, &[]).build()).await;
    let expected = fetcher(&dns, &RecordingDialer::new(), &[])
        .fetch("https://private.example.test/")
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        expected,
        "blocked: private.example.test resolves to 10.0.0.1, which is private, in 10.0.0.0/8"
    );

    let reply = proxy
        .client()
        .await
        .connect("private.example.test:443")
        .await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.text(), format!("{expected}\n"));
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let reply = proxy
        .client()
        .await
        .request(&get("http://private.example.test/"))
        .await;
    assert_eq!((reply.status, reply.text()), (403, format!("{expected}\n")));
    assert!(dialer.requests().is_empty(), "{:?}", dialer.requests());
}

#[tokio::test]
async fn cloud_metadata_is_refused_by_name_by_answer_and_by_literal() {
    let dns = dns().await;
    let dialer = RecordingDialer::new();
    let proxy = RunningProxy::tcp(proxy_builder(&dns, &dialer, &[]).build()).await;
    for (target, phrase) in [
        (
            "metadata.example.test:80",
            "resolves to 169.254.169.254, which is link-local (cloud metadata)",
        ),
        (
            "169.254.169.254:80",
            "blocked: 169.254.169.254 is link-local (cloud metadata), in 169.254.0.0/16",
        ),
        ("[fd00:ec2::254]:443", "unique local"),
        (
            "metadata.google.internal:80",
            "blocked: metadata.google.internal is Google Cloud's metadata server",
        ),
    ] {
        assert_connect_refused(&proxy, target, phrase).await;
    }
    // Absolute form: refused, and the body names the rule but not the path.
    let reply = proxy
        .client()
        .await
        .request(&get("http://169.254.169.254/latest/meta-data/iam/"))
        .await;
    assert_eq!(reply.status, 403);
    assert!(!reply.text().contains("meta-data"), "{}", reply.text());
    assert!(dialer.requests().is_empty());
}

#[tokio::test]
async fn loopback_is_refused_without_an_allowance_even_where_a_server_listens() {
    let echo = EchoServer::start().await;
    let port = echo.addr.port();
    let dns = dns().await;
    let dialer = RecordingDialer::new();
    let proxy = proxy_builder(&dns, &dialer, &[]).ports([port, 443]).build();
    let proxy = RunningProxy::tcp(proxy).await;
    for (target, phrase) in [
        (
            format!("loop.example.test:{port}"),
            "resolves to 127.0.0.1, which is loopback",
        ),
        (
            format!("127.0.0.1:{port}"),
            "blocked: 127.0.0.1 is loopback, in 127.0.0.0/8",
        ),
        (format!("[::1]:{port}"), "blocked: ::1 is loopback"),
        (
            format!("localhost:{port}"),
            "blocked: localhost is the local host",
        ),
        ("api.localhost:443".to_owned(), "the local host"),
    ] {
        assert_connect_refused(&proxy, &target, phrase).await;
    }
    assert!(dialer.requests().is_empty());
}

#[tokio::test]
async fn non_canonical_and_ipv4_mapped_literals_are_refused() {
    let dns = dns().await;
    let dialer = RecordingDialer::new();
    // Non-canonical IPv4 is refused as written, even with loopback allowed.
    let allowing = RunningProxy::tcp(proxy_builder(&dns, &dialer, LOOPBACK).build()).await;
    for target in [
        "2130706433:443",
        "0x7f000001:443",
        "0177.0.0.1:443",
        "0x7f.1:443",
        "127.1:443",
        "017700000001:80",
    ] {
        assert_connect_refused(&allowing, target, "non-canonical IPv4").await;
    }
    for url in ["http://2130706433/", "http://0xa9fea9fe/latest/"] {
        let reply = allowing.client().await.request(&get(url)).await;
        assert_eq!(reply.status, 403, "{url}");
        assert!(reply.text().contains("non-canonical IPv4"), "{url}");
    }
    let strict = RunningProxy::tcp(proxy_builder(&dns, &dialer, &[]).build()).await;
    for (target, phrase) in [
        (
            "[::ffff:127.0.0.1]:443",
            "carries 127.0.0.1, which is loopback",
        ),
        ("[::ffff:7f00:1]:443", "carries 127.0.0.1"),
        ("[::ffff:a9fe:a9fe]:80", "carries 169.254.169.254"),
        ("[64:ff9b::a00:1]:443", "carries 10.0.0.1"),
        ("[2002:a9fe:a9fe::1]:443", "carries 169.254.169.254"),
    ] {
        assert_connect_refused(&strict, target, phrase).await;
    }
    assert!(dialer.requests().is_empty());
}

#[tokio::test]
async fn a_dns_answer_mixing_public_and_private_addresses_is_refused() {
    let dns = dns().await;
    let dialer = RecordingDialer::new();
    let proxy = RunningProxy::tcp(proxy_builder(&dns, &dialer, &[]).build()).await;
    assert_connect_refused(
        &proxy,
        "mixed.example.test:443",
        "blocked: mixed.example.test resolves to 10.0.0.1, which is private",
    )
    .await;
    // Not even the public answer is dialled: the attacker chose the mix.
    assert!(dialer.requests().is_empty());
}

#[tokio::test]
async fn public_addresses_pass_and_reach_only_the_recording_dialer() {
    let dns = dns().await;
    let dialer = RecordingDialer::new();
    let proxy = RunningProxy::tcp(proxy_builder(&dns, &dialer, &[]).build()).await;
    let reply = proxy
        .client()
        .await
        .connect("public.example.test:443")
        .await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert!(
        reply.text().contains(REFUSED_NON_LOOPBACK),
        "{}",
        reply.text()
    );
    let reply = proxy
        .client()
        .await
        .request(&get("http://public.example.test/"))
        .await;
    assert_eq!(reply.status, 502);
    let expected: Vec<SocketAddr> = ["93.184.216.34:443", "93.184.216.34:80"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    assert_eq!(dialer.addresses(), expected);
}

#[tokio::test]
async fn ports_outside_the_list_are_refused_before_any_lookup() {
    let dns = dns().await;
    let dialer = RecordingDialer::new();
    let proxy = RunningProxy::tcp(proxy_builder(&dns, &dialer, LOOPBACK).build()).await;
    let reply = proxy.client().await.connect("public.example.test:22").await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.text(),
        "blocked: port 22 of public.example.test is not allowed (allowed ports: 80, 443)\n"
    );
    let echo = EchoServer::start().await;
    let loopback = format!("127.0.0.1:{}", echo.addr.port());
    assert_connect_refused(&proxy, &loopback, "is not allowed (allowed ports: 80, 443)").await;
    let reply = proxy
        .client()
        .await
        .request(&get("http://public.example.test:8080/"))
        .await;
    assert_eq!(reply.status, 403);
    assert!(reply.text().contains("port 8080"), "{}", reply.text());
    assert!(dns.queries().is_empty(), "{:?}", dns.queries());
    assert!(dialer.requests().is_empty());
}

#[tokio::test]
async fn connect_tunnels_bytes_both_ways_to_an_allowed_loopback_server() {
    let echo = EchoServer::start().await;
    let port = echo.addr.port();
    let dns = dns().await;
    let dialer = RecordingDialer::new();
    let proxy = proxy_builder(&dns, &dialer, LOOPBACK).ports([port]).build();
    let proxy = RunningProxy::tcp(proxy).await;
    let mut client = proxy.client().await;
    let reply = client.connect(&format!("web.example.test:{port}")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-length"), None);
    assert_eq!(reply.header("transfer-encoding"), None);

    client.send(b"ping").await;
    assert_eq!(client.read_exact(4).await, b"ping");
    // Write and read at once: the payload is larger than the sockets' buffers.
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = tokio::io::split(client.into_stream());
    let write = async { w.write_all(&big).await.unwrap() };
    let read = async {
        let mut back = vec![0u8; big.len()];
        r.read_exact(&mut back).await.unwrap();
        back
    };
    let ((), back) = tokio::join!(write, read);
    assert!(back == big, "the echo differs");
    assert_eq!(dialer.requests(), [vec![echo.addr]]);
}

#[tokio::test]
async fn tls_through_a_tunnel_is_end_to_end_with_the_target() {
    let server = TlsEchoServer::start("secure.example.test").await;
    let port = server.addr.port();
    let dns = dns().await;
    let dialer = RecordingDialer::new();
    let proxy = proxy_builder(&dns, &dialer, LOOPBACK).ports([port]).build();
    let proxy = RunningProxy::tcp(proxy).await;
    let mut client = proxy.client().await;
    let reply = client.connect(&format!("secure.example.test:{port}")).await;
    assert_eq!(reply.status, 200);

    let mut roots = RootCertStore::empty();
    roots.add(server.ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("secure.example.test").unwrap();
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(name, client.into_stream())
        .await
        .unwrap();
    tls.write_all(b"hello over tls").await.unwrap();
    let mut back = [0u8; 14];
    tls.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"hello over tls");
    assert_eq!(dialer.requests(), [vec![server.addr]]);
}

#[tokio::test]
async fn absolute_form_requests_are_forwarded_without_hop_by_hop_headers() {
    let server = Server::start().await;
    let port = server.addr.port();
    let mut reply = Reply::text("text/plain", "forwarded");
    reply.headers.extend([
        ("Keep-Alive".into(), "timeout=5".into()),
        ("Connection".into(), "X-Reply-Hop".into()),
        ("X-Reply-Hop".into(), "1".into()),
        ("X-End".into(), "kept".into()),
    ]);
    server.route("/page?q=1", reply);
    let dns = dns().await;
    let dialer = RecordingDialer::new();
    let proxy = proxy_builder(&dns, &dialer, LOOPBACK).ports([port]).build();
    let proxy = RunningProxy::tcp(proxy).await;
    let request = format!(
        "GET http://web.example.test:{port}/page?q=1#frag HTTP/1.1\r\n\
         Host: web.example.test:{port}\r\n\
         Proxy-Authorization: Basic c2VjcmV0OnNlY3JldA==\r\n\
         Proxy-Connection: keep-alive\r\n\
         Connection: keep-alive, X-Hop\r\n\
         Keep-Alive: timeout=5\r\n\
         X-Hop: drop me\r\n\
         TE: trailers\r\n\
         Authorization: Bearer end-to-end\r\n\
         X-Custom: 1\r\n\r\n"
    );
    let answer = proxy.client().await.request(&request).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "forwarded");
    assert_eq!(answer.header("x-end"), Some("kept"));
    for hop in ["keep-alive", "x-reply-hop"] {
        assert_eq!(answer.header(hop), None, "{hop} reached the client");
    }

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let seen = &seen[0];
    assert_eq!(seen.target, "/page?q=1", "origin form, no fragment");
    assert_eq!(
        seen.header("host"),
        Some(&*format!("web.example.test:{port}"))
    );
    assert_eq!(seen.header("authorization"), Some("Bearer end-to-end"));
    assert_eq!(seen.header("x-custom"), Some("1"));
    assert_eq!(seen.header("connection"), Some("close"));
    for hop in [
        "proxy-authorization",
        "proxy-connection",
        "keep-alive",
        "x-hop",
        "te",
    ] {
        assert_eq!(seen.header(hop), None, "{hop} was forwarded");
    }
    assert_eq!(dialer.requests(), [vec![server.addr]]);
}

#[tokio::test]
async fn request_bodies_pass_through_with_their_framing() {
    let (addr, server) = body_echo_server().await;
    let port = addr.port();
    let dns = dns().await;
    let dialer = RecordingDialer::new();
    let proxy = proxy_builder(&dns, &dialer, LOOPBACK).ports([port]).build();
    let proxy = RunningProxy::tcp(proxy).await;
    let url = format!("http://web.example.test:{port}/upload");
    let mut client = proxy.client().await;
    let sized = format!("POST {url} HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world");
    let reply = client.request(&sized).await;
    assert_eq!(
        (reply.status, reply.text()),
        (200, "hello world".to_owned())
    );
    assert_eq!(reply.header("x-method"), Some("POST"));
    let chunked = format!(
        "PUT {url} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n there\r\n0\r\n\r\n"
    );
    let reply = client.request(&chunked).await;
    assert_eq!(
        (reply.status, reply.text()),
        (200, "hello there".to_owned())
    );
    assert_eq!(reply.header("x-method"), Some("PUT"));
    assert_eq!(dialer.addresses(), [addr, addr]);
    server.abort();
}

#[tokio::test]
async fn redirects_go_back_to_the_client_and_each_hop_is_checked_again() {
    let server = Server::start().await;
    let port = server.addr.port();
    server.route(
        "/go",
        Reply::redirect(302, "http://private.example.test/secret"),
    );
    server.route("/ok", Reply::text("text/plain", "still here"));
    let dns = dns().await;
    let dialer = RecordingDialer::new();
    let proxy = proxy_builder(&dns, &dialer, LOOPBACK)
        .ports([port, 80])
        .build();
    let proxy = RunningProxy::tcp(proxy).await;
    let mut client = proxy.client().await;

    let reply = client
        .request(&get(&format!("http://web.example.test:{port}/go")))
        .await;
    assert_eq!(reply.status, 302);
    assert_eq!(
        reply.header("location"),
        Some("http://private.example.test/secret")
    );
    // The client follows, on the same keep-alive connection: checked again, refused.
    let reply = client
        .request(&get("http://private.example.test/secret"))
        .await;
    assert_eq!(reply.status, 403);
    assert!(
        reply.text().contains("resolves to 10.0.0.1"),
        "{}",
        reply.text()
    );
    // And the connection still serves allowed requests.
    let reply = client
        .request(&get(&format!("http://web.example.test:{port}/ok")))
        .await;
    assert_eq!((reply.status, reply.text()), (200, "still here".to_owned()));
    assert_eq!(dialer.addresses(), [server.addr, server.addr]);
}

#[tokio::test]
async fn origin_form_and_other_shapes_are_bad_requests() {
    let dns = dns().await;
    let dialer = RecordingDialer::new();
    let proxy = RunningProxy::tcp(proxy_builder(&dns, &dialer, LOOPBACK).build()).await;
    for (request, phrase) in [
        (
            "GET /index.html HTTP/1.1\r\nHost: web.example.test\r\n\r\n",
            "origin-form request (GET /path): this is a forward proxy",
        ),
        (
            "OPTIONS * HTTP/1.1\r\nHost: web.example.test\r\n\r\n",
            "must be an absolute http:// URL",
        ),
        (
            "GET https://public.example.test/ HTTP/1.1\r\nHost: x\r\n\r\n",
            "scheme \"https\" is not forwarded",
        ),
        (
            "GET ftp://public.example.test/ HTTP/1.1\r\nHost: x\r\n\r\n",
            "scheme \"ftp\" is not forwarded",
        ),
        (
            "CONNECT public.example.test HTTP/1.1\r\nHost: x\r\n\r\n",
            "CONNECT needs host:port",
        ),
    ] {
        let reply = proxy.client().await.request(request).await;
        assert_eq!(reply.status, 400, "{request:?}: {}", reply.text());
        assert!(
            reply.text().contains(phrase),
            "{request:?}: {}",
            reply.text()
        );
    }
    assert!(dns.queries().is_empty());
    assert!(dialer.requests().is_empty());
}

#[tokio::test]
async fn an_over_long_request_head_is_431() {
    let dns = dns().await;
    let dialer = RecordingDialer::new();
    let proxy = RunningProxy::tcp(proxy_builder(&dns, &dialer, &[]).build()).await;
    let big = "a".repeat(20 * 1024);
    let request = format!("GET http://public.example.test/ HTTP/1.1\r\nX-Big: {big}\r\n\r\n");
    let reply = proxy.client().await.request(&request).await;
    assert_eq!(reply.status, 431);
    // The same with CONNECT.
    let request = format!("CONNECT public.example.test:443 HTTP/1.1\r\nX-Big: {big}\r\n\r\n");
    let reply = proxy.client().await.request(&request).await;
    assert_eq!(reply.status, 431);
    // A head under the limit is served (and reaches the recording dialer).
    let fits = "a".repeat(8 * 1024);
    let request = format!("GET http://public.example.test/ HTTP/1.1\r\nX-Big: {fits}\r\n\r\n");
    let reply = proxy.client().await.request(&request).await;
    assert_eq!(reply.status, 502);
    assert!(
        dns.queries()
            .iter()
            .any(|q| q.name == "public.example.test")
    );
    assert_eq!(dialer.requests().len(), 1);
}

#[tokio::test]
async fn a_slow_request_head_is_cut_off() {
    let dns = dns().await;
    let dialer = RecordingDialer::new();
    let limits = ProxyLimits {
        head_timeout: Duration::from_millis(300),
        ..ProxyLimits::default()
    };
    let proxy = proxy_builder(&dns, &dialer, &[]).limits(limits).build();
    let proxy = RunningProxy::tcp(proxy).await;
    let mut client = proxy.client().await;
    client
        .send(b"GET http://public.example.test/ HTTP/1.1\r\nX-Slow: ")
        .await;
    assert!(client.closed_within(Duration::from_secs(5)).await);
    assert!(dialer.requests().is_empty());
}

#[tokio::test]
async fn a_rebinding_name_is_pinned_per_tunnel() {
    let echo = EchoServer::start().await;
    let port = echo.addr.port();
    let dns = dns().await;
    dns.set_rebinding("rebind.example.test", [ip("127.0.0.1"), ip("10.0.0.1")]);
    let dialer = RecordingDialer::new();
    let proxy = proxy_builder(&dns, &dialer, LOOPBACK).ports([port]).build();
    let proxy = RunningProxy::tcp(proxy).await;
    let target = format!("rebind.example.test:{port}");

    let mut client = proxy.client().await;
    assert_eq!(client.connect(&target).await.status, 200);
    client.send(b"pinned").await;
    assert_eq!(client.read_exact(6).await, b"pinned");
    assert_connect_refused(&proxy, &target, "resolves to 10.0.0.1").await;
    let a_queries = dns
        .queries()
        .iter()
        .filter(|q| q.name == "rebind.example.test" && q.record_type == RecordType::A)
        .count();
    assert_eq!(a_queries, 2, "one lookup per CONNECT");
    assert_eq!(dialer.requests(), [vec![echo.addr]]);
}

#[tokio::test]
async fn a_name_blocked_by_name_needs_its_exact_allow_host() {
    let echo = EchoServer::start().await;
    let port = echo.addr.port();
    let dns = dns().await;
    let dialer = RecordingDialer::new();
    let target = format!("printer.local:{port}");
    let strict = proxy_builder(&dns, &dialer, LOOPBACK).ports([port]).build();
    let strict = RunningProxy::tcp(strict).await;
    assert_connect_refused(&strict, &target, "printer.local is a local-network name").await;

    let allowing = proxy_builder(&dns, &dialer, LOOPBACK)
        .ports([port])
        .allow_host("printer.local")
        .build();
    let allowing = RunningProxy::tcp(allowing).await;
    let mut client = allowing.client().await;
    assert_eq!(client.connect(&target).await.status, 200);
    client.send(b"hi").await;
    assert_eq!(client.read_exact(2).await, b"hi");
    assert_connect_refused(&allowing, &format!("other.local:{port}"), "local-network").await;
    assert_eq!(dialer.requests(), [vec![echo.addr]]);
}

#[tokio::test]
async fn the_unix_socket_entry_point_tunnels_and_refuses() {
    let echo = EchoServer::start().await;
    let port = echo.addr.port();
    let dns = dns().await;
    let dialer = RecordingDialer::new();
    let proxy = proxy_builder(&dns, &dialer, LOOPBACK)
        .ports([port, 443])
        .build();
    let proxy = RunningProxy::unix(proxy).await;
    let mut client = proxy.client().await;
    assert_eq!(
        client
            .connect(&format!("web.example.test:{port}"))
            .await
            .status,
        200
    );
    client.send(b"over unix").await;
    assert_eq!(client.read_exact(9).await, b"over unix");
    assert_connect_refused(&proxy, "metadata.example.test:443", "cloud metadata").await;
    assert_eq!(dialer.requests(), [vec![echo.addr]]);
    let common::proxy::Endpoint::Unix(path) = proxy.endpoint.clone() else {
        unreachable!()
    };
    // With no tunnel open, shutdown does not wait for the drain time.
    drop(client);
    let mut proxy = proxy;
    let started = Instant::now();
    proxy.stop().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(path.exists(), "the caller removes the socket file");
    assert!(UnixStream::connect(&path).await.is_err(), "still accepting");
}

#[tokio::test]
async fn shutdown_stops_accepting_and_closes_idle_connections() {
    let dns = dns().await;
    let dialer = RecordingDialer::new();
    let mut proxy = RunningProxy::tcp(proxy_builder(&dns, &dialer, &[]).build()).await;
    let common::proxy::Endpoint::Tcp(addr) = proxy.endpoint.clone() else {
        unreachable!()
    };
    let mut idle = proxy.client().await;
    let reply = idle.request("GET /x HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(reply.status, 400);

    let started = Instant::now();
    proxy.stop().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(idle.closed_within(Duration::from_secs(1)).await);
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}

#[tokio::test]
async fn shutdown_cuts_open_tunnels_after_the_drain_time() {
    let echo = EchoServer::start().await;
    let port = echo.addr.port();
    let dns = dns().await;
    let dialer = RecordingDialer::new();
    let limits = ProxyLimits {
        drain_timeout: Duration::from_millis(200),
        ..ProxyLimits::default()
    };
    let proxy = proxy_builder(&dns, &dialer, LOOPBACK)
        .ports([port])
        .limits(limits)
        .build();
    let mut proxy = RunningProxy::tcp(proxy).await;
    let mut tunnel = proxy.client().await;
    assert_eq!(
        tunnel.connect(&format!("127.0.0.1:{port}")).await.status,
        200
    );
    tunnel.send(b"x").await;
    assert_eq!(tunnel.read_exact(1).await, b"x");

    let started = Instant::now();
    proxy.stop().await.unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(150), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(tunnel.closed_within(Duration::from_secs(1)).await);
}

#[tokio::test]
async fn over_the_connection_limit_the_answer_is_503() {
    let echo = EchoServer::start().await;
    let port = echo.addr.port();
    let dns = dns().await;
    let dialer = RecordingDialer::new();
    let limits = ProxyLimits {
        max_connections: 1,
        ..ProxyLimits::default()
    };
    let proxy = proxy_builder(&dns, &dialer, LOOPBACK)
        .ports([port])
        .limits(limits)
        .build();
    let proxy = RunningProxy::tcp(proxy).await;
    let target = format!("127.0.0.1:{port}");
    let mut first = proxy.client().await;
    assert_eq!(first.connect(&target).await.status, 200);

    let reply = proxy.client().await.request("").await;
    assert_eq!(reply.status, 503);
    assert!(
        reply.text().contains("maximum of 1 connections"),
        "{}",
        reply.text()
    );

    // Once the tunnel closes, its slot is free again.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut client = proxy.client().await;
        let reply = client.connect(&target).await;
        if reply.status == 200 {
            break;
        }
        assert_eq!(reply.status, 503);
        assert!(Instant::now() < deadline, "the slot was never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_idle_tunnel_is_closed() {
    let echo = EchoServer::start().await;
    let port = echo.addr.port();
    let dns = dns().await;
    let dialer = RecordingDialer::new();
    let limits = ProxyLimits {
        idle_timeout: Duration::from_millis(300),
        ..ProxyLimits::default()
    };
    let proxy = proxy_builder(&dns, &dialer, LOOPBACK)
        .ports([port])
        .limits(limits)
        .build();
    let proxy = RunningProxy::tcp(proxy).await;
    let mut tunnel = proxy.client().await;
    assert_eq!(
        tunnel.connect(&format!("127.0.0.1:{port}")).await.status,
        200
    );
    // Traffic keeps it open past the timeout...
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        tunnel.send(b"k").await;
        assert_eq!(tunnel.read_exact(1).await, b"k");
    }
    // ...silence closes it.
    let started = Instant::now();
    assert!(tunnel.closed_within(Duration::from_secs(5)).await);
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_byte_cap_ends_a_tunnel() {
    let echo = EchoServer::start().await;
    let port = echo.addr.port();
    let dns = dns().await;
    let dialer = RecordingDialer::new();
    let limits = ProxyLimits {
        max_bytes_per_connection: Some(4096),
        ..ProxyLimits::default()
    };
    let proxy = proxy_builder(&dns, &dialer, LOOPBACK)
        .ports([port])
        .limits(limits)
        .build();
    let proxy = RunningProxy::tcp(proxy).await;
    let mut tunnel = proxy.client().await;
    assert_eq!(
        tunnel.connect(&format!("127.0.0.1:{port}")).await.status,
        200
    );
    let mut stream = tunnel.into_stream();
    // The proxy stops reading at the cap, so this write may fail: that is the point.
    let _ = stream.write_all(&[7u8; 16 * 1024]).await;
    let mut echoed = 0;
    let mut chunk = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => echoed += n,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read_all)
        .await
        .expect("the tunnel stayed open past its byte cap");
    assert!(echoed < 4096, "{echoed} bytes came back");
}
