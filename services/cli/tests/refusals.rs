//! Unsafe or impossible gateway settings stop the start with a message naming the key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

fn gateway_bin() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_pincer"))
        .parent()
        .unwrap()
        .to_path_buf();
    let bin = dir.join("pincer-gateway");
    assert!(
        bin.is_file(),
        "build the service binaries first: cargo build --workspace --bins"
    );
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_gateway(gateway: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pincer.json5");
    let text = format!(
        r#"{{ gateway: {gateway},
  models: {{ providers: {{ p: {{ api: "anthropic", baseUrl: "http://127.0.0.1:9/v1" }} }} }},
  agents: {{ defaults: {{ model: "p/m" }} }},
  services: {{ gateway: {{ listen: "127.0.0.1:0" }}, credentials: {{ gateway: "g-cred", bridge: "b-cred", agent: "a-cred", executor: "e-cred" }} }} }}"#
    );
    std::fs::write(&config, text).unwrap();
    let out = std::process::Command::new(gateway_bin())
        .args([
            "--config",
            config.to_str().unwrap(),
            "--state-dir",
            dir.path().join("state").to_str().unwrap(),
        ])
        .env("PINCER_GATEWAY_TOKEN", "t".repeat(40))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn lan_bind_without_auth_refuses_to_start() {
    let (ok, stderr) = start_gateway(&format!(
        r#"{{ bind: "lan", port: {}, auth: {{ mode: "none" }} }}"#,
        free_port()
    ));
    assert!(!ok);
    assert!(
        stderr.contains("gateway.auth.mode") && stderr.contains("fix:"),
        "{stderr}"
    );
}

#[test]
fn tailnet_bind_without_tailscale_refuses_to_start() {
    let interfaces = pincer_runtime::net::interface_addrs().unwrap();
    if pincer_runtime::config::gateway::tailnet_address(&interfaces).is_some() {
        eprintln!("SKIP: this host has a Tailscale address; the refusal cannot be shown here");
        return;
    }
    let (ok, stderr) = start_gateway(&format!(r#"{{ bind: "tailnet", port: {} }}"#, free_port()));
    assert!(!ok);
    assert!(stderr.contains("no Tailscale address"), "{stderr}");
}

#[test]
fn unknown_key_refuses_to_start() {
    let (ok, stderr) = start_gateway(&format!(r#"{{ port: {}, bnid: "lan" }}"#, free_port()));
    assert!(!ok);
    assert!(stderr.contains("gateway.bnid"), "{stderr}");
}
