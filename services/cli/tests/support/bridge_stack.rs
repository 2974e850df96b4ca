//! The multi-replica stack the failover tests and the ingest benchmark share: one gateway,
//! one agent and `pincer-bridge` replicas as real processes, four fake Telegram Bot APIs and
//! a fake LLM in this process.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pincer_testkit::{FakeLlm, FakeLlmOptions, FakeTelegram, FakeTelegramOptions};
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::bins::{bin_dir, free_port, wait_ready};

pub const ACCOUNTS: [&str; 4] = ["alpha", "bravo", "charlie", "delta"];
pub const REPLICAS: [&str; 3] = ["replica-1", "replica-2", "replica-3"];
pub const PER_ACCOUNT: usize = 24;
/// Generous: the machine may be loaded; only the failover bound is a timing assertion.
pub const WAIT: Duration = Duration::from_secs(120);
/// The issue's bound on moving a dead replica's accounts.
pub const FAILOVER_BOUND: Duration = Duration::from_secs(10);

pub fn token(i: usize) -> String {
    format!("{}:failover-bot-token-{i}", 700_000 + i)
}

pub struct Stack {
    dir: tempfile::TempDir,
    config: PathBuf,
    op_port: u16,
    llm: FakeLlm,
    bots: Vec<FakeTelegram>,
    services: Vec<Child>,
    pub bridges: BTreeMap<String, Child>,
}

impl Stack {
    pub async fn start() -> Self {
        Self::start_with(&REPLICAS).await
    }

