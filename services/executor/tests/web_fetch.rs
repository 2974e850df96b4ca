//! `web_fetch` through the real gRPC service and the real SSRF guard, against an HTTP
//! server on 127.0.0.1 (TESTING.md network rule: nothing else is ever contacted; the
//! executor dials through `LoopbackOnlyDialer` besides).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod tool_harness;

use std::net::SocketAddr;

use pincer_proto::v1::{NetworkAccess, TurnGrant, WebFetchRequest, WorkspaceAccess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tonic::Code;
use tool_harness::*;

/// Answers every request with `status`, `content_type` and `body`, then closes.
async fn page_server(status: u16, content_type: &'static str, body: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

fn egress_grant(tweak: impl FnOnce(&mut pincer_proto::v1::GrantClaims)) -> Option<TurnGrant> {
    let mut c = claims(&["web_fetch"]);
    c.network = NetworkAccess::Egress.into();
    tweak(&mut c);
    sign(&c)
}

fn fetch(url: &str, grant: Option<TurnGrant>) -> WebFetchRequest {
    WebFetchRequest {
        grant,
        session_key: SESSION.into(),
        url: url.into(),
    }
}

const ALLOW_LOOPBACK: &str = r#"{ webFetch: { allowNetworks: ["127.0.0.0/8"] } }"#;

#[tokio::test]
async fn fetches_an_allowed_page_as_text() {
    let html = "<html><head><title>T</title><script>var secret = 1;</script></head>\
                <body><h1>Hello</h1><p>from <b>loopback</b></p></body></html>";
    let site = page_server(200, "text/html; charset=utf-8", html.into()).await;
    let server = start(ALLOW_LOOPBACK).await;
    let mut c = server.client().await;
    let url = format!("http://{site}/page?q=1");
    let page = c
        .web_fetch(fetch(&url, egress_grant(|_| {})))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.status, 200);
    assert_eq!(page.final_url, url);
    assert_eq!(page.content_type, "text/html");
    assert!(page.text.contains("Hello"), "{}", page.text);
    assert!(page.text.contains("from loopback"), "{}", page.text);
    assert!(
        !page.text.contains("<p>") && !page.text.contains("secret"),
        "{}",
        page.text
    );
    assert!(!page.truncated);

    // A non-2xx answer is an answer, not an error.
    let missing = page_server(404, "text/plain", "no such page".into()).await;
    let page = c
        .web_fetch(fetch(&format!("http://{missing}/x"), egress_grant(|_| {})))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((page.status, page.text.as_str()), (404, "no such page"));

    // A grant without workspace access still allows web_fetch (it never touches files).
    let page = c
        .web_fetch(fetch(
            &url,
            egress_grant(|c| c.workspace_access = WorkspaceAccess::None.into()),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn loopback_is_refused_without_an_allowance_naming_the_rule() {
    let site = page_server(200, "text/plain", "must not be read".into()).await;
    let server = start("{}").await;
    let mut c = server.client().await;
    for url in [
        format!("http://{site}/"),
        format!("http://localhost:{}/", site.port()),
        format!("http://2130706433:{}/", site.port()),
        "http://[::1]/".to_owned(),
    ] {
        let err = c
            .web_fetch(fetch(&url, egress_grant(|_| {})))
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Code::PermissionDenied,
            "{url}: {}",
            err.message()
        );
        assert!(
            err.message().contains("blocked"),
            "{url}: {}",
            err.message()
        );
    }
    let err = c
        .web_fetch(fetch(&format!("http://{site}/"), egress_grant(|_| {})))
        .await
        .unwrap_err();
    assert!(
        err.message().contains("loopback, in 127.0.0.0/8"),
        "{}",
        err.message()
    );
    // Other schemes never reach the network.
    let err = c
        .web_fetch(fetch("file:///etc/passwd", egress_grant(|_| {})))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
    server.stop().await;
}

#[tokio::test]
async fn the_grant_must_give_egress() {
    let site = page_server(200, "text/plain", "hi".into()).await;
    let server = start(ALLOW_LOOPBACK).await;
    let mut c = server.client().await;
    let url = format!("http://{site}/");
    let no_network = egress_grant(|c| c.network = NetworkAccess::None.into());
    let err = c.web_fetch(fetch(&url, no_network)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("no network access"),
        "{}",
        err.message()
    );

    let refused: Vec<(&str, Option<TurnGrant>, &str)> = vec![
        ("missing", None, "no turn grant"),
        ("other tool", grant(&["read_file"]), "web_fetch"),
        (
            "other session",
            egress_grant(|c| c.session_key = "other:dm:2".into()),
            "session",
        ),
        (
            "expired",
            egress_grant(|c| c.expires_at_ms = now_ms() - 1),
            "expired",
        ),
    ];
    for (why, g, says) in refused {
        let err = c.web_fetch(fetch(&url, g)).await.unwrap_err();
        assert_eq!(
            err.code(),
            Code::PermissionDenied,
            "{why}: {}",
            err.message()
        );
        assert!(err.message().contains(says), "{why}: {}", err.message());
    }
    let err = c
        .web_fetch(fetch("  ", egress_grant(|_| {})))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    server.stop().await;
}

#[tokio::test]
async fn limits_come_from_the_config() {
    let big = page_server(200, "text/plain", "x".repeat(4096)).await;
    let binary = page_server(200, "application/octet-stream", "\u{1}\u{2}".into()).await;
    let server =
        start(r#"{ webFetch: { allowNetworks: ["127.0.0.1/32"], maxBytes: 1024 } }"#).await;
    let mut c = server.client().await;
    let err = c
        .web_fetch(fetch(&format!("http://{big}/"), egress_grant(|_| {})))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    assert!(
        err.message().contains("tools.webFetch.maxBytes"),
        "{}",
        err.message()
    );
    let err = c
        .web_fetch(fetch(&format!("http://{binary}/"), egress_grant(|_| {})))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    assert!(err.message().contains("content type"), "{}", err.message());
    server.stop().await;
}

#[tokio::test]
async fn disabled_web_fetch_is_refused_whatever_the_grant() {
    let server = start(r#"{ webFetch: { enabled: false, allowNetworks: ["127.0.0.0/8"] } }"#).await;
    let mut c = server.client().await;
    let err = c
        .web_fetch(fetch("http://127.0.0.1:9/", egress_grant(|_| {})))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("tools.webFetch.enabled"),
        "{}",
        err.message()
    );
    server.stop().await;
}
