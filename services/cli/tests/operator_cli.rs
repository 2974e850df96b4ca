//! The operator commands as a user runs them, against a real `pincer-gateway` process and a
//! real nginx: the owner's CLI on the gateway host is approved automatically; a second
//! device coming through the proxy waits for `pincer devices approve`, gets only the scopes
//! granted, and is shut out again by `pincer devices revoke`. Also `pincer status`,
//! `pincer health` and `pincer gateway probe`, and the 0600 identity files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pincer_testkit::nginx::Nginx;
use serde_json::Value;

struct Gateway {
    child: Child,
    port: u16,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_gateway() -> Gateway {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_pincer"))
        .parent()
        .unwrap()
        .join("pincer-gateway");
    assert!(
        bin.is_file(),
        "build the service binaries first: cargo build --workspace --bins"
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("pincer.json5");
    let text = format!(
        r#"{{ gateway: {{ port: {port}, auth: {{ token: "cli-test-operator-token-0123456789abcdef" }} }},
  models: {{ providers: {{ p: {{ api: "anthropic", baseUrl: "http://127.0.0.1:9/v1" }} }} }},
  agents: {{ defaults: {{ model: "p/m" }} }},
  services: {{ gateway: {{ listen: "127.0.0.1:{grpc}" }}, credentials: {{ gateway: "g-cred", bridge: "b-cred", agent: "a-cred", executor: "e-cred" }} }} }}"#,
        grpc = free_port()
    );
    pincer_runtime::paths::write_private_file(&config, text.as_bytes()).unwrap();
    let child = Command::new(bin)
        .args(["--config", config.to_str().unwrap(), "--state-dir"])
        .arg(dir.path().join("gateway-state"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "gateway did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Gateway {
        child,
        port,
        config,
        _dir: dir,
    }
}

fn pincer(gw: &Gateway, state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pincer"))
        .arg("--config")
        .arg(&gw.config)
        .args(args)
        .env("PINCER_STATE_DIR", state)
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn owner_approves_scopes_and_revokes_a_second_device() {
    let gw = start_gateway();
    let owner = tempfile::tempdir().unwrap();
    let phone = tempfile::tempdir().unwrap();
    let proxy_dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::reverse_proxy(
        proxy_dir.path(),
        std::net::SocketAddr::from(([127, 0, 0, 1], gw.port)),
        None,
    )
    .unwrap();
    let via_proxy = format!("ws://{}/ws", nginx.addr);

    // The owner's CLI on this host: approved at once.
    let probe = pincer(&gw, owner.path(), &["gateway", "probe", "--json"]);
    let (out, err) = text(&probe);
    assert!(probe.status.success(), "{err}");
    let probe: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(probe["protocol"], 2);
    assert!(
        probe["scopes"]
            .as_array()
            .unwrap()
            .contains(&"pairing".into())
    );
    let owner_id = probe["deviceId"].as_str().unwrap().to_owned();
    let identity = owner.path().join("identity");
    assert_eq!(mode(&identity.join("device.key")), 0o600);
    assert_eq!(mode(&identity.join("device-token.json")), 0o600);

    let health = pincer(&gw, owner.path(), &["health"]);
    assert!(health.status.success());
    assert!(text(&health).0.starts_with("healthy"));

    // The phone comes through the proxy: not local, so it waits.
    let first = pincer(&gw, phone.path(), &["status", "--url", &via_proxy]);
    let (_, err) = text(&first);
    assert!(!first.status.success());
    assert!(err.contains("waiting for the owner's approval"), "{err}");
    let phone_id = err
        .split("pincer devices approve ")
        .nth(1)
        .unwrap()
        .chars()
        .take(64)
        .collect::<String>();
    assert_ne!(phone_id, owner_id);

    let list = pincer(&gw, owner.path(), &["devices", "list", "--json"]);
    let list: Value = serde_json::from_str(&text(&list).0).unwrap();
    let entry = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["deviceId"] == phone_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["status"], "pending");
    assert_eq!(entry["client"], "pincer-cli/cli");

    let approve = pincer(
        &gw,
        owner.path(),
        &["devices", "approve", &phone_id, "--scopes", "read"],
    );
    let (out, err) = text(&approve);
    assert!(approve.status.success(), "{err}");
    assert_eq!(out.trim(), format!("{phone_id}: approved (read)"));

    let status = pincer(&gw, phone.path(), &["status", "--url", &via_proxy]);
    let (out, err) = text(&status);
    assert!(status.status.success(), "{err}");
    assert!(out.contains("devices   2 approved, 0 pending"), "{out}");

    // Granted read only: pairing and write methods are refused.
    let refused = pincer(&gw, phone.path(), &["devices", "list", "--url", &via_proxy]);
    let (_, err) = text(&refused);
    assert!(!refused.status.success());
    assert!(
        err.contains("forbidden") && err.contains("pairing"),
        "{err}"
    );
    let chat = pincer(
        &gw,
        phone.path(),
        &["chat", "-m", "hi", "--url", &via_proxy],
    );
    let (_, err) = text(&chat);
    assert!(!chat.status.success());
    assert!(err.contains("forbidden") && err.contains("write"), "{err}");

    // Revoked: the stored token stops working and the device waits again.
    let revoke = pincer(&gw, owner.path(), &["devices", "revoke", &phone_id]);
    assert!(revoke.status.success(), "{}", text(&revoke).1);
    let after = pincer(&gw, phone.path(), &["status", "--url", &via_proxy]);
    let (_, err) = text(&after);
    assert!(!after.status.success());
    assert!(err.contains("waiting for the owner's approval"), "{err}");

    let status = pincer(&gw, owner.path(), &["status"]);
    let (out, _) = text(&status);
    assert!(out.contains("devices   1 approved, 1 pending"), "{out}");
}
