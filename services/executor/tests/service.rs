//! The executor as a gRPC service in-process on 127.0.0.1:0: caller authentication, grant
//! checks, a real call through Docker, and draining at shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use pincer_executor::{
    ExecutorError, ExecutorSettings, GrantKeySetting, SandboxUser, SystemClock, serve,
};
use pincer_proto::v1::executor_service_client::ExecutorServiceClient;
use pincer_proto::v1::{ExecRequest, ExecResponse};
use pincer_runtime::Secret;
use pincer_runtime::secret::MapSecrets;
use pincer_runtime::service_auth::{PresentCredential, ServiceName};
use prost::Message;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::service::Interceptor;
use tonic::{Code, Request, Status};

const AGENT_SECRET: &str = "agent-credential-for-tests";

struct Running {
    addr: SocketAddr,
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), ExecutorError>>,
    tmp: tempfile::TempDir,
}

fn settings(root: &Path) -> ExecutorSettings {
    ExecutorSettings {
        workspace_root: root.to_owned(),
        agent_credential: Secret::new(AGENT_SECRET),
        exec: exec_config(),
        docker: docker_config(),
        sandbox_user: SandboxUser::for_this_process(),
        clock: Arc::new(SystemClock),
        grant_keys: GrantKeySetting::Fixed(pincer_executor::grant::testing::keys()),
        backend: pincer_runtime::config::raw::SandboxBackend::Docker,
        jail_helper: env!("CARGO_BIN_EXE_pincer-executor").into(),
        tools: pincer_executor::ToolSettings::disabled(),
    }
}

async fn start(tweak: impl FnOnce(&mut ExecutorSettings)) -> Running {
    let tmp = tempfile::tempdir().unwrap();
    // The sandbox user must be able to reach the workspace root (the jail enters it as
    // that user; Docker's daemon does not care).
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .unwrap();
    let mut s = settings(&tmp.path().join("workspaces"));
    tweak(&mut s);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(serve(s, listener, shutdown.clone()));
    Running {
        addr,
        shutdown,
        handle,
        tmp,
    }
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.handle)
            .await
            .expect("the server stops after shutdown")
            .unwrap()
            .unwrap();
    }
}

/// Presents the agent credential, a wrong one, or none.
#[derive(Clone)]
struct Caller(Option<PresentCredential>);

impl Interceptor for Caller {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        match &mut self.0 {
            Some(present) => present.call(request),
            None => Ok(request),
        }
    }
}

async fn call(
    addr: SocketAddr,
    credential: Option<&str>,
    req: ExecRequest,
) -> Result<ExecResponse, Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let caller = Caller(
        credential.map(|c| PresentCredential::new(ServiceName::Agent, &Secret::new(c)).unwrap()),
    );
    let mut client = ExecutorServiceClient::with_interceptor(channel, caller);
    client.exec(req).await.map(tonic::Response::into_inner)
}

#[tokio::test]
async fn refuses_callers_without_the_agent_credential() {
    let _exclusive = REAP_LOCK.write().await;
    let server = start(|_| {}).await;
    for credential in [None, Some("wrong-credential")] {
        let err = call(server.addr, credential, shell_request("true", 0))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{credential:?}: {err}");
    }
    server.stop().await;
}

