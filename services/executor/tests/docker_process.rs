//! Background processes (`ProcessStart`, `ProcessPoll`, `ProcessWrite`, `ProcessKill`,
//! `ProcessList`) through the real gRPC service on the Docker backend: one container per
//! process with the throwaway posture; stdin, incremental output, kill (container gone, the
//! command's children with it), timeout, the per-agent limit, scoping to the grant's
//! session, the posture from inside, and removal at shutdown. Needs Docker (see
//! `common::require_docker`). Every test holds the reap lock for writing: the server
//! removes every sandbox container at its start.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use pincer_executor::docker::posture::{PROCESS_LABEL, SANDBOX_LABEL};
use pincer_executor::grant::{sign_claims, testing};
use pincer_executor::{
    DockerBackend, ExecutorError, ExecutorSettings, GrantKeySetting, SystemClock, serve,
};
use pincer_proto::v1::executor_service_client::ExecutorServiceClient;
use pincer_proto::v1::{
    Argv, GrantClaims, NetworkAccess, ProcessInfo, ProcessKillRequest, ProcessListRequest,
    ProcessPollRequest, ProcessPollResponse, ProcessStartRequest, ProcessState,
    ProcessWriteRequest, TurnGrant, WorkspaceAccess, process_start_request,
};
use pincer_runtime::Secret;
use pincer_runtime::config::raw::SandboxBackend;
use pincer_runtime::secret::MapSecrets;
use pincer_runtime::service_auth::{PresentCredential, ServiceName};
use tokio::sync::RwLockWriteGuard;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const AGENT_SECRET: &str = "agent-credential-for-docker-process-tests";
const SESSION: &str = "test:dm:1";

type Client = ExecutorServiceClient<InterceptedService<Channel, PresentCredential>>;

struct Running {
    addr: SocketAddr,
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), ExecutorError>>,
    tmp: tempfile::TempDir,
    docker: Docker,
    _exclusive: RwLockWriteGuard<'static, ()>,
}

/// The executor on the Docker backend, or `None` when Docker is skipped.
async fn start(test: &str) -> Option<Running> {
    let exclusive = common::REAP_LOCK.write().await;
    common::require_docker(test).await?;
    let docker = DockerBackend::new(common::docker_settings())
        .client()
        .await
        .unwrap()
        .clone();
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
    settings.backend = SandboxBackend::Docker;
    settings.docker = common::docker_config();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(serve(settings, listener, shutdown.clone()));
    Some(Running {
        addr,
        shutdown,
        handle,
        tmp,
        docker,
        _exclusive: exclusive,
    })
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

    /// Background-process containers that exist (this test holds the reap lock, so they
    /// are this test's).
    async fn containers(&self) -> usize {
        common::count_labelled(&self.docker, &format!("{PROCESS_LABEL}=1")).await
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.handle)
            .await
            .expect("the server stops after shutdown")
            .unwrap()
            .unwrap();
    }
}

fn claims(tools: &[&str], session: &str, agent: &str) -> GrantClaims {
    GrantClaims {
        turn_id: "turn-1".into(),
        session_key: session.into(),
        agent_id: agent.into(),
        allowed_tools: tools.iter().map(|t| (*t).to_owned()).collect(),
        expires_at_ms: pincer_executor::Clock::now_ms(&SystemClock) + 600_000,
        workspace_access: WorkspaceAccess::ReadWrite.into(),
        network: NetworkAccess::None.into(),
        exec_policy: Some(testing::full_exec_policy()),
        sandbox: None,
    }
}

fn grant() -> Option<TurnGrant> {
    grant_for(SESSION, "main")
}

