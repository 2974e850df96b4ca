//! Exec approvals end to end, as a user meets them: real `pincer-gateway` and
//! `pincer-executor` processes (jail backend, no Docker), the owner answering with
//! `pincer approvals list|resolve`. The test plays the agent: it signs turn grants with the
//! gateway's own grant key (read from the gateway's state directory, exactly what the
//! gateway signs each turn) and calls the executor over gRPC with the agent credential.
//!
//! Approve `ls` once: it runs. Then `ls` again, `ls; rm -rf x`, `ls` with a changed
//! environment and `ls` in another directory are each a new request, and with nobody
//! answering they are refused (`askFallback: deny`) — `x` survives.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pincer_identity::DeviceKey;
use pincer_proto::v1::executor_service_client::ExecutorServiceClient;
use pincer_proto::v1::{
    ExecAsk, ExecPolicy, ExecRequest, ExecResponse, ExecSecurity, GrantClaims, NetworkAccess,
    TurnGrant, WorkspaceAccess, exec_request,
};
use pincer_runtime::Secret;
use pincer_runtime::service_auth::{PresentCredential, ServiceName};
use prost::Message;
use serde_json::Value;

struct Stack {
    children: Vec<Child>,
    config: PathBuf,
    gateway_state: PathBuf,
    workspaces: PathBuf,
    executor: u16,
    dir: tempfile::TempDir,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn bin(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_pincer"))
        .parent()
        .unwrap()
        .join(name);
    assert!(
        p.is_file(),
        "build the service binaries first: cargo build --workspace --bins"
    );
    p
}

fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start() -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let (port, grpc, executor) = (free_port(), free_port(), free_port());
    let workspaces = dir.path().join("workspaces");
    let config = dir.path().join("pincer.json5");
    let text = format!(
        r#"{{ gateway: {{ port: {port}, auth: {{ token: "approvals-test-operator-token-0123456789" }} }},
  models: {{ providers: {{ p: {{ api: "anthropic", baseUrl: "http://127.0.0.1:9/v1" }} }} }},
  agents: {{ defaults: {{ model: "p/m" }} }},
  tools: {{ exec: {{ security: "allowlist", ask: "on-miss", askFallback: "deny", approvalTimeoutSeconds: 3 }} }},
  executor: {{ backend: "jail", workspaceRoot: "{ws}" }},
  services: {{ gateway: {{ listen: "127.0.0.1:{grpc}" }}, executor: {{ listen: "127.0.0.1:{executor}" }},
              credentials: {{ gateway: "g-cred", bridge: "b-cred", agent: "a-cred", executor: "e-cred" }} }} }}"#,
        ws = workspaces.display()
    );
    pincer_runtime::paths::write_private_file(&config, text.as_bytes()).unwrap();
    let gateway_state = dir.path().join("gateway-state");
    let spawn = |name: &str, state: &Path| {
        Command::new(bin(name))
            .args(["--config", config.to_str().unwrap(), "--state-dir"])
            .arg(state)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    };
    let gateway = spawn("pincer-gateway", &gateway_state);
    wait_port(port, "the gateway");
    wait_port(grpc, "the gateway's gRPC");
    let exec = spawn("pincer-executor", &dir.path().join("executor-state"));
    wait_port(executor, "the executor");
    Stack {
        children: vec![gateway, exec],
        config,
        gateway_state,
        workspaces,
        executor,
        dir,
    }
}

