//! The standalone fakes: print their address, serve, and exit cleanly on SIGTERM.
// Integration-test helpers outside #[test] fns are not covered by clippy.toml's
// allow-unwrap-in-tests; panicking on a broken fake is what a test should do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::client;
use serde_json::{Value, json};

/// Starts a fake binary on a free loopback port and returns it with its base URL.
fn spawn(binary: &str, args: &[&str]) -> (Child, String) {
    let mut child = Command::new(binary)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}"));
    (child, url.to_owned())
}

/// Sends SIGTERM to our own child (by pid) and waits for a clean exit.
fn terminate(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            return;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the fake did not exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn fake_llm_binary_serves_and_stops_on_sigterm() {
    let (child, url) = spawn(
        env!("CARGO_BIN_EXE_pincer-fake-llm"),
        &["--openai-key", "k"],
    );
    let body: Value = client()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth("k")
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "ping"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "You said: ping");
    terminate(child);
}

#[tokio::test]
async fn fake_telegram_binary_serves_and_stops_on_sigterm() {
    let (child, url) = spawn(
        env!("CARGO_BIN_EXE_pincer-fake-telegram"),
        &["--token", "555:abc", "--bot-username", "demo_bot"],
    );
    let http = client();
    let me: Value = http
        .get(format!("{url}/bot555:abc/getMe"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["result"]["username"], "demo_bot");
    assert_eq!(me["result"]["id"], 555);
    let injected: Value = http
        .post(format!("{url}/_fake/messages"))
        .json(&json!({"chat_id": 9, "from_id": 9, "text": "hi"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(injected["update_id"].as_i64().unwrap() > 0);
    terminate(child);
}
