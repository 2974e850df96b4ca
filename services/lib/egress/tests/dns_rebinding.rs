//! DNS answers are checked once and pinned: the connection goes to the checked addresses,
//! never to a second lookup's answer; one bad answer refuses the whole name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use common::{Reply, Server, fetcher, ip};
use pincer_egress::{EgressError, RecordingDialer};
use pincer_testkit::dns::{FakeDns, RecordType};

fn a_queries(dns: &FakeDns, name: &str) -> usize {
    dns.queries()
        .iter()
        .filter(|q| q.name == name && q.record_type == RecordType::A)
        .count()
}

#[tokio::test]
async fn the_fetch_dials_the_addresses_it_checked_not_a_second_answer() {
    let dns = FakeDns::start().await.unwrap();
    // First answer: the allowlisted test server; every second answer: a private address.
    dns.set_rebinding("rebind.example.test", [ip("127.0.0.1"), ip("10.0.0.1")]);
    let server = Server::start().await;
    server.route("/", Reply::text("text/plain", "pinned"));
    let url = format!("http://rebind.example.test:{}/", server.addr.port());
    let dialer = RecordingDialer::new();
    let fetcher = fetcher(&dns, &dialer, &["127.0.0.1/32"]);

    let page = fetcher.fetch(&url).await.unwrap();
    assert_eq!(page.text, "pinned");
    // One lookup, and exactly its (checked) answer dialled. A fetcher that checked one
    // answer and then connected by name would have looked up again and dialled 10.0.0.1.
    assert_eq!(a_queries(&dns, "rebind.example.test"), 1);
    assert_eq!(dialer.requests(), [vec![server.addr]]);

    // The next lookup answers 10.0.0.1: refused by policy, nothing dialled.
    let err = fetcher.fetch(&url).await.unwrap_err();
    assert!(
        matches!(&err, EgressError::BlockedAnswer { host, .. } if host == "rebind.example.test"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "blocked: rebind.example.test resolves to 10.0.0.1, which is private, in 10.0.0.0/8"
    );
    assert_eq!(a_queries(&dns, "rebind.example.test"), 2);
    assert_eq!(dialer.requests().len(), 1);

    // And the cycle comes back to the server.
    assert_eq!(fetcher.fetch(&url).await.unwrap().text, "pinned");
    assert_eq!(dialer.addresses(), [server.addr, server.addr]);
}

#[tokio::test]
async fn one_bad_answer_refuses_the_whole_name() {
    let dns = FakeDns::start().await.unwrap();
    dns.set("mixed.example.test", [ip("127.0.0.1"), ip("10.0.0.1")]);
    dns.set("dual.example.test", [ip("127.0.0.1"), ip("::1")]);
    let server = Server::start().await;
    server.route("/", Reply::text("text/plain", "hello"));
    let port = server.addr.port();
    let dialer = RecordingDialer::new();

    let only_v4 = fetcher(&dns, &dialer, &["127.0.0.1/32"]);
    for (name, bad) in [("mixed", "10.0.0.1"), ("dual", "::1")] {
        let url = format!("http://{name}.example.test:{port}/");
        let err = only_v4.fetch(&url).await.unwrap_err();
        assert_eq!(err.blocked().map(|b| b.ip), Some(ip(bad)), "{url}: {err}");
    }
    assert!(dialer.requests().is_empty(), "nothing is dialled");

    // With both answers allowed the fetch goes through, and the dialer got both.
    let both = fetcher(&dns, &dialer, &["127.0.0.1/32", "::1/128"]);
    let page = both
        .fetch(&format!("http://dual.example.test:{port}/"))
        .await
        .unwrap();
    assert_eq!(page.text, "hello");
    let mut dialled = dialer.addresses();
    dialled.sort();
    let mut expected: Vec<SocketAddr> = vec![server.addr, format!("[::1]:{port}").parse().unwrap()];
    expected.sort();
    assert_eq!(dialled, expected);
}

#[tokio::test]
async fn unknown_names_fail_to_resolve_without_dialling() {
    let dns = FakeDns::start().await.unwrap();
    let dialer = RecordingDialer::new();
    let fetcher = fetcher(&dns, &dialer, &[]);
    let err = fetcher
        .fetch("http://nowhere.example.test/")
        .await
        .unwrap_err();
    assert!(matches!(err, EgressError::Resolve { .. }), "{err}");
    assert!(!err.is_policy_refusal());
    assert!(dialer.requests().is_empty());
    // Looked up fully qualified, once per record type: no search-list expansion.
    let names: Vec<String> = dns.queries().into_iter().map(|q| q.name).collect();
    assert!(
        names.iter().all(|n| n == "nowhere.example.test"),
        "{names:?}"
    );
}