#[tokio::test]
async fn refuses_calls_the_grant_does_not_allow() {
    let _exclusive = REAP_LOCK.write().await;
    let server = start(|_| {}).await;
    let mut req = shell_request("true", 0);
    req.grant = Some(grant(&["web_fetch"]));
    let err = call(server.addr, Some(AGENT_SECRET), req)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err}");
    assert!(err.message().contains("exec"));

    let mut req = shell_request("true", 0);
    req.grant = None;
    let err = call(server.addr, Some(AGENT_SECRET), req)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err}");

    use pincer_executor::grant::{sign_claims, testing};
    use pincer_proto::v1::{GrantClaims, NetworkAccess, WorkspaceAccess};
    let claims = |session: &str, expires: i64, access: WorkspaceAccess| GrantClaims {
        turn_id: "t".into(),
        session_key: session.into(),
        agent_id: "main".into(),
        allowed_tools: vec!["exec".into()],
        expires_at_ms: expires,
        workspace_access: access.into(),
        network: NetworkAccess::None.into(),
        exec_policy: Some(testing::full_exec_policy()),
        sandbox: None,
    };
    let refused = |grant: pincer_proto::v1::TurnGrant, why: &'static str| {
        let mut req = shell_request("true", 0);
        req.grant = Some(grant);
        async move {
            let err = call(server.addr, Some(AGENT_SECRET), req)
                .await
                .unwrap_err();
            assert_eq!(err.code(), Code::PermissionDenied, "{why}: {err}");
            err.message().to_owned()
        }
    };
    let key = testing::gateway_key();
    // Expired.
    let m = refused(
        sign_claims(
            &key,
            &claims(SESSION, now_ms() - 1, WorkspaceAccess::ReadWrite),
        ),
        "expired",
    )
    .await;
    assert!(m.contains("expired"), "{m}");
    // Signed by someone else (a compromised agent minting its own).
    let forger = pincer_identity::DeviceKey::from_seed([9; 32]);
    let m = refused(
        sign_claims(
            &forger,
            &claims(SESSION, now_ms() + 60_000, WorkspaceAccess::ReadWrite),
        ),
        "forged",
    )
    .await;
    assert!(m.contains("unknown key"), "{m}");
    // The gateway's signature over other claims.
    let mut widened = grant(&["web_fetch"]);
    widened.claims = claims(SESSION, now_ms() + 60_000, WorkspaceAccess::ReadWrite).encode_to_vec();
    let m = refused(widened, "altered claims").await;
    assert!(m.contains("signature"), "{m}");
    // A grant for session A used for session B.
    let m = refused(
        sign_claims(
            &key,
            &claims("other:dm:2", now_ms() + 60_000, WorkspaceAccess::ReadWrite),
        ),
        "other session",
    )
    .await;
    assert!(m.contains("session"), "{m}");
    // No workspace access at all.
    let m = refused(
        sign_claims(
            &key,
            &claims(SESSION, now_ms() + 60_000, WorkspaceAccess::None),
        ),
        "no workspace",
    )
    .await;
    assert!(m.contains("workspace"), "{m}");

    let mut req = shell_request("true", 0);
    req.cwd = "../other-agent".into();
    let err = call(server.addr, Some(AGENT_SECRET), req)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    server.stop().await;
}

