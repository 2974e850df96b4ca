//! The SSRF battery: URLs an attacker would try, each refused by policy before anything
//! is dialled. Names resolve through the fake DNS server; every address that passes the
//! policy reaches only the recording dialer, which records it and refuses non-loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use common::{fetcher, ip};
use pincer_egress::connect::REFUSED_NON_LOOPBACK;
use pincer_egress::{EgressError, RecordingDialer};
use pincer_testkit::dns::FakeDns;

const NON_CANONICAL: &str = "non-canonical IPv4";
const USERINFO: &str = "credentials in the URL";

/// (URL, a phrase the refusal must contain).
const BATTERY: &[(&str, &str)] = &[
    // Decimal, octal, hex and short IPv4 forms of 127.0.0.1 and 169.254.169.254.
    ("http://2130706433/", NON_CANONICAL),
    ("http://017700000001/", NON_CANONICAL),
    ("http://0177.0.0.1/", NON_CANONICAL),
    ("http://0x7f.1/", NON_CANONICAL),
    ("http://0x7f000001/", NON_CANONICAL),
    ("http://0x7F.0x0.0x0.0x1/", NON_CANONICAL),
    ("http://127.1/", NON_CANONICAL),
    ("http://127.0.1/", NON_CANONICAL),
    ("http://127.000.000.001/", NON_CANONICAL),
    ("http://0127.0.0.1/", NON_CANONICAL),
    ("http://127.0.0.1./", NON_CANONICAL),
    ("http://0/", NON_CANONICAL),
    ("http://0x0/", NON_CANONICAL),
    ("http://2852039166/latest/meta-data/", NON_CANONICAL),
    ("http://169.254.43518/", NON_CANONICAL),
    ("http://0xa9fea9fe/", NON_CANONICAL),
    ("http://0251.0376.0251.0376/", NON_CANONICAL),
    ("http://10.1/", NON_CANONICAL),
    ("http://１２７.０.０.１/", NON_CANONICAL),
    ("http://%31%32%37.0.0.1/", "percent-encoding in the host"),
    // Canonical literals in blocked IPv4 networks.
    ("http://127.0.0.1/", "loopback"),
    ("http://127.255.255.254:8080/", "loopback"),
    ("http://0.0.0.0/", "this network"),
    ("http://0.0.0.0:22/", "this network"),
    ("http://10.0.0.1/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://172.31.255.255/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://100.64.0.1/", "CGNAT"),
    ("http://100.100.100.100/", "Tailscale"),
    (
        "http://169.254.169.254/latest/meta-data/",
        "link-local (cloud metadata)",
    ),
    (
        "https://169.254.170.2/v2/credentials",
        "link-local (cloud metadata)",
    ),
    ("http://168.63.129.16/", "Azure's platform endpoint"),
    ("http://192.0.0.170/", "IETF protocol assignments"),
    ("http://192.0.2.1/", "documentation"),
    ("http://198.51.100.7/", "documentation"),
    ("http://203.0.113.9/", "documentation"),
    ("http://198.18.0.1/", "benchmarking"),
    ("http://192.88.99.1/", "6to4 relay"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "broadcast"),
    // IPv6 literals, including IPv4 carried in transition prefixes.
    ("http://[::1]/", "loopback"),
    ("http://[::1]:8080/", "loopback"),
    ("http://[::]/", "unspecified"),
    (
        "http://[0:0:0:0:0:ffff:7f00:1]/",
        "carries 127.0.0.1, which is loopback",
    ),
    ("http://[::ffff:127.0.0.1]/", "carries 127.0.0.1"),
    (
        "http://[::ffff:a9fe:a9fe]/",
        "carries 169.254.169.254, which is link-local",
    ),
    ("http://[::ffff:8.8.8.8]/", "IPv4-mapped"),
    ("http://[::127.0.0.1]/", "carries 127.0.0.1"),
    ("http://[64:ff9b::7f00:1]/", "carries 127.0.0.1"),
    ("http://[64:ff9b::a9fe:a9fe]/", "carries 169.254.169.254"),
    ("http://[64:ff9b::808:808]/", "is NAT64"),
    ("http://[64:ff9b:1::a00:1]/", "carries 10.0.0.1"),
    ("http://[2002:7f00:1::]/", "carries 127.0.0.1"),
    ("http://[2002:a9fe:a9fe::1]/", "carries 169.254.169.254"),
    ("http://[2002:808:808::1]/", "is 6to4"),
    (
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
        "carries 127.0.0.1",
    ),
    (
        "http://[2001:0:4136:e378:8000:63bf:f7f7:f7f7]/",
        "is Teredo",
    ),
    ("http://[fd00:ec2::254]/latest/meta-data/", "unique local"),
    ("http://[fc00::1]/", "unique local"),
    ("http://[fd7a:115c:a1e0::1]/", "unique local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fec0::1]/", "site-local"),
    ("http://[ff02::1]/", "multicast"),
    ("http://[100::1]/", "discard-only"),
    ("http://[2001:db8::1]/", "documentation"),
    ("http://[3fff::1]/", "documentation"),
    ("http://[2001:2::1]/", "benchmarking"),
    ("http://[2001:10::1]/", "ORCHID"),
    ("http://[2001:20::1]/", "ORCHID"),
    // Names blocked by name (never resolved).
    ("http://localhost/", "the local host"),
    ("http://LOCALHOST./", "the local host"),
    ("http://LocalHost:8080/", "the local host"),
    ("http://api.localhost/", "the local host"),
    ("http://ⓛocalhost/", "the local host"),
    ("http://printer.local/", "local-network name"),
    (
        "http://metadata.google.internal/computeMetadata/v1/",
        "Google Cloud's metadata",
    ),
    (
        "http://METADATA.GOOGLE.INTERNAL./",
        "Google Cloud's metadata",
    ),
    ("http://db.corp.internal/", "private network name"),
    // Names that resolve (fake DNS) to blocked addresses.
    ("http://127.0.0.1.nip.io/", "resolves to 127.0.0.1"),
    ("http://127.0.0.1.nip.io./", "resolves to 127.0.0.1"),
    ("http://10.0.0.1.nip.io:8080/", "resolves to 10.0.0.1"),
    (
        "http://metadata.example.test/",
        "link-local (cloud metadata)",
    ),
    ("http://v6meta.example.test/", "resolves to fd00:ec2::254"),
    ("http://mapped.example.test/", "carries 127.0.0.1"),
    ("http://mixed.example.test/", "resolves to 10.0.0.1"),
    ("http://azure.example.test/", "Azure"),
    ("http://nat64.example.test/", "carries 10.0.0.1"),
    ("http://zero.example.test/", "this network"),
    ("http://cgnat.example.test/", "CGNAT"),
    ("http://sixtofour.example.test/", "carries 169.254.169.254"),
    ("http://loop6.example.test/", "loopback"),
    // Userinfo tricks and parser confusion.
    ("http://evil@127.0.0.1/", USERINFO),
    ("http://127.0.0.1@evil.com/", USERINFO),
    ("http://a:b@x/", USERINFO),
    ("http://@example.com/", USERINFO),
    ("http://example.com:80@127.0.0.1/", USERINFO),
    ("http://example.com%40127.0.0.1/", "percent-encoding"),
    ("http://127.0.0.1\\@evil.com/", "backslash"),
    ("http:\\\\127.0.0.1\\", "backslash"),
    ("http://127.0.0.1\t/", "whitespace"),
    ("http:/127.0.0.1/", "must start with http://"),
    ("http:127.0.0.1", "must start with http://"),
    ("http:///127.0.0.1/", "no host"),
    ("file:///etc/passwd", "scheme \"file\""),
    ("gopher://127.0.0.1:25/", "scheme \"gopher\""),
    ("ftp://example.com/", "scheme \"ftp\""),
    ("http://[fe80::1%25eth0]/", "percent-encoding"),
    ("http://example.com:0/", "port"),
];

