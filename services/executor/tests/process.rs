//! Background processes (`ProcessStart`, `ProcessPoll`, `ProcessWrite`, `ProcessKill`,
//! `ProcessList`) through the real gRPC service on the jail backend (the executor binary is
//! the jail helper, as in production): stdin, incremental output, kill, timeout, limits,
//! scoping to the grant's agent and session, the grant and the approval gate, a few jail
//! guarantees and shutdown. The Docker backend's are in `docker_process.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pincer_executor::grant::{sign_claims, testing};
use pincer_executor::{ExecutorError, ExecutorSettings, GrantKeySetting, SystemClock, serve};
use pincer_proto::v1::executor_service_client::ExecutorServiceClient;
use pincer_proto::v1::{
    Argv, ExecPolicy, ExecSecurity, GrantClaims, NetworkAccess, ProcessInfo, ProcessKillRequest,
    ProcessListRequest, ProcessPollRequest, ProcessPollResponse, ProcessStartRequest, ProcessState,
    ProcessWriteRequest, TurnGrant, WorkspaceAccess, process_start_request,
};
use pincer_runtime::Secret;
use pincer_runtime::config::raw::SandboxBackend;
use pincer_runtime::secret::MapSecrets;
use pincer_runtime::service_auth::{PresentCredential, ServiceName};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const AGENT_SECRET: &str = "agent-credential-for-process-tests";
const SESSION: &str = "test:dm:1";

type Client = ExecutorServiceClient<InterceptedService<Channel, PresentCredential>>;

struct Running {
    addr: SocketAddr,
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), ExecutorError>>,
    tmp: tempfile::TempDir,
}

async fn start_on(backend: SandboxBackend) -> Running {
    let tmp = tempfile::tempdir().unwrap();
    // The sandbox user must be able to reach the workspace root.
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .unwrap();
    let text = r#"{
        models: { providers: { fake: { api: "openai-chat", baseUrl: "http://127.0.0.1:9/v1" } } },
        agents: { defaults: { model: "fake/m" } },
    }"#;
    let config = pincer_runtime::config::parse_config(text, "test").unwrap();
    let mut secrets = MapSecrets::default();
    secrets
        .env
        .insert("PINCER_AGENT_CREDENTIAL".into(), AGENT_SECRET.into());
    secrets
        .env
        .insert("PINCER_EXECUTOR_CREDENTIAL".into(), "unused".into());
    let mut settings: ExecutorSettings =
        ExecutorSettings::from_config(&config, tmp.path().join("workspaces"), &secrets).unwrap();
    settings.grant_keys = GrantKeySetting::Fixed(testing::keys());
    settings.clock = Arc::new(SystemClock);
    settings.backend = backend;
    settings.jail_helper = env!("CARGO_BIN_EXE_pincer-executor").into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(serve(settings, listener, shutdown.clone()));
    Running {
        addr,
        shutdown,
        handle,
        tmp,
    }
}

async fn start() -> Running {
    start_on(SandboxBackend::Jail).await
}

impl Running {
    async fn client(&self) -> Client {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let present =
            PresentCredential::new(ServiceName::Agent, &Secret::new(AGENT_SECRET)).unwrap();
        ExecutorServiceClient::with_interceptor(channel, present)
    }

    fn ws(&self) -> std::path::PathBuf {
        self.tmp.path().join("workspaces/main")
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("the server stops after shutdown")
            .unwrap()
            .unwrap();
    }
}

fn claims(tools: &[&str], session: &str, agent: &str, policy: ExecPolicy) -> GrantClaims {
    GrantClaims {
        turn_id: "turn-1".into(),
        session_key: session.into(),
        agent_id: agent.into(),
        allowed_tools: tools.iter().map(|t| (*t).to_owned()).collect(),
        expires_at_ms: pincer_executor::Clock::now_ms(&SystemClock) + 600_000,
        workspace_access: WorkspaceAccess::ReadWrite.into(),
        network: NetworkAccess::None.into(),
        exec_policy: Some(policy),
        sandbox: None,
    }
}

/// A grant for `process` in [`SESSION`] for agent `main`, `security: full`.
fn grant() -> Option<TurnGrant> {
    grant_for(SESSION, "main")
}

