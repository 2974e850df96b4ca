//! End to end through `pincer up`: the four services as real processes, a fake Telegram and
//! a fake LLM in this test process, the exec tool in the default sandbox (the jail; the
//! Docker backend is exercised end to end by the compose test).
//!
//! Needs the service binaries next to `pincer` (`cargo build --workspace --bins`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/bins.rs"]
mod bins;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pincer_testkit::{
    FakeLlm, FakeLlmOptions, FakeTelegram, FakeTelegramOptions, InjectMessage, Step,
};
use tokio::process::{Child, Command};

use bins::{bin_dir, free_port};

const LLM_KEY: &str = "e2e-llm-key-3b1f";
const BOT_TOKEN: &str = "424242:E2E-canary-bot-token";
const OWNER: i64 = 1001;
const STRANGER: i64 = 2002;
const WAIT: Duration = Duration::from_secs(90);

fn write_config(dir: &Path, workspaces: &Path, llm: &FakeLlm, tg: &FakeTelegram) -> (PathBuf, u16) {
    let [op, gw, agent, exec] = [free_port(), free_port(), free_port(), free_port()];
    let text = format!(
        r#"{{
  gateway: {{ port: {op}, auth: {{ token: "e2e-operator-token-0123456789abcdef0123" }} }},
  services: {{
    gateway: {{ listen: "127.0.0.1:{gw}" }},
    agent: {{ listen: "127.0.0.1:{agent}" }},
    executor: {{ listen: "127.0.0.1:{exec}" }},
  }},
  models: {{ providers: {{ fake: {{ api: "openai-chat", baseUrl: "{llm}/v1", apiKey: "${{E2E_LLM_KEY}}" }} }} }},
  agents: {{ defaults: {{ model: "fake/e2e" }} }},
  channels: {{ telegram: {{ botToken: "${{E2E_BOT_TOKEN}}", apiBaseUrl: "{tg}", allowFrom: ["{OWNER}"], pollTimeoutSeconds: 1 }} }},
  tools: {{ exec: {{ timeoutSeconds: 60 }} }},
  executor: {{ workspaceRoot: "{ws}" }},
}}"#,
        llm = llm.base_url(),
        tg = tg.base_url(),
        ws = workspaces.display(),
    );
    let path = dir.join("pincer.json5");
    pincer_runtime::paths::write_private_file(&path, text.as_bytes()).unwrap();
    (path, op)
}

fn pincer(state: &Path, config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pincer"));
    cmd.arg("--config")
        .arg(config)
        .env("PINCER_STATE_DIR", state)
        .env("PINCER_BIN_DIR", bin_dir())
        .env("E2E_LLM_KEY", LLM_KEY)
        .env("E2E_BOT_TOKEN", BOT_TOKEN)
        .env("RUST_LOG", "info");
    cmd
}

async fn wait_ready(port: u16) {
    assert!(
        bins::wait_ready(port, Duration::from_secs(60))
            .await
            .is_some(),
        "gateway never became ready on port {port}"
    );
}

async fn sigterm_and_wait(mut up: Child) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(up.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(90), up.wait())
        .await
        .expect("pincer up stops")
        .unwrap();
    assert!(status.success(), "pincer up exited with {status}");
}

fn sent_to(tg: &FakeTelegram, chat: i64) -> Vec<String> {
    tg.sent_messages()
        .into_iter()
        .filter(|m| m.chat_id == chat)
        .map(|m| m.text)
        .collect()
}

