//! What every whole-stack test needs: the service binaries next to `pincer`, free loopback
//! ports, and waiting for the gateway to be ready.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The directory holding `pincer` and the service binaries (checked to exist).
pub fn bin_dir() -> PathBuf {
    let pincer = PathBuf::from(env!("CARGO_BIN_EXE_pincer"));
    let dir = pincer.parent().unwrap().to_path_buf();
    for bin in [
        "pincer-gateway",
        "pincer-agent",
        "pincer-executor",
        "pincer-bridge",
    ] {
        assert!(
            dir.join(bin).is_file(),
            "{bin} is not built in {}; run `cargo build --workspace --bins` first",
            dir.display()
        );
    }
    dir
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until the gateway's operator port answers `/readyz`; `None` after `wait`.
pub async fn wait_ready(op_port: u16, wait: Duration) -> Option<()> {
    let url = format!("http://127.0.0.1:{op_port}/readyz");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if client
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Some(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}
