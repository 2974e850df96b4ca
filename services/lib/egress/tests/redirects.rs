//! Redirects are followed by hand: each hop is checked from the start before anything is
//! dialled, at most three are followed, and credentials do not cross origins.
//! The first hop is a real loopback server (explicitly allowlisted); refused targets are
//! never dialled (the recording dialer proves it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use common::{Reply, Server, fetcher, ip};
use http::{HeaderMap, HeaderValue};
use pincer_egress::{EgressError, FetchRequest, RecordingDialer};
use pincer_testkit::dns::FakeDns;

#[tokio::test]
async fn a_redirect_to_a_private_address_is_refused_before_any_dial() {
    let dns = FakeDns::start().await.unwrap();
    dns.set("metadata.example.test", [ip("169.254.169.254")]);
    let server = Server::start().await;
    let port = server.addr.port();
    let targets = [
        (
            302,
            "http://10.0.0.1/".to_owned(),
            "blocked: 10.0.0.1 is private",
        ),
        (
            301,
            "http://169.254.169.254/latest/meta-data/".into(),
            "link-local (cloud metadata)",
        ),
        (303, "https://[fd00:ec2::254]/".into(), "unique local"),
        (
            307,
            format!("http://[::1]:{port}/"),
            "blocked: ::1 is loopback",
        ),
        (308, "//10.0.0.1/x".into(), "10.0.0.1 is private"),
        (302, "http://2130706433/".into(), "non-canonical IPv4"),
        (
            302,
            "http://metadata.example.test/".into(),
            "resolves to 169.254.169.254",
        ),
        (302, format!("http://localhost:{port}/"), "the local host"),
        (
            302,
            format!("http://127.0.0.2:{port}/"),
            "127.0.0.2 is loopback",
        ),
        (302, "file:///etc/passwd".into(), "scheme \"file\""),
        (
            302,
            "http://user:pw@example.com/".into(),
            "credentials in the URL",
        ),
    ];
    let dialer = RecordingDialer::new();
    let fetcher = fetcher(&dns, &dialer, &["127.0.0.1/32"]);
    for (i, (status, location, phrase)) in targets.iter().enumerate() {
        let path = format!("/r{i}");
        server.route(&path, Reply::redirect(*status, location));
        let err = fetcher.fetch(&server.url(&path)).await.unwrap_err();
        assert!(
            matches!(err, EgressError::Redirect { hop: 1, .. }),
            "{location}: {err}"
        );
        assert!(err.is_policy_refusal(), "{location}: {err}");
        let text = err.to_string();
        assert!(text.starts_with("redirect 1 (from 127.0.0.1): "), "{text}");
        assert!(text.contains(phrase), "{location}: {text}");
    }
    // Only the loopback server was ever dialled, once per URL.
    assert_eq!(dialer.addresses(), vec![server.addr; targets.len()]);
    assert_eq!(server.seen().len(), targets.len());
}

#[tokio::test]
async fn every_hop_of_a_chain_is_checked() {
    let dns = FakeDns::start().await.unwrap();
    let server = Server::start().await;
    server.route("/a", Reply::redirect(302, "/b"));
    server.route("/b", Reply::redirect(301, &server.url("/c")));
    server.route("/c", Reply::redirect(307, "http://10.0.0.1/"));
    let dialer = RecordingDialer::new();
    let fetcher = fetcher(&dns, &dialer, &["127.0.0.1/32"]);
    let err = fetcher.fetch(&server.url("/a")).await.unwrap_err();
    assert!(matches!(err, EgressError::Redirect { hop: 3, .. }), "{err}");
    assert_eq!(err.blocked().map(|b| b.ip), Some(ip("10.0.0.1")));
    assert_eq!(dialer.addresses(), vec![server.addr; 3]);
    let targets: Vec<String> = server.seen().into_iter().map(|s| s.target).collect();
    assert_eq!(targets, ["/a", "/b", "/c"]);
}