async fn wait_for_reply_count(tg: &FakeTelegram, chat: i64, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let sent = sent_to(tg, chat);
        if sent.len() >= n {
            return sent;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {WAIT:?} for {n} replies to {chat}, got {sent:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_dm_exec_chat_and_gateway_restart() {
    let llm = FakeLlm::start(FakeLlmOptions {
        openai_api_key: Some(LLM_KEY.into()),
        anthropic_api_key: None,
    })
    .await
    .unwrap();
    let tg = FakeTelegram::start(FakeTelegramOptions {
        token: BOT_TOKEN.into(),
        ..FakeTelegramOptions::default()
    })
    .await
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    // The jail runs commands as the sandbox user (uid 10001 under root), which must be
    // able to enter the workspaces; `pincer up` keeps the state directory 0700.
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        shared.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .unwrap();
    let workspaces = shared.path().join("workspaces");
    let (config, op_port) = write_config(state.path(), &workspaces, &llm, &tg);

    let log_path = state.path().join("up.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let up = pincer(state.path(), &config)
        .arg("up")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_ready(op_port).await;

    // 1. A DM from the owner reaches the model; the reply reaches the chat, as a reply.
    tg.inject_message(InjectMessage::private(OWNER, "hello"))
        .unwrap();
    let replies = wait_for_reply_count(&tg, OWNER, 1).await;
    assert_eq!(replies[0], "You said: hello");
    assert!(
        tg.chat_actions()
            .iter()
            .any(|a| a.chat_id == OWNER && a.action == "typing"),
        "typing indicator shown"
    );

    // 2. A stranger is not on the allowlist: stored, never answered.
    tg.inject_message(InjectMessage::private(STRANGER, "hello?"))
        .unwrap();

    // 3. The model calls exec; it runs in a jail; the output comes back.
    tg.inject_message(InjectMessage::private(
        OWNER,
        "run: echo hi > note.txt && cat note.txt",
    ))
    .unwrap();
    let replies = wait_for_reply_count(&tg, OWNER, 2).await;
    assert!(
        replies[1].contains("hi"),
        "exec output in the reply: {:?}",
        replies[1]
    );
    let note = std::fs::read_to_string(workspaces.join("main/note.txt")).unwrap();
    assert_eq!(note, "hi\n");

    // 4. `pincer chat -m` goes through the operator API.
    let out = pincer(state.path(), &config)
        .args(["chat", "-m", "ping"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "pincer chat failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "You said: ping"
    );

    // 4b. Interactive `pincer chat`: one line in, the streamed reply out, EOF quits.
    let mut chat = pincer(state.path(), &config)
        .arg("chat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = chat.stdin.take().unwrap();
        stdin.write_all(b"first line\nsecond line\n").await.unwrap();
    }
    let out = tokio::time::timeout(WAIT, chat.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "interactive chat failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("You said: first line") && stdout.contains("You said: second line"),
        "{stdout}"
    );

    // 5. Kill the gateway mid-turn: the supervisor restarts it, the accepted message is
    //    answered, exactly once.
    let before = llm.request_count();
    llm.push(Step::SlowText {
        text: "this answer is slow and will be cut off by the crash".into(),
        chunk_delay: Duration::from_millis(400),
    });
    tg.inject_message(InjectMessage::private(OWNER, "survive a crash"))
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while llm.request_count() == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the turn never reached the model"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid: i32 = std::fs::read_to_string(state.path().join("run/gateway.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let replies = wait_for_reply_count(&tg, OWNER, 3).await;
    assert!(
        replies[2].contains("survive a crash") || replies[2].contains("slow"),
        "{:?}",
        replies[2]
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let replies = sent_to(&tg, OWNER);
    assert_eq!(replies.len(), 3, "no reply sent twice: {replies:?}");
    // Under the default `dmPolicy: "pairing"` the stranger gets one pairing code, never an
    // answer from the model.
    let to_stranger = sent_to(&tg, STRANGER);
    assert_eq!(to_stranger.len(), 1, "{to_stranger:?}");
    assert!(
        to_stranger[0].contains("pairing code"),
        "the stranger got no answer: {to_stranger:?}"
    );

    sigterm_and_wait(up).await;

    // Secrets stay where they belong: the bot token and LLM key never reach the logs.
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        !logs.contains(BOT_TOKEN) && !logs.contains(LLM_KEY),
        "a secret leaked into the logs"
    );
    assert_eq!(
        pincer_runtime::paths::mode(state.path().join("gateway.db").as_path()).unwrap() & 0o077,
        0
    );
    llm.shutdown().await;
    tg.shutdown().await;
}
