//! `pincer web fetch` as a user runs it: the built binary against a loopback server it
//! must be told to allow, and against cloud metadata, which it refuses by classification.
//!
//! Network rule (TESTING.md): the only server is on 127.0.0.1; every run also passes
//! `--loopback-only`, so even a broken guard could not send a packet elsewhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output};
use std::thread::JoinHandle;

/// Serves one HTTP response on 127.0.0.1 and returns the request it got.
fn serve_once(content_type: &str, body: &str) -> (SocketAddr, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        let _ = stream.write_all(reply.as_bytes());
        String::from_utf8_lossy(&request).into_owned()
    });
    (addr, handle)
}

fn pincer(args: &[&str]) -> Output {
    let state = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_pincer"))
        .args(["web", "fetch", "--loopback-only"])
        .args(args)
        .env("PINCER_STATE_DIR", state.path())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn fetches_an_allowlisted_loopback_server_as_text() {
    let (addr, server) = serve_once(
        "text/html; charset=utf-8",
        "<html><head><script>hidden()</script></head><body><h1>Hi</h1><p>from loopback</p></body></html>",
    );
    let url = format!("http://{addr}/page?q=1");
    let out = pincer(&[&url, "--allow-network", "127.0.0.1/32"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "# Hi\n\nfrom loopback\n");
    assert_eq!(text(&out.stderr), "");
    assert!(
        server
            .join()
            .unwrap()
            .starts_with("GET /page?q=1 HTTP/1.1\r\n")
    );
}

#[test]
fn loopback_is_refused_unless_allowlisted_and_nothing_connects() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let out = pincer(&[&format!("http://{addr}/")]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr,
        "pincer: blocked: 127.0.0.1 is loopback, in 127.0.0.0/8\n"
    );
    assert_eq!(text(&out.stdout), "");
    // Nobody knocked.
    listener.set_nonblocking(true).unwrap();
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
}

#[test]
fn cloud_metadata_is_refused_by_classification_before_any_connect() {
    for (url, rule) in [
        (
            "http://169.254.169.254/latest/meta-data/",
            "blocked: 169.254.169.254 is link-local (cloud metadata), in 169.254.0.0/16",
        ),
        (
            "http://[fd00:ec2::254]/",
            "blocked: fd00:ec2::254 is unique local",
        ),
        (
            "http://metadata.google.internal/",
            "blocked: metadata.google.internal is Google Cloud's metadata server",
        ),
        ("http://2852039166/", "non-canonical IPv4"),
    ] {
        let out = pincer(&[url]);
        assert!(!out.status.success(), "{url}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(rule), "{url}: {stderr}");
        // Had the policy let it through, the loopback-only dialer would have refused it
        // and said so; its message is absent, so no connect was even attempted.
        assert!(!stderr.contains("refused to dial"), "{url}: {stderr}");
        assert_eq!(text(&out.stdout), "", "{url}");
    }
}

#[test]
fn max_bytes_caps_the_body() {
    let (addr, server) = serve_once("text/plain", &"x".repeat(100));
    let url = format!("http://{addr}/");
    let out = pincer(&[&url, "--allow-network", "127.0.0.1/32", "--max-bytes", "10"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("exceeds 10 bytes"),
        "{}",
        text(&out.stderr)
    );
    server.join().unwrap();
}

#[test]
fn a_bad_allowlist_entry_is_a_usage_error() {
    let out = pincer(&["http://example.com/", "--allow-network", "10.0.0.1/8"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("did you mean 10.0.0.0/8"),
        "{}",
        text(&out.stderr)
    );
}