fn grant_for(session: &str, agent: &str) -> Option<TurnGrant> {
    Some(sign_claims(
        &testing::gateway_key(),
        &claims(&["process"], session, agent, testing::full_exec_policy()),
    ))
}

fn shell(line: &str) -> ProcessStartRequest {
    ProcessStartRequest {
        grant: grant(),
        session_key: SESSION.into(),
        command: Some(process_start_request::Command::Shell(line.into())),
        ..Default::default()
    }
}

async fn start_process(c: &mut Client, req: ProcessStartRequest) -> ProcessInfo {
    c.process_start(req)
        .await
        .unwrap()
        .into_inner()
        .process
        .unwrap()
}

fn poll_req(id: &str, wait_ms: u32) -> ProcessPollRequest {
    ProcessPollRequest {
        grant: grant(),
        session_key: SESSION.into(),
        process_id: id.into(),
        wait_ms,
    }
}

fn kill_req(id: &str) -> ProcessKillRequest {
    ProcessKillRequest {
        grant: grant(),
        session_key: SESSION.into(),
        process_id: id.into(),
    }
}

fn write_req(id: &str, data: &[u8], close_stdin: bool) -> ProcessWriteRequest {
    ProcessWriteRequest {
        grant: grant(),
        session_key: SESSION.into(),
        process_id: id.into(),
        data: data.to_vec(),
        close_stdin,
    }
}

/// Polls until the process has ended (at most 20 s), gathering its output.
async fn until_end(c: &mut Client, id: &str) -> (ProcessInfo, String, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut out, mut err) = (String::new(), String::new());
    loop {
        let r = c
            .process_poll(poll_req(id, 5_000))
            .await
            .unwrap()
            .into_inner();
        out.push_str(&String::from_utf8_lossy(&r.stdout));
        err.push_str(&String::from_utf8_lossy(&r.stderr));
        let info = r.process.unwrap();
        if info.state() != ProcessState::Running {
            return (info, out, err);
        }
        assert!(Instant::now() < deadline, "{id} still runs: {out} {err}");
    }
}

/// Polls until stdout holds `want` (at most 20 s).
async fn until_stdout(c: &mut Client, id: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = String::new();
    while !out.contains(want) {
        assert!(Instant::now() < deadline, "no {want:?} in {out:?}");
        let r: ProcessPollResponse = c
            .process_poll(poll_req(id, 5_000))
            .await
            .unwrap()
            .into_inner();
        out.push_str(&String::from_utf8_lossy(&r.stdout));
    }
    out
}

fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn cat_echoes_stdin_and_exits_when_it_is_closed() {
    let server = start().await;
    let mut c = server.client().await;
    let started = start_process(
        &mut c,
        ProcessStartRequest {
            command: Some(process_start_request::Command::Argv(Argv {
                args: vec!["cat".into()],
            })),
            ..shell("unused")
        },
    )
    .await;
    assert_eq!(started.state(), ProcessState::Running);
    assert!(started.process_id.starts_with("proc_"), "{started:?}");
    assert_eq!(started.command, "cat");
    let id = started.process_id;
    let w = c
        .process_write(write_req(&id, b"hello\n", false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.bytes_written, 6);
    assert_eq!(until_stdout(&mut c, &id, "hello\n").await, "hello\n");
    c.process_write(write_req(&id, b"", true)).await.unwrap();
    let (info, out, _) = until_end(&mut c, &id).await;
    assert_eq!(
        (info.state(), info.exit_code, out.as_str()),
        (ProcessState::Exited, 0, "")
    );
    let e = c
        .process_write(write_req(&id, b"late", false))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("stdin is closed"), "{}", e.message());
    server.stop().await;
}

