//! Turn overhead through the whole stack: `pincer up` (gateway, agent, executor as real
//! processes), an instant fake LLM in this process, one operator WebSocket connection.
//! Measures `chat.send` → final `chat` event, sequentially and with concurrent sessions.
//!
//!   cargo bench -p pincer --bench turn_overhead            (build the service binaries first:
//!   cargo build --release --workspace --bins)
//!
//! Prints numbers; asserts nothing about them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pincer::device::DeviceIdentity;
use pincer::gateway_client::{ClientAuth, GatewayClient, Incoming};
use pincer_identity::{ClientMode, DeviceKey};
use pincer_testkit::{FakeLlm, FakeLlmOptions};
use serde_json::{Value, json};

const TOKEN: &str = "bench-operator-token-0123456789abcdef0123";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn one_turn(client: &mut GatewayClient, session: &str, text: &str) -> Duration {
    let key = uuid::Uuid::new_v4().to_string();
    let start = Instant::now();
    client
        .send(
            "chat.send",
            json!({ "text": text, "session": session, "idempotencyKey": key }),
        )
        .await
        .unwrap();
    loop {
        if let Incoming::Event { event, payload } = client.next().await.unwrap() {
            let mine = payload.get("runId").and_then(Value::as_str) == Some(&key);
            if event == "chat"
                && mine
                && payload.get("state").and_then(Value::as_str) == Some("final")
            {
                return start.elapsed();
            }
        }
    }
}

fn report(label: &str, mut samples: Vec<Duration>, wall: Duration) {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "{label}: n={} p50={:.2}ms p99={:.2}ms max={:.2}ms throughput={:.1} turns/s",
        samples.len(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3,
        samples.len() as f64 / wall.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let bin_dir = std::env::var_os("PINCER_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("target"));
            target.join("release")
        });
    let llm = FakeLlm::start(FakeLlmOptions::default()).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let [op, gw, agent, exec] = [free_port(), free_port(), free_port(), free_port()];
    let config = format!(
        r#"{{ gateway: {{ port: {op}, auth: {{ token: "{TOKEN}" }}, writeRateLimit: {{ burst: 100000, perMinute: 1000000 }} }},
  services: {{ gateway: {{ listen: "127.0.0.1:{gw}" }}, agent: {{ listen: "127.0.0.1:{agent}" }}, executor: {{ listen: "127.0.0.1:{exec}" }} }},
  models: {{ providers: {{ fake: {{ api: "openai-chat", baseUrl: "{}/v1", apiKey: "k" }} }} }},
  agents: {{ defaults: {{ model: "fake/bench", historyLimit: 10 }} }},
  logging: {{ level: "warn" }} }}"#,
        llm.base_url()
    );
    let config_path = state.path().join("pincer.json5");
    pincer_runtime::paths::write_private_file(&config_path, config.as_bytes()).unwrap();
    let mut up = tokio::process::Command::new(bin_dir.join("pincer"))
        .args([
            "--config",
            config_path.to_str().unwrap(),
            "up",
            "--bin-dir",
            bin_dir.to_str().unwrap(),
        ])
        .env("PINCER_STATE_DIR", state.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("run `cargo build --release --workspace --bins` first");
    let url = format!("ws://127.0.0.1:{op}/ws");
    let auth = ClientAuth::Token(pincer_runtime::Secret::new(TOKEN));
    let mut identity = DeviceIdentity::ephemeral(DeviceKey::generate());
    let mut client = loop {
        match GatewayClient::connect(&url, &auth, &mut identity, ClientMode::Cli).await {
            Ok((c, _)) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    for i in 0..20 {
        one_turn(&mut client, "warmup", &format!("warm {i}")).await;
    }
    let started = Instant::now();
    let mut samples = Vec::new();
    for i in 0..300 {
        samples.push(one_turn(&mut client, &format!("s{}", i % 50), &format!("hello {i}")).await);
    }
    report("concurrency 1", samples, started.elapsed());

    for concurrency in [8usize, 32] {
        let mut clients = Vec::new();
        for _ in 0..concurrency {
            let (c, _) = GatewayClient::connect(&url, &auth, &mut identity, ClientMode::Cli)
                .await
                .unwrap();
            clients.push(c);
        }
        let started = Instant::now();
        let tasks: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(c, mut client)| {
                tokio::spawn(async move {
                    let mut samples = Vec::new();
                    for i in 0..40 {
                        samples.push(
                            one_turn(
                                &mut client,
                                &format!("c{concurrency}-{c}"),
                                &format!("hi {i}"),
                            )
                            .await,
                        );
                    }
                    samples
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        report(
            &format!("concurrency {concurrency}"),
            all,
            started.elapsed(),
        );
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(up.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(60), up.wait()).await;
}