async fn dns_with_names() -> FakeDns {
    let dns = FakeDns::start().await.unwrap();
    for (name, ips) in [
        ("127.0.0.1.nip.io", &["127.0.0.1"][..]),
        ("10.0.0.1.nip.io", &["10.0.0.1"]),
        ("metadata.example.test", &["169.254.169.254"]),
        ("v6meta.example.test", &["fd00:ec2::254"]),
        ("mapped.example.test", &["::ffff:127.0.0.1"]),
        ("mixed.example.test", &["93.184.216.34", "10.0.0.1"]),
        ("azure.example.test", &["168.63.129.16"]),
        ("nat64.example.test", &["64:ff9b::a00:1"]),
        ("zero.example.test", &["0.0.0.0"]),
        ("cgnat.example.test", &["100.100.100.100"]),
        ("sixtofour.example.test", &["2002:a9fe:a9fe::"]),
        ("loop6.example.test", &["::1"]),
        (
            "public.example.test",
            &["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
        ),
    ] {
        dns.set(name, ips.iter().map(|s| ip(s)));
    }
    dns
}

#[tokio::test]
async fn every_url_in_the_battery_is_refused_before_any_dial() {
    assert!(
        BATTERY.len() >= 60,
        "the battery has {} URLs",
        BATTERY.len()
    );
    let dns = dns_with_names().await;
    let dialer = RecordingDialer::new();
    let fetcher = fetcher(&dns, &dialer, &[]);
    let mut failures = Vec::new();
    for (url, phrase) in BATTERY {
        match fetcher.fetch(url).await {
            Ok(page) => failures.push(format!("{url}: fetched {}", page.url)),
            Err(e) if !e.is_policy_refusal() => {
                failures.push(format!("{url}: failed, but not by policy: {e}"));
            }
            Err(e) if !e.to_string().contains(phrase) => {
                failures.push(format!("{url}: {e} (expected {phrase:?})"));
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_eq!(
        dialer.requests(),
        Vec::<Vec<SocketAddr>>::new(),
        "something was dialled"
    );
}

/// The other side: addresses the policy allows do reach the dialer (the recording one,
/// which refuses them), so the battery is not passing because everything is refused.
#[tokio::test]
async fn public_addresses_pass_the_policy_and_reach_only_the_recording_dialer() {
    let dns = dns_with_names().await;
    let dialer = RecordingDialer::new();
    let fetcher = fetcher(&dns, &dialer, &[]);
    for (url, expected) in [
        ("http://93.184.216.34/", &["93.184.216.34:80"][..]),
        ("https://[2606:4700::1111]/", &["[2606:4700::1111]:443"]),
        ("http://1e100.example.test.nope/", &[]),
        (
            "https://public.example.test:8443/x",
            &[
                "93.184.216.34:8443",
                "[2606:2800:220:1:248:1893:25c8:1946]:8443",
            ],
        ),
    ] {
        let before = dialer.requests().len();
        let err = fetcher.fetch(url).await.unwrap_err();
        if expected.is_empty() {
            // Unknown name: a DNS failure, not a policy decision, and nothing dialled.
            assert!(matches!(err, EgressError::Resolve { .. }), "{url}: {err}");
            assert_eq!(dialer.requests().len(), before);
            continue;
        }
        assert!(!err.is_policy_refusal(), "{url}: {err}");
        assert!(
            err.to_string().contains(REFUSED_NON_LOOPBACK),
            "{url}: {err}"
        );
        let dialled: BTreeSet<SocketAddr> =
            dialer.requests()[before..].concat().into_iter().collect();
        let expected: BTreeSet<SocketAddr> = expected.iter().map(|a| a.parse().unwrap()).collect();
        assert_eq!(dialled, expected, "{url}");
    }
}

#[tokio::test]
async fn allowlisting_nat64_reaches_public_ipv4_but_not_private() {
    let dns = dns_with_names().await;
    let dialer = RecordingDialer::new();
    let fetcher = fetcher(&dns, &dialer, &["64:ff9b::/96"]);
    let err = fetcher
        .fetch("http://[64:ff9b::808:808]/")
        .await
        .unwrap_err();
    assert!(err.to_string().contains(REFUSED_NON_LOOPBACK), "{err}");
    assert_eq!(
        dialer.addresses(),
        ["[64:ff9b::808:808]:80".parse::<SocketAddr>().unwrap()]
    );
    for url in ["http://[64:ff9b::a00:1]/", "http://nat64.example.test/"] {
        let err = fetcher.fetch(url).await.unwrap_err();
        assert_eq!(
            err.blocked().map(|b| b.carried),
            Some(Some("10.0.0.1".parse().unwrap())),
            "{url}: {err}"
        );
    }
    assert_eq!(dialer.requests().len(), 1);
}