#[tokio::test]
async fn output_is_incremental_across_polls() {
    let server = start().await;
    let mut c = server.client().await;
    let id = start_process(&mut c, shell("echo one; read x; echo two; echo err >&2"))
        .await
        .process_id;
    assert_eq!(until_stdout(&mut c, &id, "one\n").await, "one\n");
    let quiet = c
        .process_poll(poll_req(&id, 300))
        .await
        .unwrap()
        .into_inner();
    assert!(quiet.stdout.is_empty(), "nothing new before the input");
    assert_eq!(quiet.process.unwrap().state(), ProcessState::Running);
    c.process_write(write_req(&id, b"go\n", false))
        .await
        .unwrap();
    let (info, out, err) = until_end(&mut c, &id).await;
    assert_eq!((out.as_str(), err.as_str()), ("two\n", "err\n"));
    assert_eq!(info.state(), ProcessState::Exited);
    server.stop().await;
}

#[tokio::test]
async fn kill_ends_the_process_and_everything_it_started() {
    let server = start().await;
    let mut c = server.client().await;
    let id = start_process(
        &mut c,
        shell("sleep 300 & echo $$ $!; sleep 3; touch marker; wait"),
    )
    .await
    .process_id;
    let out = until_stdout(&mut c, &id, "\n").await;
    let pids: Vec<i32> = out.split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert_eq!(pids.len(), 2, "{out}");
    assert!(pids.iter().all(|&p| alive(p)));
    let killed = c.process_kill(kill_req(&id)).await.unwrap().into_inner();
    assert_eq!(killed.process.unwrap().state(), ProcessState::Killed);
    for pid in pids {
        assert!(!alive(pid), "{pid} survived the kill");
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(!server.ws().join("marker").exists(), "the shell ran on");
    // Polling a killed process still answers, and a second kill is harmless.
    let after = c.process_poll(poll_req(&id, 0)).await.unwrap().into_inner();
    assert_eq!(after.process.unwrap().state(), ProcessState::Killed);
    let again = c.process_kill(kill_req(&id)).await.unwrap().into_inner();
    assert_eq!(again.process.unwrap().state(), ProcessState::Killed);
    server.stop().await;
}

#[tokio::test]
async fn the_timeout_kills_the_process() {
    let server = start().await;
    let mut c = server.client().await;
    let id = start_process(
        &mut c,
        ProcessStartRequest {
            timeout_ms: 1_000,
            ..shell("echo $$; exec sleep 300")
        },
    )
    .await
    .process_id;
    let pid: i32 = until_stdout(&mut c, &id, "\n")
        .await
        .trim()
        .parse()
        .unwrap();
    let (info, _, _) = until_end(&mut c, &id).await;
    assert_eq!(info.state(), ProcessState::TimedOut);
    assert!(
        info.duration_ms >= 1_000 && info.duration_ms < 8_000,
        "{info:?}"
    );
    assert!(!alive(pid));
    server.stop().await;
}

#[tokio::test]
async fn an_agent_may_run_at_most_eight() {
    let server = start().await;
    let mut c = server.client().await;
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(start_process(&mut c, shell("sleep 300")).await.process_id);
    }
    let e = c.process_start(shell("sleep 300")).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("for this agent"), "{}", e.message());
    // Another agent is not held back by this one's processes.
    let other = start_process(
        &mut c,
        ProcessStartRequest {
            grant: grant_for(SESSION, "other"),
            ..shell("true")
        },
    )
    .await;
    assert!(other.process_id.starts_with("proc_"));
    // Ending one makes room.
    c.process_kill(kill_req(&ids[0])).await.unwrap();
    ids[0] = start_process(&mut c, shell("sleep 300")).await.process_id;
    let listed = c
        .process_list(ProcessListRequest {
            grant: grant(),
            session_key: SESSION.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .processes;
    assert_eq!(listed.len(), 9, "8 running and the killed one");
    server.stop().await;
}

#[tokio::test]
async fn another_session_or_agent_cannot_see_the_process() {
    let server = start().await;
    let mut c = server.client().await;
    let id = start_process(&mut c, shell("sleep 300")).await.process_id;
    for (session, agent) in [("test:dm:2", "main"), (SESSION, "other")] {
        let g = grant_for(session, agent);
        let poll = ProcessPollRequest {
            grant: g.clone(),
            session_key: session.into(),
            ..poll_req(&id, 0)
        };
        let kill = ProcessKillRequest {
            grant: g.clone(),
            session_key: session.into(),
            ..kill_req(&id)
        };
        let write = ProcessWriteRequest {
            grant: g.clone(),
            session_key: session.into(),
            ..write_req(&id, b"x", false)
        };
        for e in [
            c.process_poll(poll).await.unwrap_err(),
            c.process_kill(kill).await.unwrap_err(),
            c.process_write(write).await.unwrap_err(),
        ] {
            assert_eq!(e.code(), Code::NotFound, "{e:?}");
        }
        let unknown = c
            .process_poll(ProcessPollRequest {
                grant: g.clone(),
                session_key: session.into(),
                ..poll_req("proc_abcdefghijkm", 0)
            })
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), Code::NotFound);
        let listed = c
            .process_list(ProcessListRequest {
                grant: g,
                session_key: session.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(listed.processes.is_empty());
    }
    let still = c.process_poll(poll_req(&id, 0)).await.unwrap().into_inner();
    assert_eq!(still.process.unwrap().state(), ProcessState::Running);
    let bad = c
        .process_poll(poll_req("../etc/passwd", 0))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    server.stop().await;
}

#[tokio::test]
async fn the_grant_must_allow_process() {
    let server = start().await;
    let mut c = server.client().await;
    let exec_only = Some(sign_claims(
        &testing::gateway_key(),
        &claims(&["exec"], SESSION, "main", testing::full_exec_policy()),
    ));
    let e = c
        .process_start(ProcessStartRequest {
            grant: exec_only.clone(),
            ..shell("true")
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("\"process\""), "{}", e.message());
    let e = c
        .process_list(ProcessListRequest {
            grant: exec_only,
            session_key: SESSION.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = c
        .process_start(ProcessStartRequest {
            grant: None,
            ..shell("true")
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    server.stop().await;
}

#[tokio::test]
async fn the_exec_approval_policy_applies_to_starts() {
    let server = start().await;
    let mut c = server.client().await;
    let with_policy = |security: ExecSecurity| {
        let policy = ExecPolicy {
            security: security.into(),
            ..testing::full_exec_policy()
        };
        Some(sign_claims(
            &testing::gateway_key(),
            &claims(&["process"], SESSION, "main", policy),
        ))
    };
    let e = c
        .process_start(ProcessStartRequest {
            grant: with_policy(ExecSecurity::Deny),
            ..shell("touch denied")
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("denied"), "{}", e.message());
    // Allowlist without entries and `ask: off`: a miss is denied.
    let e = c
        .process_start(ProcessStartRequest {
            grant: with_policy(ExecSecurity::Allowlist),
            ..shell("touch denied")
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!server.ws().join("denied").exists());
    // A refused start takes no place: eight still fit.
    for _ in 0..8 {
        start_process(&mut c, shell("sleep 300")).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn a_background_process_is_jailed() {
    let server = start().await;
    let mut c = server.client().await;
    let code = "import socket\n\
                try: socket.socket(socket.AF_INET, socket.SOCK_STREAM); print('SOCKET')\n\
                except OSError as e: print('inet', e.strerror)\n\
                try: open('/etc/shadow').read(); print('SHADOW')\n\
                except OSError as e: print('shadow', e.strerror)\n\
                import os; print('uid', os.getuid())\n";
    let id = start_process(
        &mut c,
        ProcessStartRequest {
            command: Some(process_start_request::Command::Argv(Argv {
                args: vec!["/usr/bin/python3".into(), "-c".into(), code.into()],
            })),
            ..shell("unused")
        },
    )
    .await
    .process_id;
    let (info, out, err) = until_end(&mut c, &id).await;
    assert_eq!(info.exit_code, 0, "{out} {err}");
    assert!(out.contains("inet Operation not permitted"), "{out}");
    assert!(out.contains("shadow Permission denied"), "{out}");
    assert!(!out.contains("uid 0\n"), "never root: {out}");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_kills_every_background_process() {
    let server = start().await;
    let mut c = server.client().await;
    let id = start_process(&mut c, shell("echo $$; exec sleep 300"))
        .await
        .process_id;
    let pid: i32 = until_stdout(&mut c, &id, "\n")
        .await
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid));
    let stopped = Instant::now();
    server.stop().await;
    assert!(stopped.elapsed() < Duration::from_secs(20));
    assert!(!alive(pid), "{pid} outlived the executor");
}