#[tokio::test]
async fn disabled_exec_is_refused_whatever_the_grant() {
    let _exclusive = REAP_LOCK.write().await;
    let server = start(|s| s.exec.enabled = false).await;
    let err = call(server.addr, Some(AGENT_SECRET), shell_request("true", 0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err}");
    server.stop().await;
}

#[tokio::test]
async fn docker_down_is_unavailable() {
    // Never reaches an engine, so it cannot disturb other tests' containers.
    let server =
        start(|s| s.docker.host = Some("unix:///nonexistent/pincer-test-docker.sock".into())).await;
    let err = call(server.addr, Some(AGENT_SECRET), shell_request("true", 0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.message().contains("setup-docker.sh"), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn runs_a_granted_call_from_the_agent() {
    let _exclusive = REAP_LOCK.write().await;
    let Some(()) = require_docker("runs_a_granted_call_from_the_agent").await else {
        return;
    };
    let server = start(|_| {}).await;
    let resp = call(
        server.addr,
        Some(AGENT_SECRET),
        shell_request("echo hi > note.txt && cat note.txt", 0),
    )
    .await
    .unwrap();
    assert_eq!(resp.exit_code, 0, "stderr: {}", text(&resp.stderr));
    assert_eq!(text(&resp.stdout), "hi\n");
    assert!(!resp.timed_out);
    let note = server.tmp.path().join("workspaces/main/note.txt");
    assert_eq!(std::fs::read_to_string(note).unwrap(), "hi\n");

    // A timeout is a normal answer, not DEADLINE_EXCEEDED.
    let resp = call(
        server.addr,
        Some(AGENT_SECRET),
        shell_request("sleep 30", 500),
    )
    .await
    .unwrap();
    assert!(resp.timed_out);
    assert_eq!(resp.exit_code, -1);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_lets_calls_in_flight_finish() {
    let _exclusive = REAP_LOCK.write().await;
    let Some(()) = require_docker("shutdown_lets_calls_in_flight_finish").await else {
        return;
    };
    let server = start(|_| {}).await;
    let addr = server.addr;
    let in_flight = tokio::spawn(call(
        addr,
        Some(AGENT_SECRET),
        shell_request("sleep 2; echo finished", 0),
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let stopping = Instant::now();
    server.stop().await;
    let resp = in_flight.await.unwrap().unwrap();
    assert_eq!(text(&resp.stdout), "finished\n");
    assert!(stopping.elapsed() < Duration::from_secs(15));
    // Nothing listens any more.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[test]
fn settings_come_from_the_config() {
    let text = r#"{
        models: { providers: { fake: { api: "openai-chat", baseUrl: "http://127.0.0.1:9/v1" } } },
        agents: { defaults: { model: "fake/m" } },
        tools: { exec: { timeoutSeconds: 12, maxOutputBytes: 4096 } },
        executor: { docker: { pidsLimit: 32 } },
    }"#;
    let config = pincer_runtime::config::parse_config(text, "test").unwrap();
    let mut secrets = MapSecrets::default();
    secrets
        .env
        .insert("PINCER_AGENT_CREDENTIAL".into(), "from-env".into());
    secrets
        .env
        .insert("PINCER_EXECUTOR_CREDENTIAL".into(), "exec-env".into());
    let root = pincer_executor::workspace_root(&config, Some(Path::new("/state"))).unwrap();
    assert_eq!(root, Path::new("/state/workspaces"));
    let s = ExecutorSettings::from_config(&config, root, &secrets).unwrap();
    assert!(s.agent_credential.matches(b"from-env"));
    match &s.grant_keys {
        GrantKeySetting::Gateway { url, credential } => {
            assert_eq!(url.as_str(), "http://127.0.0.1:18790/");
            assert!(credential.matches(b"exec-env"));
        }
        GrantKeySetting::Fixed(_) => panic!("grant keys come from the gateway"),
    }
    assert_eq!(s.exec.timeout, Duration::from_secs(12));
    assert_eq!(s.docker.pids_limit, 32);
    assert_ne!(s.sandbox_user.uid, 0);

    let missing = ExecutorSettings::from_config(&config, "/x".into(), &MapSecrets::default());
    assert!(matches!(missing, Err(ExecutorError::Credential(_))));

    let with_root = pincer_runtime::config::parse_config(
        &text.replace("executor: {", "executor: { workspaceRoot: \"/srv/ws\","),
        "test",
    )
    .unwrap();
    assert_eq!(
        pincer_executor::workspace_root(&with_root, Some(Path::new("/state"))).unwrap(),
        Path::new("/srv/ws")
    );
}

/// The jail backend through the same gRPC service: no Docker involved. The executor's own
/// binary is the jail helper, as in production.
#[tokio::test]
async fn jail_backend_runs_calls_confined_without_docker() {
    let server = start(|s| s.backend = pincer_runtime::config::raw::SandboxBackend::Jail).await;
    let ok = call(
        server.addr,
        Some(AGENT_SECRET),
        shell_request("echo hi > note.txt && cat note.txt && id -u", 0),
    )
    .await
    .unwrap();
    assert_eq!(ok.exit_code, 0, "{}", String::from_utf8_lossy(&ok.stderr));
    let out = String::from_utf8_lossy(&ok.stdout).into_owned();
    assert!(out.starts_with("hi\n"), "{out}");
    assert_ne!(out.lines().nth(1), Some("0"), "never root inside the jail");

    // Outside the workspace: refused by the kernel, and the exit code says so.
    let escape = call(
        server.addr,
        Some(AGENT_SECRET),
        shell_request("cat /etc/shadow || exit 3", 0),
    )
    .await
    .unwrap();
    assert_eq!(escape.exit_code, 3);

    // A read-only grant mounts the workspace read-only.
    use pincer_executor::grant::{sign_claims, testing};
    use pincer_proto::v1::{GrantClaims, NetworkAccess, WorkspaceAccess};
    let mut req = shell_request("touch written.txt", 0);
    req.grant = Some(sign_claims(
        &testing::gateway_key(),
        &GrantClaims {
            turn_id: "t".into(),
            session_key: SESSION.into(),
            agent_id: "main".into(),
            allowed_tools: vec!["exec".into()],
            expires_at_ms: now_ms() + 60_000,
            workspace_access: WorkspaceAccess::ReadOnly.into(),
            network: NetworkAccess::None.into(),
            exec_policy: Some(testing::full_exec_policy()),
            sandbox: None,
        },
    ));
    let ro = call(server.addr, Some(AGENT_SECRET), req).await.unwrap();
    assert_ne!(ro.exit_code, 0, "read-only workspace refused the write");

    // The timeout kills it.
    let slow = call(
        server.addr,
        Some(AGENT_SECRET),
        shell_request("sleep 30", 1_000),
    )
    .await
    .unwrap();
    assert!(slow.timed_out);
    server.stop().await;
}

/// A loopback origin answering every request with its request line; the lines it saw.
async fn origin() -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                return;
            };
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut reader = BufReader::new(conn);
                let mut first = String::new();
                reader.read_line(&mut first).await.unwrap();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap() == 0 || line == "\r\n" {
                        break;
                    }
                }
                let first = first.trim_end().to_owned();
                log.lock().unwrap().push(first.clone());
                let body = format!("origin saw: {first}");
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                reader
                    .into_inner()
                    .write_all(reply.as_bytes())
                    .await
                    .unwrap();
            });
        }
    });
    (port, seen)
}