#[tokio::test]
async fn at_most_three_redirects_are_followed() {
    let dns = FakeDns::start().await.unwrap();
    let server = Server::start().await;
    for i in 0..5 {
        server.route(
            &format!("/{i}"),
            Reply::redirect(302, &format!("/{}", i + 1)),
        );
    }
    server.route("/3", Reply::text("text/plain", "made it"));
    let dialer = RecordingDialer::new();
    let fetcher = fetcher(&dns, &dialer, &["127.0.0.1/32"]);
    let page = fetcher.fetch(&server.url("/0")).await.unwrap();
    assert_eq!((page.redirects, page.text.as_str()), (3, "made it"));
    assert_eq!(page.url.path(), "/3");

    server.route("/3", Reply::redirect(302, "/4"));
    let err = fetcher.fetch(&server.url("/0")).await.unwrap_err();
    assert!(
        matches!(err, EgressError::TooManyRedirects { max: 3 }),
        "{err}"
    );
    // 4 + 4 requests: the fourth redirect was never followed.
    assert_eq!(server.seen().len(), 8);
    assert_eq!(dialer.requests().len(), 8);
}

fn credentials() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_static("Bearer s3cret-token"),
    );
    h.insert("cookie", HeaderValue::from_static("sid=s3cret-cookie"));
    h.insert(
        "proxy-authorization",
        HeaderValue::from_static("Basic s3cret"),
    );
    h.insert("x-trace", HeaderValue::from_static("keep-me"));
    h
}

const SECRET_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

#[tokio::test]
async fn credentials_stay_on_the_origin_and_are_dropped_for_good_when_it_changes() {
    let dns = FakeDns::start().await.unwrap();
    let a = Server::start().await;
    let b = Server::start().await;
    a.route("/start", Reply::redirect(302, "/same"));
    a.route("/same", Reply::redirect(302, &b.url("/other")));
    b.route("/other", Reply::redirect(302, &a.url("/back")));
    a.route("/back", Reply::text("text/plain", "done"));
    let dialer = RecordingDialer::new();
    let fetcher = fetcher(&dns, &dialer, &["127.0.0.1/32"]);
    let page = fetcher
        .fetch_with(FetchRequest {
            url: a.url("/start"),
            headers: credentials(),
        })
        .await
        .unwrap();
    assert_eq!((page.text.as_str(), page.redirects), ("done", 3));

    let seen_a = a.seen();
    let seen_b = b.seen();
    assert_eq!(seen_a.len(), 3);
    assert_eq!(seen_b.len(), 1);
    // Same origin: sent.
    for req in &seen_a[..2] {
        assert_eq!(req.header("authorization"), Some("Bearer s3cret-token"));
        assert_eq!(req.header("cookie"), Some("sid=s3cret-cookie"));
        assert_eq!(req.header("proxy-authorization"), Some("Basic s3cret"));
    }
    // Another port is another origin; coming back does not restore them.
    for req in [&seen_b[0], &seen_a[2]] {
        for name in SECRET_HEADERS {
            assert_eq!(req.header(name), None, "{name} sent to {}", req.target);
        }
        assert_eq!(req.header("x-trace"), Some("keep-me"));
    }
}

#[tokio::test]
async fn a_different_host_name_is_a_different_origin_even_on_the_same_address() {
    let dns = FakeDns::start().await.unwrap();
    dns.set("app.example.test", [ip("127.0.0.1")]);
    let server = Server::start().await;
    let port = server.addr.port();
    server.route("/start", Reply::redirect(302, &server.url("/ip")));
    server.route("/ip", Reply::text("text/plain", "ok"));
    let dialer = RecordingDialer::new();
    let fetcher = fetcher(&dns, &dialer, &["127.0.0.1/32"]);
    let page = fetcher
        .fetch_with(FetchRequest {
            url: format!("http://app.example.test:{port}/start"),
            headers: credentials(),
        })
        .await
        .unwrap();
    assert_eq!(page.text, "ok");
    let seen = server.seen();
    assert_eq!(
        seen[0].header("host"),
        Some(format!("app.example.test:{port}").as_str())
    );
    assert_eq!(seen[0].header("authorization"), Some("Bearer s3cret-token"));
    assert_eq!(
        seen[1].header("host"),
        Some(server.addr.to_string().as_str())
    );
    for name in SECRET_HEADERS {
        assert_eq!(seen[1].header(name), None, "{name}");
    }
    let dialled: Vec<SocketAddr> = dialer.addresses();
    assert_eq!(dialled, [server.addr, server.addr]);
}