    pub async fn start_with(replicas: &[&str]) -> Self {
        let llm = FakeLlm::start(FakeLlmOptions::default()).await.unwrap();
        let mut bots = Vec::new();
        for i in 0..ACCOUNTS.len() {
            let options = FakeTelegramOptions {
                token: token(i),
                bot_username: format!("failover{i}_bot"),
                bot_id: 700_000 + i as i64,
            };
            bots.push(FakeTelegram::start(options).await.unwrap());
        }
        let dir = tempfile::tempdir().unwrap();
        let [op, gw, agent, exec] = [free_port(), free_port(), free_port(), free_port()];
        let accounts: Vec<String> = ACCOUNTS
            .iter()
            .enumerate()
            .map(|(i, id)| {
                format!(
                    r#"{id}: {{ botToken: "${{FAILOVER_BOT_{i}}}", apiBaseUrl: "{}" }}"#,
                    bots[i].base_url()
                )
            })
            .collect();
        let text = format!(
            r#"{{
  gateway: {{ port: {op}, auth: {{ token: "failover-operator-token-0123456789abcdef" }} }},
  services: {{
    gateway: {{ listen: "127.0.0.1:{gw}" }},
    agent: {{ listen: "127.0.0.1:{agent}" }},
    executor: {{ listen: "127.0.0.1:{exec}" }},
  }},
  models: {{ providers: {{ fake: {{ api: "openai-chat", baseUrl: "{llm}/v1", apiKey: "failover-llm-key" }} }} }},
  agents: {{ defaults: {{ model: "fake/failover" }} }},
  channels: {{ telegram: {{ dmPolicy: "open", allowFrom: ["*"], accounts: {{ {accounts} }} }} }},
}}"#,
            llm = llm.base_url(),
            accounts = accounts.join(", "),
        );
        let config = dir.path().join("pincer.json5");
        pincer_runtime::paths::write_private_file(&config, text.as_bytes()).unwrap();
        let mut stack = Self {
            dir,
            config,
            op_port: op,
            llm,
            bots,
            services: Vec::new(),
            bridges: BTreeMap::new(),
        };
        let gateway = stack.spawn("pincer-gateway", "gateway", None);
        stack.services.push(gateway);
        let agent = stack.spawn("pincer-agent", "agent", None);
        stack.services.push(agent);
        stack.wait_ready().await;
        for replica in replicas {
            let child = stack.spawn("pincer-bridge", replica, Some(replica));
            stack.bridges.insert((*replica).to_owned(), child);
        }
        stack
    }

    pub fn spawn(&self, binary: &str, log: &str, replica: Option<&str>) -> Child {
        let state = self.dir.path().join(format!("state-{log}"));
        std::fs::create_dir_all(&state).unwrap();
        let log = std::fs::File::create(self.dir.path().join(format!("{log}.log"))).unwrap();
        let mut cmd = Command::new(bin_dir().join(binary));
        cmd.arg("--config")
            .arg(&self.config)
            .arg("--state-dir")
            .arg(&state)
            .env(
                "PINCER_GATEWAY_CREDENTIAL",
                "failover-gateway-credential-0123456789ab",
            )
            .env(
                "PINCER_BRIDGE_CREDENTIAL",
                "failover-bridge-credential-0123456789ab",
            )
            .env(
                "PINCER_AGENT_CREDENTIAL",
                "failover-agent-credential-0123456789abc",
            )
            .env(
                "PINCER_EXECUTOR_CREDENTIAL",
                "failover-executor-credential-012345678",
            )
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        for i in 0..ACCOUNTS.len() {
            cmd.env(format!("FAILOVER_BOT_{i}"), token(i));
        }
        if let Some(replica) = replica {
            cmd.env("PINCER_BRIDGE_REPLICA_ID", replica);
        }
        cmd.spawn().unwrap()
    }

    pub async fn wait_ready(&self) {
        assert!(
            wait_ready(self.op_port, WAIT).await.is_some(),
            "gateway never became ready on port {}",
            self.op_port
        );
    }

    /// `pincer channels status --json`.
    pub async fn channels_status(&self) -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_pincer"))
            .arg("--config")
            .arg(&self.config)
            .args(["channels", "status", "--json"])
            .env("PINCER_STATE_DIR", self.dir.path().join("state-cli"))
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "pincer channels status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Account → holding replica, for accounts that are served right now.
    pub async fn holders(&self) -> BTreeMap<String, String> {
        let status = self.channels_status().await;
        status["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["connected"] == Value::Bool(true))
            .map(|a| {
                (
                    a["accountId"].as_str().unwrap().to_owned(),
                    a["replica"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// Waits until all four accounts are served, none by a replica in `not_by`.
    pub async fn wait_served(&self, not_by: &[&str]) -> BTreeMap<String, String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let holders = self.holders().await;
            if holders.len() == ACCOUNTS.len()
                && holders.values().all(|r| !not_by.contains(&r.as_str()))
            {
                return holders;
            }
            assert!(
                Instant::now() < deadline,
                "accounts not all served: {holders:?}; logs in {}",
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn signal(&self, replica: &str, signal: Signal) {
        let pid = self.bridges[replica].id().unwrap();
        kill(Pid::from_raw(i32::try_from(pid).unwrap()), signal).unwrap();
    }

    pub fn bot(&self, account: &str) -> &FakeTelegram {
        let i = ACCOUNTS.iter().position(|a| *a == account).unwrap();
        &self.bots[i]
    }

    /// How many replies with exactly `text` the bot of `account` sent.
    pub fn replies(&self, account: &str, text: &str) -> usize {
        self.bot(account)
            .sent_messages()
            .iter()
            .filter(|m| m.text == text)
            .count()
    }

    pub async fn wait_replies(&self, expected: &[(String, String)]) {
        let deadline = Instant::now() + WAIT;
        loop {
            let missing: Vec<&(String, String)> = expected
                .iter()
                .filter(|(account, text)| self.replies(account, &format!("You said: {text}")) == 0)
                .collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} replies never sent, e.g. {:?}; logs in {}",
                missing.len(),
                missing[0],
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// How many model requests ended with the user text `text`.
    pub fn model_calls(&self, text: &str) -> usize {
        self.llm
            .requests()
            .iter()
            .filter(|r| last_user_text(&r.body).as_deref() == Some(text))
            .count()
    }
}

pub fn last_user_text(body: &Value) -> Option<String> {
    let last = body["messages"]
        .as_array()?
        .iter()
        .rev()
        .find(|m| m["role"] == "user")?;
    match &last["content"] {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<String>(),
        ),
        _ => None,
    }
}

pub fn user_of(account_index: usize, n: usize) -> i64 {
    8_000 + (account_index as i64) * 10 + (n % 3) as i64
}
