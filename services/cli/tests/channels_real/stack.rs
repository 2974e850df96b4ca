//! The whole stack as a user runs it: `pincer up` (gateway, agent, executor and bridge as
//! real processes) with a channel section pointing at a real chat server the test started,
//! and the fake LLM, whose default answer is `You said: <text>`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pincer_testkit::{FakeLlm, FakeLlmOptions};
use tokio::process::{Child, Command};

pub use crate::bins::free_port;
use crate::bins::{bin_dir, wait_ready};

pub const LLM_KEY: &str = "channels-e2e-llm-key";
/// How long a step may take end to end (the bridge connects, registers, syncs).
pub const WAIT: Duration = Duration::from_secs(60);

pub struct Stack {
    pub llm: FakeLlm,
    pub state: tempfile::TempDir,
    pub config: PathBuf,
    pub up: Option<Child>,
    pub log: PathBuf,
}

impl Stack {
    /// Starts `pincer up` with `channels` as the `channels` section (JSON5) and `env` for
    /// the secrets it references.
    pub async fn start(channels: &str, env: &[(&str, &str)]) -> Self {
        let llm = FakeLlm::start(FakeLlmOptions {
            openai_api_key: Some(LLM_KEY.into()),
            anthropic_api_key: None,
        })
        .await
        .unwrap();
        let state = tempfile::tempdir().unwrap();
        let [op, gw, agent, exec] = [free_port(), free_port(), free_port(), free_port()];
        let text = format!(
            r#"{{
  gateway: {{ port: {op}, auth: {{ token: "channels-e2e-operator-token-0123456789abcdef" }} }},
  services: {{
    gateway: {{ listen: "127.0.0.1:{gw}" }},
    agent: {{ listen: "127.0.0.1:{agent}" }},
    executor: {{ listen: "127.0.0.1:{exec}" }},
  }},
  models: {{ providers: {{ fake: {{ api: "openai-chat", baseUrl: "{llm}/v1", apiKey: "${{CHANNELS_E2E_LLM_KEY}}" }} }} }},
  agents: {{ defaults: {{ model: "fake/e2e" }} }},
  channels: {channels},
  tools: {{ exec: {{ enabled: false }} }},
  executor: {{ workspaceRoot: "{ws}" }},
}}"#,
            llm = llm.base_url(),
            ws = state.path().join("workspaces").display(),
        );
        let config = state.path().join("pincer.json5");
        pincer_runtime::paths::write_private_file(&config, text.as_bytes()).unwrap();
        let log = state.path().join("up.log");
        let mut cmd = Self::pincer_cmd(state.path(), &config);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let up = cmd
            .arg("up")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stack = Self {
            llm,
            state,
            config,
            up: Some(up),
            log,
        };
        stack.wait_ready(op).await;
        stack
    }

    fn pincer_cmd(state: &Path, config: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pincer"));
        cmd.arg("--config")
            .arg(config)
            .env("PINCER_STATE_DIR", state)
            .env("PINCER_BIN_DIR", bin_dir())
            .env("CHANNELS_E2E_LLM_KEY", LLM_KEY)
            .env("RUST_LOG", "info");
        cmd
    }

    async fn wait_ready(&self, port: u16) {
        assert!(
            wait_ready(port, WAIT).await.is_some(),
            "gateway never became ready on port {port}; log:\n{}",
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `pincer <args>` against this stack; returns (success, stdout, stderr).
    pub async fn pincer(&self, args: &[&str]) -> (bool, String, String) {
        let out = Self::pincer_cmd(self.state.path(), &self.config)
            .args(args)
            .output()
            .await
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Approves the pairing code found in `code_message` (the text the stranger got).
    pub async fn approve_code_in(&self, channel: &str, code_message: &str) {
        let code = pairing_code(code_message)
            .unwrap_or_else(|| panic!("no pairing code in {code_message:?}"));
        let (ok, out, err) = self.pincer(&["pairing", "approve", channel, &code]).await;
        assert!(ok, "pincer pairing approve failed: {out} {err}");
    }

    /// Stops `pincer up` with SIGTERM and checks it exits cleanly.
    pub async fn stop(mut self) {
        let mut up = self.up.take().unwrap();
        let pid = nix::unistd::Pid::from_raw(i32::try_from(up.id().unwrap()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = tokio::time::timeout(Duration::from_secs(60), up.wait())
            .await
            .expect("pincer up stops")
            .unwrap();
        assert!(
            status.success(),
            "pincer up exited with {status}; log:\n{}",
            self.log_text()
        );
    }
}

/// The 8-character code in a pairing message ("... pairing code: ABCD2345 ...").
pub fn pairing_code(text: &str) -> Option<String> {
    let rest = text.split("pairing code: ").nth(1)?;
    let code: String = rest
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    (code.len() == 8).then_some(code)
}

/// Polls `probe` until it returns `Some`, for at most [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, stack: &Stack, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {WAIT:?} for {what}; pincer up log:\n{}",
            stack.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