/// An exec of Python in the jail whose grant gives the sandbox `network`.
fn python_request(code: &str, network: pincer_proto::v1::NetworkAccess) -> ExecRequest {
    use pincer_executor::grant::{sign_claims, testing};
    use pincer_proto::v1::{
        Argv, GrantClaims, NetworkAccess, SandboxGrant, SandboxScope, WorkspaceAccess,
    };
    ExecRequest {
        grant: Some(sign_claims(
            &testing::gateway_key(),
            &GrantClaims {
                turn_id: "t".into(),
                session_key: SESSION.into(),
                agent_id: "main".into(),
                allowed_tools: vec!["exec".into()],
                expires_at_ms: now_ms() + 60_000,
                workspace_access: WorkspaceAccess::ReadWrite.into(),
                network: NetworkAccess::None.into(),
                exec_policy: Some(testing::full_exec_policy()),
                sandbox: Some(SandboxGrant {
                    network: network.into(),
                    scope: SandboxScope::Session.into(),
                }),
            },
        )),
        session_key: SESSION.into(),
        command: Some(pincer_proto::v1::exec_request::Command::Argv(Argv {
            args: ["python3", "-c", code].map(str::to_owned).to_vec(),
        })),
        timeout_ms: 20_000,
        ..Default::default()
    }
}

