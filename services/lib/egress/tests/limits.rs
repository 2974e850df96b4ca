//! Body size, total time and content type are capped; HTML comes back as text.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Reply, Server, fetcher, fetcher_with};
use pincer_egress::{EgressError, Limits, RecordingDialer};
use pincer_testkit::dns::FakeDns;

fn small(max_body_bytes: usize) -> Limits {
    Limits {
        max_body_bytes,
        ..Limits::default()
    }
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_with_or_without_content_length() {
    let dns = FakeDns::start().await.unwrap();
    let server = Server::start().await;
    server.route("/exact", Reply::text("text/plain", &"a".repeat(1000)));
    server.route("/declared", Reply::text("text/plain", &"a".repeat(1001)));
    server.route(
        "/streamed",
        Reply {
            until_close: true,
            ..Reply::text("text/plain", &"b".repeat(50_000))
        },
    );
    server.route(
        "/streamed-small",
        Reply {
            until_close: true,
            ..Reply::text("text/plain", "short")
        },
    );
    let dialer = RecordingDialer::new();
    let fetcher = fetcher_with(&dns, &dialer, &["127.0.0.1/32"], small(1000));
    assert_eq!(
        fetcher
            .fetch(&server.url("/exact"))
            .await
            .unwrap()
            .text
            .len(),
        1000
    );
    assert_eq!(
        fetcher
            .fetch(&server.url("/streamed-small"))
            .await
            .unwrap()
            .text,
        "short"
    );
    for path in ["/declared", "/streamed"] {
        let err = fetcher.fetch(&server.url(path)).await.unwrap_err();
        assert!(
            matches!(err, EgressError::TooLarge { limit: 1000 }),
            "{path}: {err}"
        );
        assert!(err.to_string().contains("--max-bytes"), "{err}");
    }
}

#[tokio::test]
async fn the_default_limits_are_the_documented_ones() {
    let limits = Limits::default();
    assert_eq!(limits.max_body_bytes, 2 * 1024 * 1024);
    assert_eq!(limits.total_time, Duration::from_secs(20));
    assert_eq!(limits.max_redirects, 3);
}

#[tokio::test]
async fn only_text_json_and_xhtml_are_accepted() {
    let dns = FakeDns::start().await.unwrap();
    let server = Server::start().await;
    server.route("/json", Reply::text("application/json", r#"{"a":1}"#));
    server.route("/csv", Reply::text("text/csv; charset=utf-8", "a,b"));
    server.route("/png", Reply::text("image/png", "\u{89}PNG"));
    server.route("/bin", Reply::text("application/octet-stream", "x"));
    server.route(
        "/none",
        Reply {
            headers: Vec::new(),
            ..Reply::text("", "x")
        },
    );
    let dialer = RecordingDialer::new();
    let fetcher = fetcher(&dns, &dialer, &["127.0.0.1/32"]);
    let json = fetcher.fetch(&server.url("/json")).await.unwrap();
    assert_eq!(
        (json.content_type.as_str(), json.text.as_str()),
        ("application/json", r#"{"a":1}"#)
    );
    assert_eq!(
        fetcher
            .fetch(&server.url("/csv"))
            .await
            .unwrap()
            .content_type,
        "text/csv"
    );
    for path in ["/png", "/bin", "/none"] {
        let err = fetcher.fetch(&server.url(path)).await.unwrap_err();
        assert!(
            matches!(err, EgressError::ContentType { .. }),
            "{path}: {err}"
        );
    }
}

#[tokio::test]
async fn html_is_returned_as_readable_text_and_statuses_pass_through() {
    let dns = FakeDns::start().await.unwrap();
    let server = Server::start().await;
    server.route(
        "/page",
        Reply::text(
            "text/html; charset=utf-8",
            "<html><head><title>Doc</title><script>steal()</script><style>b{}</style></head>\
             <body><h2>News</h2><p>Caf\u{e9} &amp; cr\u{e8}me</p></body></html>",
        ),
    );
    let dialer = RecordingDialer::new();
    let fetcher = fetcher(&dns, &dialer, &["127.0.0.1/32"]);
    let page = fetcher.fetch(&server.url("/page")).await.unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(page.content_type, "text/html");
    assert_eq!(page.text, "Doc\n\n## News\n\nCaf\u{e9} & cr\u{e8}me");
    let missing = fetcher.fetch(&server.url("/missing")).await.unwrap();
    assert_eq!(
        (missing.status.as_u16(), missing.text.as_str()),
        (404, "not found")
    );
    // What the server saw: origin-form target, our Host, no compression, closing.
    let seen = &server.seen()[0];
    assert_eq!(seen.target, "/page");
    assert_eq!(seen.header("host"), Some(server.addr.to_string().as_str()));
    assert_eq!(seen.header("accept-encoding"), Some("identity"));
    assert_eq!(seen.header("connection"), Some("close"));
    assert!(
        seen.header("user-agent")
            .unwrap()
            .starts_with("pincer-egress/")
    );
}

#[tokio::test]
async fn the_whole_fetch_is_bounded_in_time() {
    let dns = FakeDns::start().await.unwrap();
    let server = Server::start().await;
    server.route(
        "/slow",
        Reply {
            stall: Some(Duration::from_secs(30)),
            ..Reply::text("text/plain", "late")
        },
    );
    let dialer = RecordingDialer::new();
    let limits = Limits {
        total_time: Duration::from_millis(300),
        ..Limits::default()
    };
    let fetcher = fetcher_with(&dns, &dialer, &["127.0.0.1/32"], limits);
    let start = Instant::now();
    let err = fetcher.fetch(&server.url("/slow")).await.unwrap_err();
    assert!(
        matches!(err, EgressError::Timeout(d) if d == Duration::from_millis(300)),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}