fn grant_for(session: &str, agent: &str) -> Option<TurnGrant> {
    Some(sign_claims(
        &testing::gateway_key(),
        &claims(&["process"], session, agent),
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

fn argv(args: &[&str]) -> ProcessStartRequest {
    ProcessStartRequest {
        command: Some(process_start_request::Command::Argv(Argv {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        })),
        ..shell("unused")
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

/// Polls until the process has ended (at most 30 s), gathering its output.
async fn until_end(c: &mut Client, id: &str) -> (ProcessInfo, String, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
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

/// Polls until stdout holds `want` (at most 30 s).
async fn until_stdout(c: &mut Client, id: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
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

#[tokio::test]
async fn cat_echoes_stdin_and_exits_when_it_is_closed() {
    let Some(server) = start("cat_echoes_stdin_and_exits_when_it_is_closed").await else {
        return;
    };
    let mut c = server.client().await;
    let started = start_process(&mut c, argv(&["cat"])).await;
    assert_eq!(started.state(), ProcessState::Running);
    assert!(started.process_id.starts_with("proc_"), "{started:?}");
    assert_eq!(started.command, "cat");
    assert_eq!(server.containers().await, 1, "one container per process");
    let id = started.process_id;
    let w = c
        .process_write(write_req(&id, b"hello\n", false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.bytes_written, 6);
    assert_eq!(until_stdout(&mut c, &id, "hello\n").await, "hello\n");
    c.process_write(write_req(&id, b"bye", true)).await.unwrap();
    let (info, out, _) = until_end(&mut c, &id).await;
    assert_eq!(
        (info.state(), info.exit_code, out.as_str()),
        (ProcessState::Exited, 0, "bye")
    );
    assert_eq!(server.containers().await, 0, "removed after the exit");
    let e = c
        .process_write(write_req(&id, b"late", false))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("stdin is closed"), "{}", e.message());
    // An exit code other than 0, and a program that does not exist.
    let id = start_process(&mut c, shell("exit 3")).await.process_id;
    let (info, _, _) = until_end(&mut c, &id).await;
    assert_eq!((info.state(), info.exit_code), (ProcessState::Exited, 3));
    let id = start_process(&mut c, argv(&["/no/such/program"]))
        .await
        .process_id;
    let (info, _, err) = until_end(&mut c, &id).await;
    assert_eq!((info.state(), info.exit_code), (ProcessState::Exited, 127));
    assert!(err.contains("/no/such/program"), "{err}");
    assert_eq!(server.containers().await, 0);
    server.stop().await;
}

#[tokio::test]
async fn output_is_incremental_across_polls() {
    let Some(server) = start("output_is_incremental_across_polls").await else {
        return;
    };
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
    assert_eq!((info.state(), info.exit_code), (ProcessState::Exited, 0));
    server.stop().await;
}

#[tokio::test]
async fn kill_removes_the_container_and_everything_in_it() {
    let Some(server) = start("kill_removes_the_container_and_everything_in_it").await else {
        return;
    };
    let mut c = server.client().await;
    let id = start_process(
        &mut c,
        shell("sleep 300 & echo started; sleep 3; touch marker; wait"),
    )
    .await
    .process_id;
    until_stdout(&mut c, &id, "started\n").await;
    assert_eq!(server.containers().await, 1);
    let killed = c.process_kill(kill_req(&id)).await.unwrap().into_inner();
    assert_eq!(killed.process.unwrap().state(), ProcessState::Killed);
    assert_eq!(server.containers().await, 0, "the container is gone");
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
async fn the_timeout_kills_and_removes_the_container() {
    let Some(server) = start("the_timeout_kills_and_removes_the_container").await else {
        return;
    };
    let mut c = server.client().await;
    let id = start_process(
        &mut c,
        ProcessStartRequest {
            timeout_ms: 1_000,
            ..shell("echo started; exec sleep 300")
        },
    )
    .await
    .process_id;
    let (info, out, _) = until_end(&mut c, &id).await;
    assert_eq!(out, "started\n");
    assert_eq!(info.state(), ProcessState::TimedOut);
    assert!(
        info.duration_ms >= 1_000 && info.duration_ms < 10_000,
        "{info:?}"
    );
    assert_eq!(server.containers().await, 0, "the container is gone");
    server.stop().await;
}

#[tokio::test]
async fn an_agent_may_run_at_most_eight_and_other_sessions_see_none() {
    let Some(server) = start("an_agent_may_run_at_most_eight_and_other_sessions_see_none").await
    else {
        return;
    };
    let mut c = server.client().await;
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(start_process(&mut c, shell("sleep 300")).await.process_id);
    }
    assert_eq!(server.containers().await, 8);
    let e = c.process_start(shell("sleep 300")).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("for this agent"), "{}", e.message());
    assert_eq!(
        server.containers().await,
        8,
        "a refused start creates nothing"
    );
    // Another session (or agent) finds nothing.
    for (session, agent) in [("test:dm:2", "main"), (SESSION, "other")] {
        let g = grant_for(session, agent);
        let poll = ProcessPollRequest {
            grant: g.clone(),
            session_key: session.into(),
            ..poll_req(&ids[0], 0)
        };
        let kill = ProcessKillRequest {
            grant: g.clone(),
            session_key: session.into(),
            ..kill_req(&ids[0])
        };
        let write = ProcessWriteRequest {
            grant: g.clone(),
            session_key: session.into(),
            ..write_req(&ids[0], b"x", false)
        };
        for e in [
            c.process_poll(poll).await.unwrap_err(),
            c.process_kill(kill).await.unwrap_err(),
            c.process_write(write).await.unwrap_err(),
        ] {
            assert_eq!(e.code(), Code::NotFound, "{e:?}");
        }
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
    let still = c
        .process_poll(poll_req(&ids[0], 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(still.process.unwrap().state(), ProcessState::Running);
    // Ending one makes room.
    c.process_kill(kill_req(&ids[0])).await.unwrap();
    start_process(&mut c, shell("sleep 300")).await;
    assert_eq!(server.containers().await, 8);
    server.stop().await;
}

#[tokio::test]
async fn a_background_process_has_the_sandbox_posture() {
    let Some(server) = start("a_background_process_has_the_sandbox_posture").await else {
        return;
    };
    let mut c = server.client().await;
    let code = "import socket, os\n\
                try:\n  s = socket.create_connection(('1.1.1.1', 53), timeout=3); print('CONNECTED')\n\
                except OSError as e: print('net', e.strerror)\n\
                try: open('/etc/shadow').read(); print('SHADOW')\n\
                except OSError as e: print('shadow', e.strerror)\n\
                try: open('/rootfs-write', 'w'); print('ROOTFS')\n\
                except OSError as e: print('rootfs', e.strerror)\n\
                print('uid', os.getuid())\n\
                print('ifaces', sorted(n for _, n in socket.if_nameindex()))\n";
    let id = start_process(&mut c, argv(&["python3", "-c", code]))
        .await
        .process_id;
    let (info, out, err) = until_end(&mut c, &id).await;
    assert_eq!(info.exit_code, 0, "{out} {err}");
    assert!(!out.contains("CONNECTED"), "{out}");
    assert!(out.contains("net "), "{out}");
    assert!(
        out.contains("ifaces ['lo']"),
        "no network but loopback: {out}"
    );
    assert!(out.contains("shadow Permission denied"), "{out}");
    assert!(out.contains("rootfs Read-only file system"), "{out}");
    assert!(!out.contains("uid 0\n"), "never root: {out}");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_removes_every_process_container() {
    let Some(server) = start("shutdown_removes_every_process_container").await else {
        return;
    };
    let mut c = server.client().await;
    let a = start_process(&mut c, shell("echo up; exec sleep 300"))
        .await
        .process_id;
    until_stdout(&mut c, &a, "up\n").await;
    start_process(&mut c, argv(&["cat"])).await;
    assert_eq!(server.containers().await, 2);
    let docker = server.docker.clone();
    let stopped = Instant::now();
    server.stop().await;
    assert!(stopped.elapsed() < Duration::from_secs(30));
    assert_eq!(
        common::count_labelled(&docker, &format!("{PROCESS_LABEL}=1")).await,
        0,
        "process containers outlived the executor"
    );
    assert_eq!(
        common::count_labelled(&docker, &format!("{SANDBOX_LABEL}=1")).await,
        0
    );
}