/// What a command granted egress can and cannot reach, the same on both backends: the
/// loopback origin through the guarded proxy (which re-allows 127.0.0.1 for it and dials
/// only loopback, so a blocked address could never be dialled), a private address
/// refused by the proxy with its rule, no route anywhere directly, and nothing at all
/// without the grant.
async fn egress_battery(
    backend: pincer_runtime::config::raw::SandboxBackend,
    reuse: pincer_runtime::config::validate::ContainerReuse,
) {
    use pincer_proto::v1::NetworkAccess;
    let (port, seen) = origin().await;
    let server = start(|s| {
        s.backend = backend;
        s.docker.reuse = reuse;
        s.tools.web_fetch.allow_networks = vec!["127.0.0.1/32".parse().unwrap()];
        s.tools.web_dialer = Some(Arc::new(pincer_egress::LoopbackOnlyDialer));
        s.exec.egress_ports = vec![80, 443, port];
    })
    .await;
    let fetch = |url: String| {
        format!(
            "import urllib.request, urllib.error\n\
             try: print(urllib.request.urlopen('{url}', timeout=10).read().decode())\n\
             except urllib.error.HTTPError as e: print(e.code, e.read().decode().strip())\n\
             except OSError as e: print('ERROR', e)"
        )
    };
    let run = |code: String, network| {
        let addr = server.addr;
        async move {
            let r = call(addr, Some(AGENT_SECRET), python_request(&code, network))
                .await
                .unwrap();
            let out = String::from_utf8_lossy(&r.stdout).trim().to_owned();
            (out, String::from_utf8_lossy(&r.stderr).into_owned())
        }
    };

    let (out, err) = run(
        fetch(format!("http://127.0.0.1:{port}/hello?x=1")),
        NetworkAccess::Egress,
    )
    .await;
    assert_eq!(out, "origin saw: GET /hello?x=1 HTTP/1.1", "{err}");
    assert_eq!(seen.lock().unwrap().len(), 1);

    // A private address the guard does not re-allow: refused by the proxy with its rule.
    let (out, _) = run(fetch("http://10.20.30.40/".into()), NetworkAccess::Egress).await;
    assert!(out.starts_with("403 "), "{out}");
    assert!(out.contains("10.20.30.40"), "{out}");

    // Around the proxy: the sandbox has only loopback, so there is no route to any other
    // address (the kernel answers at once; no packet exists), and the host's loopback
    // origin is not the sandbox's loopback.
    let probe = format!(
        "import socket, errno\n\
         for host, p in [('172.17.0.1', 80), ('10.20.30.40', 80), ('127.0.0.1', {port})]:\n\
         \x20 s = socket.socket(); s.settimeout(3)\n\
         \x20 try: s.connect((host, p)); print(host, 'CONNECTED')\n\
         \x20 except OSError as e: print(host, errno.errorcode.get(e.errno, e))"
    );
    let (out, err) = run(probe, NetworkAccess::Egress).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out} {err}");
    for line in &lines[..2] {
        assert!(
            line.ends_with("ENETUNREACH") || line.ends_with("EACCES"),
            "{line}"
        );
    }
    assert!(
        lines[2].ends_with("ECONNREFUSED") || lines[2].ends_with("EACCES"),
        "{}",
        lines[2]
    );

    // Without egress in the grant there is no proxy and no network.
    let (out, _) = run(
        fetch(format!("http://127.0.0.1:{port}/again")),
        NetworkAccess::None,
    )
    .await;
    assert!(out.starts_with("ERROR"), "{out}");
    assert_eq!(seen.lock().unwrap().len(), 1, "the origin saw nothing more");
    server.stop().await;
}

#[tokio::test]
async fn jail_commands_reach_the_web_only_through_the_guard() {
    egress_battery(
        pincer_runtime::config::raw::SandboxBackend::Jail,
        pincer_runtime::config::validate::ContainerReuse::PerCall,
    )
    .await;
}

#[tokio::test]
async fn docker_commands_reach_the_web_only_through_the_guard() {
    let _exclusive = REAP_LOCK.write().await;
    let Some(()) = require_docker("docker_commands_reach_the_web_only_through_the_guard").await
    else {
        return;
    };
    egress_battery(
        pincer_runtime::config::raw::SandboxBackend::Docker,
        pincer_runtime::config::validate::ContainerReuse::PerCall,
    )
    .await;
}

/// The same with a container per session: the session's container runs the relay, and a
/// call without egress gets a container of its own (without the relay).
#[tokio::test]
async fn docker_session_commands_reach_the_web_only_through_the_guard() {
    let _exclusive = REAP_LOCK.write().await;
    let Some(()) =
        require_docker("docker_session_commands_reach_the_web_only_through_the_guard").await
    else {
        return;
    };
    egress_battery(
        pincer_runtime::config::raw::SandboxBackend::Docker,
        pincer_runtime::config::validate::ContainerReuse::PerSession {
            idle: Duration::from_secs(60),
        },
    )
    .await;
}