fn pincer(stack: &Stack, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pincer"))
        .arg("--config")
        .arg(&stack.config)
        .args(args)
        .env("PINCER_STATE_DIR", stack.dir.path().join("owner"))
        .output()
        .unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A grant as the gateway signs it for a DM turn under this config.
fn grant(stack: &Stack, session: &str) -> TurnGrant {
    let (key, _) =
        DeviceKey::load_or_generate(&stack.gateway_state.join("keys/grant.key")).unwrap();
    let claims = GrantClaims {
        turn_id: "turn-1".into(),
        session_key: session.into(),
        agent_id: "main".into(),
        allowed_tools: vec!["exec".into()],
        expires_at_ms: now_ms() + 600_000,
        workspace_access: WorkspaceAccess::ReadWrite.into(),
        network: NetworkAccess::None.into(),
        exec_policy: Some(ExecPolicy {
            security: ExecSecurity::Allowlist.into(),
            ask: ExecAsk::OnMiss.into(),
            ask_fallback: ExecSecurity::Deny.into(),
            allowlist: Vec::new(),
            safe_bins: true,
        }),
        sandbox: None,
    }
    .encode_to_vec();
    TurnGrant {
        signature: pincer_identity::sign_grant(&key, &claims)
            .as_bytes()
            .to_vec(),
        claims,
        key_id: key.device_id().to_string(),
    }
}

fn request(stack: &Stack, line: &str, cwd: &str, env: &[(&str, &str)]) -> ExecRequest {
    ExecRequest {
        grant: Some(grant(stack, "s1")),
        session_key: "s1".into(),
        command: Some(exec_request::Command::Shell(line.into())),
        cwd: cwd.into(),
        timeout_ms: 10_000,
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

async fn exec(port: u16, req: ExecRequest) -> Result<ExecResponse, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let cred = PresentCredential::new(ServiceName::Agent, &Secret::new("a-cred")).unwrap();
    ExecutorServiceClient::with_interceptor(channel, cred)
        .exec(req)
        .await
        .map(tonic::Response::into_inner)
}

fn approvals(stack: &Stack) -> Vec<Value> {
    let out = pincer(stack, &["approvals", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["approvals"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_ls_once_then_every_variant_is_a_new_request() {
    let stack = start();
    std::fs::create_dir_all(stack.workspaces.join("main")).unwrap();
    std::fs::write(stack.workspaces.join("main/x"), "keep me").unwrap();

    // The agent runs `ls`; nothing covers it, so the executor asks and waits.
    let port = stack.executor;
    let first = tokio::spawn(exec(port, request(&stack, "ls", "", &[])));
    let deadline = Instant::now() + Duration::from_secs(20);
    let pending = loop {
        let list = tokio::task::block_in_place(|| approvals(&stack));
        if let Some(a) = list.into_iter().find(|a| a["state"] == "pending") {
            break a;
        }
        assert!(Instant::now() < deadline, "no approval request appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(pending["command"], "ls");
    assert_eq!(pending["sessionKey"], "s1");
    let exe = pending["executables"][0].as_str().unwrap().to_owned();
    assert!(exe.ends_with("/ls") && exe.starts_with('/'), "{exe}");
    let id = pending["id"].as_str().unwrap().to_owned();
    let out = tokio::task::block_in_place(|| {
        pincer(&stack, &["approvals", "resolve", &id, "allow-once"])
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{id}: allowed-once")
    );
    let ran = first.await.unwrap().expect("approved ls runs");
    assert_eq!(ran.exit_code, 0, "{}", String::from_utf8_lossy(&ran.stderr));
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "x\n");

    // Nobody answers now: each of these is a new request and is refused after the wait.
    let (again, chained, env, cwd) = tokio::join!(
        exec(port, request(&stack, "ls", "", &[])),
        exec(port, request(&stack, "ls; rm -rf x", "", &[])),
        exec(port, request(&stack, "ls", "", &[("LS_COLORS", "x")])),
        exec(port, request(&stack, "ls", "sub", &[])),
    );
    for (what, r) in [
        ("again", again),
        ("chained", chained),
        ("env", env),
        ("cwd", cwd),
    ] {
        let status = r.expect_err(what);
        assert_eq!(
            status.code(),
            tonic::Code::PermissionDenied,
            "{what}: {status:?}"
        );
        assert!(
            status.message().contains("pincer approvals resolve apr_"),
            "{what}: {}",
            status.message()
        );
    }
    assert_eq!(
        std::fs::read_to_string(stack.workspaces.join("main/x")).unwrap(),
        "keep me"
    );
    let list = tokio::task::block_in_place(|| approvals(&stack));
    let pending: Vec<&Value> = list.iter().filter(|a| a["state"] == "pending").collect();
    assert_eq!(pending.len(), 4, "{list:?}");
    let commands: Vec<&str> = pending
        .iter()
        .map(|a| a["command"].as_str().unwrap())
        .collect();
    assert!(commands.contains(&"ls; rm -rf x"), "{commands:?}");
    assert!(
        list.iter()
            .any(|a| a["id"] == id.as_str() && a["state"] == "used"),
        "{list:?}"
    );
}
