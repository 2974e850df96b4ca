//! Per-session containers (`executor.docker.reuse: "session"`) against a real Docker
//! engine: what the calls of one session share (the container: `/tmp`, processes), what
//! two sessions never share, the timeout (the call's process tree dies, the container
//! stays), the idle timeout, shutdown and the reaper, the posture (the container's
//! `HostConfig` is the throwaway one's), workspace access (read-only grants never run in a
//! read-write container), and the core items of the escape battery run in session mode.
//!
//! Sharing `/tmp` and processes between the calls of one session is the point of reuse,
//! and the trade-off (docs/sandbox.md, "Per-session containers").
//!
//! Needs Docker and the sandbox image (see `common::require_docker`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};
use common::*;
use nix::libc;
use pincer_executor::docker::ContainerReuse;
use pincer_executor::docker::posture::{
    INSTANCE_LABEL, REUSE_LABEL, SANDBOX_ENV, SANDBOX_LABEL, SESSION_REUSE,
};
use pincer_executor::grant::{sign_claims, testing};
use pincer_executor::{DockerBackend, DockerSettings, ExecOutcome, Sandbox, Workspaces};
use pincer_proto::v1::{
    ExecRequest, GrantClaims, NetworkAccess, SandboxGrant, SandboxScope, WorkspaceAccess,
    exec_request,
};
use prost::Message;
use tokio::sync::RwLockReadGuard;

const SESSION_A: &str = "test:dm:a";
const SESSION_B: &str = "test:dm:b";
const RW: WorkspaceAccess = WorkspaceAccess::ReadWrite;
const RO: WorkspaceAccess = WorkspaceAccess::ReadOnly;

fn session_settings(idle: Duration) -> DockerSettings {
    DockerSettings {
        reuse: ContainerReuse::PerSession { idle },
        ..docker_settings()
    }
}

/// The shared reap lock and a harness whose backend reuses containers per session.
async fn harness(test: &str) -> Option<(RwLockReadGuard<'static, ()>, Harness)> {
    let shared = REAP_LOCK.read().await;
    require_docker(test).await?;
    Some((
        shared,
        Harness::with_settings(session_settings(Duration::from_secs(600))),
    ))
}

/// A shell call in `session` with `access` to the workspace.
fn request(session: &str, access: WorkspaceAccess, line: &str, timeout_ms: u32) -> ExecRequest {
    let claims = GrantClaims {
        turn_id: "turn-1".into(),
        session_key: session.into(),
        agent_id: "main".into(),
        allowed_tools: vec!["exec".into()],
        expires_at_ms: now_ms() + 600_000,
        workspace_access: access.into(),
        network: NetworkAccess::None.into(),
        exec_policy: Some(testing::full_exec_policy()),
        // The gateway lets this session's calls share its sandbox.
        sandbox: Some(SandboxGrant {
            network: NetworkAccess::None.into(),
            scope: SandboxScope::Session.into(),
        }),
    };
    ExecRequest {
        grant: Some(sign_claims(&testing::gateway_key(), &claims)),
        session_key: session.into(),
        command: Some(exec_request::Command::Shell(line.into())),
        cwd: String::new(),
        timeout_ms,
        ..Default::default()
    }
}

async fn sh(h: &Harness, session: &str, line: &str) -> ExecOutcome {
    h.run(request(session, RW, line, 0)).await
}

/// Runs Python (argv, no shell) in `session`.
async fn py(h: &Harness, session: &str, code: &str) -> ExecOutcome {
    let mut req = request(session, RW, "unused", 0);
    req.command = Some(exec_request::Command::Argv(pincer_proto::v1::Argv {
        args: ["python3", "-c", code].map(str::to_owned).to_vec(),
    }));
    h.run(req).await
}

fn out(o: &ExecOutcome) -> String {
    text(&o.stdout)
}

fn err(o: &ExecOutcome) -> String {
    text(&o.stderr)
}

/// The container's host name, which Docker sets to its short id.
async fn container_name(h: &Harness, session: &str) -> String {
    let o = sh(h, session, "uname -n").await;
    assert_eq!(o.exit_code, 0, "{}", err(&o));
    out(&o).trim().to_owned()
}

/// The command lines of every process the session's container shows.
async fn processes(h: &Harness, session: &str) -> String {
    let o = py(
        h,
        session,
        "import os\n\
         for p in os.listdir('/proc'):\n\
         \x20 if p.isdigit():\n\
         \x20   try: print(open(f'/proc/{p}/cmdline', 'rb').read().replace(b'\\0', b' ').decode())\n\
         \x20   except OSError: pass\n",
    )
    .await;
    assert_eq!(o.exit_code, 0, "{}", err(&o));
    out(&o)
}

async fn list(docker: &Docker, label: &str) -> Vec<String> {
    let filters = HashMap::from([("label".to_owned(), vec![label.to_owned()])]);
    docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

async fn inspect(docker: &Docker, id: &str) -> ContainerInspectResponse {
    docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .unwrap()
}

/// Waits up to `limit` for `h`'s backend to own `n` containers.
async fn wait_for_containers(h: &Harness, n: usize, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let now = h.leftovers().await;
        if now == n || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------- what a session shares ----------

#[tokio::test]
async fn calls_of_one_session_share_its_container() {
    let Some((_shared, h)) = harness("calls_of_one_session_share_its_container").await else {
        return;
    };
    // Two first calls at once make one container, not two.
    let (first, second) = tokio::join!(
        sh(&h, SESSION_A, "uname -n; echo one > /tmp/note"),
        sh(&h, SESSION_A, "uname -n")
    );
    assert_eq!(first.exit_code, 0, "{}", err(&first));
    assert_eq!(out(&first).lines().next(), out(&second).lines().next());
    assert_eq!(h.leftovers().await, 1, "one container for the session");

    // A file in /tmp written by one call is there for the next: that is the point.
    let o = sh(
        &h,
        SESSION_A,
        "cat /tmp/note; echo two >> /tmp/note; cat /tmp/note",
    )
    .await;
    assert_eq!(out(&o), "one\none\ntwo\n", "{}", err(&o));
    // The workspace, as always.
    let o = sh(&h, SESSION_A, "echo hi > note.txt && cat note.txt && pwd").await;
    assert_eq!(out(&o), "hi\n/workspace\n");
    assert_eq!(
        std::fs::read_to_string(h.agent_dir().join("note.txt")).unwrap(),
        "hi\n"
    );
    let mut req = request(SESSION_A, RW, "pwd", 0);
    req.cwd = "sub/./dir/".into();
    assert_eq!(out(&h.run(req).await), "/workspace/sub/dir\n");

    // Exit codes, stderr, argv without a shell, a missing program: as for a call container.
    let o = sh(&h, SESSION_A, "echo oops >&2; exit 3").await;
    assert_eq!(
        (o.exit_code, err(&o), out(&o)),
        (3, "oops\n".into(), "".into())
    );
    let o = sh(&h, SESSION_A, "kill -TERM $$").await;
    assert_eq!(o.exit_code, 143, "a death by signal N reads 128+N");
    let mut req = request(SESSION_A, RW, "unused", 0);
    req.command = Some(exec_request::Command::Argv(pincer_proto::v1::Argv {
        args: ["echo", "a;b", "$HOME"].map(str::to_owned).to_vec(),
    }));
    assert_eq!(out(&h.run(req).await), "a;b $HOME\n");
    for program in ["/no/such/program", "nosuchprog"] {
        let mut req = request(SESSION_A, RW, "unused", 0);
        req.command = Some(exec_request::Command::Argv(pincer_proto::v1::Argv {
            args: vec![program.to_owned()],
        }));
        let o = h.run(req).await;
        assert_eq!(o.exit_code, 127, "{program}");
        assert!(err(&o).contains(program), "{}", err(&o));
    }

    // Each call's extra environment is its own; the sandbox's is everyone's.
    let mut req = request(SESSION_A, RW, "unused", 0);
    req.command = Some(exec_request::Command::Argv(pincer_proto::v1::Argv {
        args: vec!["env".to_owned()],
    }));
    req.env.insert("GREETING".into(), "hello world".into());
    let o = h.run(req).await;
    let mut lines: Vec<String> = out(&o)
        .lines()
        .filter(|l| !l.starts_with("HOSTNAME="))
        .map(str::to_owned)
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "GREETING=hello world",
            "HOME=/tmp",
            "LANG=C.UTF-8",
            "PATH=/usr/local/bin:/usr/bin:/bin"
        ]
    );
    let o = sh(&h, SESSION_A, "env").await;
    assert!(!out(&o).contains("GREETING"), "{}", out(&o));

    // Output is capped and drained, as for a call container.
    let o = sh(&h, SESSION_A, "yes | head -c 10000000; echo done >&2").await;
    assert_eq!(o.exit_code, 0);
    assert!(o.output_truncated);
    assert_eq!(o.stdout.len(), MAX_OUTPUT as usize);
    assert!(
        o.stdout.starts_with(b"y\ny\n"),
        "the pid line is not output"
    );
    assert_eq!(err(&o), "done\n");

    // A background job that holds stdout does not hold the call (the engine closes the
    // exec's streams 2 s after its process exits); the job itself lives on (shared).
    let started = Instant::now();
    let o = sh(&h, SESSION_A, "sleep 4242 & echo bg").await;
    assert_eq!((o.exit_code, out(&o)), (0, "bg\n".into()));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(processes(&h, SESSION_A).await.contains("sleep 4242"));

    assert_eq!(h.leftovers().await, 1, "still one container");
    h.backend.reap_own().await.unwrap();
    assert_eq!(h.leftovers().await, 0);
}

#[tokio::test]
async fn two_sessions_never_share() {
    let Some((_shared, h)) = harness("two_sessions_never_share").await else {
        return;
    };
    let o = sh(
        &h,
        SESSION_A,
        "echo secret-a > /tmp/a; sleep 3131 & echo started",
    )
    .await;
    assert_eq!(out(&o), "started\n", "{}", err(&o));
    let (a, b) = (
        container_name(&h, SESSION_A).await,
        container_name(&h, SESSION_B).await,
    );
    assert_ne!(a, b, "each session has its own container");
    assert_eq!(h.leftovers().await, 2);

    // Session B sees neither A's /tmp nor A's processes.
    let o = sh(&h, SESSION_B, "ls -A /tmp; cat /tmp/a").await;
    assert_ne!(o.exit_code, 0);
    assert!(err(&o).contains("No such file"), "{}", err(&o));
    assert!(!out(&o).contains("secret-a"));
    let seen_by_b = processes(&h, SESSION_B).await;
    assert!(!seen_by_b.contains("sleep 3131"), "{seen_by_b}");
    // Session A sees its own (the trade-off: the calls of one session see each other).
    assert!(processes(&h, SESSION_A).await.contains("sleep 3131"));

    // Both see the agent's workspace: it belongs to the agent, not to a session.
    sh(&h, SESSION_A, "echo shared > ws.txt").await;
    assert_eq!(out(&sh(&h, SESSION_B, "cat ws.txt").await), "shared\n");

    h.backend.reap_own().await.unwrap();
    assert_eq!(h.leftovers().await, 0);
}

// ---------- timeouts ----------

#[tokio::test]
async fn a_timeout_kills_the_calls_processes_and_the_container_stays() {
    let Some((_shared, h)) =
        harness("a_timeout_kills_the_calls_processes_and_the_container_stays").await
    else {
        return;
    };
    sh(&h, SESSION_A, "echo kept > /tmp/keep").await;
    let before = container_name(&h, SESSION_A).await;

    let started = Instant::now();
    let o = h
        .run(request(
            SESSION_A,
            RW,
            // A tree: background jobs, a subshell's orphan, one that took a process group
            // of its own (job control), and one that left the session (setsid).
            "sleep 3001 & (sleep 3002 &); (set -m; sleep 3003 &); setsid sleep 3004 & \
             echo started; sleep 3005",
            1_000,
        ))
        .await;
    assert!(o.timed_out, "{o:?}");
    assert_eq!(o.exit_code, -1);
    assert_eq!(out(&o), "started\n");
    assert!(o.duration >= Duration::from_millis(1_000));
    // The 2 s timeout plus the kill (10 s at most) and the drain (5 s), nowhere near
    // the sleeps' hour.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );

    // The container survived: same container, /tmp intact.
    assert_eq!(container_name(&h, SESSION_A).await, before);
    assert_eq!(out(&sh(&h, SESSION_A, "cat /tmp/keep").await), "kept\n");
    assert_eq!(h.leftovers().await, 1);
    // Everything in the call's session is gone ...
    let left = processes(&h, SESSION_A).await;
    for n in ["3001", "3002", "3003", "3005"] {
        assert!(!left.contains(&format!("sleep {n}")), "sleep {n}: {left}");
    }
    // ... but a process that left the call's session (setsid) is no longer the call's: it
    // lives until the container is retired (documented).
    assert!(left.contains("sleep 3004"), "{left}");

    h.backend.reap_own().await.unwrap();
    assert_eq!(h.leftovers().await, 0);
}

#[tokio::test]
async fn a_timed_out_fork_bomb_is_killed() {
    let Some((_shared, h)) = harness("a_timed_out_fork_bomb_is_killed").await else {
        return;
    };
    sh(&h, SESSION_A, "echo kept > /tmp/keep").await;
    let before = container_name(&h, SESSION_A).await;
    // Fill the pids limit and keep it full: the kill forks nothing, so it still runs.
    let mut req = request(SESSION_A, RW, "unused", 2_000);
    req.command = Some(exec_request::Command::Argv(pincer_proto::v1::Argv {
        args: [
            "python3",
            "-c",
            "import os, time\n\
             while True:\n\
             \x20 try:\n\
             \x20   if os.fork() == 0: os.execv('/bin/sleep', ['sleep', '3600'])\n\
             \x20 except OSError: time.sleep(0.01)\n",
        ]
        .map(str::to_owned)
        .to_vec(),
    }));
    let started = Instant::now();
    let o = h.run(req).await;
    assert!(o.timed_out, "{o:?}");
    // The 2 s timeout plus the kill (10 s at most) and the drain (5 s), nowhere near
    // the sleeps' hour.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    // The kill runs as one more exec in a container whose pids limit the bomb keeps full;
    // it is retried, and it normally gets through, so the container (and /tmp) stay. When
    // no attempt could start, the fail-safe retires the container instead: then the old
    // one must be gone. Either way nothing of the bomb runs afterwards.
    let now = container_name(&h, SESSION_A).await;
    let kept = out(&sh(&h, SESSION_A, "cat /tmp/keep 2>/dev/null").await);
    if now == before {
        assert_eq!(kept, "kept\n");
    } else {
        assert_eq!(kept, "", "a new container starts empty");
    }
    assert_eq!(h.leftovers().await, 1, "the retired container is removed");
    let left = processes(&h, SESSION_A).await;
    assert!(
        !left.contains("os.fork") && !left.contains("sleep 3600"),
        "{left}"
    );

    h.backend.reap_own().await.unwrap();
    assert_eq!(h.leftovers().await, 0);
}

#[tokio::test]
async fn a_timed_out_call_that_cannot_be_killed_retires_the_container() {
    let Some((_shared, h)) =
        harness("a_timed_out_call_that_cannot_be_killed_retires_the_container").await
    else {
        return;
    };
    sh(&h, SESSION_A, "echo kept > /tmp/keep").await;
    let before = container_name(&h, SESSION_A).await;
    // A 1 ms limit ends the call before its wrapper printed its pid (an exec takes tens
    // of ms to start): the kill cannot be aimed, so the whole container is retired.
    let started = Instant::now();
    let o = h
        .run(request(SESSION_A, RW, "echo started; sleep 300", 1))
        .await;
    assert!(o.timed_out, "{o:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    // The container was retired (and with it everything in it).
    assert_eq!(h.leftovers().await, 0);
    // The next call gets a new container.
    assert_ne!(container_name(&h, SESSION_A).await, before);
    let o = sh(&h, SESSION_A, "cat /tmp/keep").await;
    assert_ne!(o.exit_code, 0, "a new container has an empty /tmp");
    assert!(!processes(&h, SESSION_A).await.contains("sleep 300"));

    h.backend.reap_own().await.unwrap();
    assert_eq!(h.leftovers().await, 0);
}

#[tokio::test]
async fn a_stopped_container_is_replaced() {
    let Some((_shared, h)) = harness("a_stopped_container_is_replaced").await else {
        return;
    };
    let before = container_name(&h, SESSION_A).await;
    // The idle command runs as the sandbox user: a call can end its own container (a
    // second after it returned).
    let o = sh(
        &h,
        SESSION_A,
        "(sleep 1; for p in /proc/[0-9]*; do \
           [ \"$(tr '\\0' ' ' < $p/cmdline)\" = 'sleep infinity ' ] && kill -KILL ${p#/proc/}; \
         done) >/dev/null 2>&1 &",
    )
    .await;
    assert_eq!(o.exit_code, 0, "{o:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The next call finds it stopped and gets a new one.
    let after = container_name(&h, SESSION_A).await;
    assert_ne!(after, before);
    assert_eq!(wait_for_containers(&h, 1, Duration::from_secs(5)).await, 1);

    h.backend.reap_own().await.unwrap();
    assert_eq!(h.leftovers().await, 0);
}

// ---------- lifetime ----------

#[tokio::test]
async fn an_idle_container_is_removed() {
    let _shared = REAP_LOCK.read().await;
    let Some(()) = require_docker("an_idle_container_is_removed").await else {
        return;
    };
    let h = Harness::with_settings(session_settings(Duration::from_secs(1)));
    let first = container_name(&h, SESSION_A).await;
    assert_eq!(h.leftovers().await, 1);
    // Used again within the idle time: kept.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(container_name(&h, SESSION_A).await, first);
    // Idle for longer: removed by the sweeper.
    assert_eq!(wait_for_containers(&h, 0, Duration::from_secs(10)).await, 0);
    // The session's next call makes a new one.
    assert_ne!(container_name(&h, SESSION_A).await, first);
    assert_eq!(wait_for_containers(&h, 0, Duration::from_secs(10)).await, 0);
}

#[tokio::test]
async fn a_long_call_is_not_idle() {
    let _shared = REAP_LOCK.read().await;
    let Some(()) = require_docker("a_long_call_is_not_idle").await else {
        return;
    };
    let h = Harness::with_settings(session_settings(Duration::from_secs(1)));
    sh(&h, SESSION_A, "echo kept > /tmp/keep").await;
    // Longer than the idle time: the container is in use, so it stays.
    let o = sh(&h, SESSION_A, "sleep 3; cat /tmp/keep").await;
    assert_eq!(out(&o), "kept\n", "{}", err(&o));
    assert_eq!(wait_for_containers(&h, 0, Duration::from_secs(10)).await, 0);
}

#[tokio::test]
async fn shutdown_and_the_reaper_remove_session_containers() {
    let _exclusive = REAP_LOCK.write().await;
    let Some(()) = require_docker("shutdown_and_the_reaper_remove_session_containers").await else {
        return;
    };
    let h = Harness::with_settings(session_settings(Duration::from_secs(600)));
    sh(&h, SESSION_A, "true").await;
    sh(&h, SESSION_B, "true").await;
    h.run(request(SESSION_A, RO, "true", 0)).await;
    assert_eq!(h.leftovers().await, 3);
    let docker = h.backend.client().await.unwrap();
    for id in list(docker, &format!("{REUSE_LABEL}={SESSION_REUSE}")).await {
        let labels = inspect(docker, &id).await.config.unwrap().labels.unwrap();
        assert_eq!(labels[SANDBOX_LABEL], "1");
    }

    // Shutdown: this executor's containers go, running or not.
    assert_eq!(h.backend.reap_own().await.unwrap(), 3);
    assert_eq!(h.leftovers().await, 0);
    // After a crash (no shutdown), the next executor's start reaps them.
    let crashed = DockerBackend::new(session_settings(Duration::from_secs(600)));
    let plan = validate(request(SESSION_A, RW, "true", 0));
    let workspace = h.workspaces.prepare(&plan).unwrap();
    crashed.run(plan, workspace).await.unwrap();
    let crashed_label = format!("{INSTANCE_LABEL}={}", crashed.instance_id());
    assert_eq!(list(docker, &crashed_label).await.len(), 1);
    drop(crashed);
    let next = DockerBackend::new(session_settings(Duration::from_secs(600)));
    assert!(next.reap_leftovers().await.unwrap() >= 1);
    assert!(list(docker, &crashed_label).await.is_empty());
    assert!(list(docker, &format!("{SANDBOX_LABEL}=1")).await.is_empty());
}

// ---------- posture and workspace access ----------

#[tokio::test]
async fn the_session_container_has_the_throwaway_posture() {
    let _shared = REAP_LOCK.read().await;
    let Some(()) = require_docker("the_session_container_has_the_throwaway_posture").await else {
        return;
    };
    // One workspace root, two backends: per call and per session.
    let tmp = tempfile::tempdir().unwrap();
    let workspaces = Workspaces::new(tmp.path().join("workspaces"), docker_settings().user);
    let per_call = Arc::new(DockerBackend::new(docker_settings()));
    let per_session = Arc::new(DockerBackend::new(session_settings(Duration::from_secs(
        600,
    ))));
    let docker = per_call.client().await.unwrap();

    // Catch a throwaway container while its call runs.
    let plan = validate(request(SESSION_A, RW, "sleep 5", 0));
    let workspace = workspaces.prepare(&plan).unwrap();
    let running = tokio::spawn({
        let backend = Arc::clone(&per_call);
        async move { backend.run(plan, workspace).await }
    });
    let call_label = format!("{INSTANCE_LABEL}={}", per_call.instance_id());
    let deadline = Instant::now() + Duration::from_secs(10);
    let call_id = loop {
        if let Some(id) = list(docker, &call_label).await.pop() {
            break id;
        }
        assert!(Instant::now() < deadline, "no call container appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let call = inspect(docker, &call_id).await;

    let plan = validate(request(SESSION_A, RW, "true", 0));
    let workspace = workspaces.prepare(&plan).unwrap();
    per_session.run(plan, workspace).await.unwrap();
    let session_label = format!("{INSTANCE_LABEL}={}", per_session.instance_id());
    let session_ids = list(docker, &session_label).await;
    assert_eq!(session_ids.len(), 1);
    let session = inspect(docker, &session_ids[0]).await;

    // The whole host config, as the engine reports it, is the same.
    assert_eq!(session.host_config, call.host_config);
    let hc = session.host_config.clone().unwrap();
    assert_eq!(hc.network_mode.as_deref(), Some("none"));
    assert_eq!(hc.readonly_rootfs, Some(true));
    assert_eq!(hc.init, Some(true));
    assert_eq!(hc.cap_drop.unwrap(), ["ALL"]);
    let (call_config, session_config) = (call.config.unwrap(), session.config.unwrap());
    assert_eq!(session_config.image, call_config.image);
    assert_eq!(session_config.user, call_config.user);
    assert_eq!(session_config.network_disabled, Some(true));
    // The environment is the sandbox's own only (Docker adds HOSTNAME).
    let env: Vec<String> = session_config
        .env
        .unwrap()
        .into_iter()
        .filter(|e| !e.starts_with("HOSTNAME="))
        .collect();
    assert_eq!(env, SANDBOX_ENV);
    // The labels: the same, plus the reuse mark.
    let mut labels = session_config.labels.unwrap();
    assert_eq!(labels.remove(REUSE_LABEL).as_deref(), Some(SESSION_REUSE));
    labels.remove(INSTANCE_LABEL);
    let mut call_labels = call_config.labels.unwrap();
    call_labels.remove(INSTANCE_LABEL);
    assert_eq!(labels, call_labels);

    let outcome = running.await.unwrap().unwrap();
    assert_eq!(outcome.exit_code, 0);
    per_session.reap_own().await.unwrap();
    assert!(list(docker, &session_label).await.is_empty());
    assert!(list(docker, &call_label).await.is_empty());
}

#[tokio::test]
async fn a_read_only_grant_never_writes_in_a_session() {
    let Some((_shared, h)) = harness("a_read_only_grant_never_writes_in_a_session").await else {
        return;
    };
    // A read-write call makes the session's container first.
    let o = h
        .run(request(
            SESSION_A,
            RW,
            "echo rw > /tmp/rw-mark; echo w > written.txt",
            0,
        ))
        .await;
    assert_eq!(o.exit_code, 0, "{}", err(&o));
    // A read-only call of the same session cannot write the workspace ...
    let o = h
        .run(request(SESSION_A, RO, "cat written.txt; touch ro.txt", 0))
        .await;
    assert_eq!(out(&o), "w\n");
    assert_ne!(o.exit_code, 0);
    assert!(err(&o).contains("Read-only file system"), "{}", err(&o));
    assert!(!h.agent_dir().join("ro.txt").exists());
    // ... because it runs in a container of its own: read-write state is not there.
    let o = h.run(request(SESSION_A, RO, "cat /tmp/rw-mark", 0)).await;
    assert_ne!(o.exit_code, 0, "{}", out(&o));
    assert_eq!(h.leftovers().await, 2);
    // Each keeps its own state.
    let o = h
        .run(request(SESSION_A, RO, "echo ro > /tmp/ro-mark", 0))
        .await;
    assert_eq!(o.exit_code, 0, "{}", err(&o));
    let o = h
        .run(request(SESSION_A, RW, "cat /tmp/rw-mark; ls /tmp", 0))
        .await;
    assert_eq!(out(&o), "rw\nrw-mark\n", "{}", err(&o));
    // A read-write call after read-only ones still writes.
    let o = h.run(request(SESSION_A, RW, "touch rw.txt", 0)).await;
    assert_eq!(o.exit_code, 0, "{}", err(&o));
    assert!(h.agent_dir().join("rw.txt").exists());

    h.backend.reap_own().await.unwrap();
    assert_eq!(h.leftovers().await, 0);
}

// ---------- the escape battery's core, in session mode ----------

/// Python that makes one raw system call and prints `OK` or the errno's name.
fn syscall_py(nr: libc::c_long, args: &[i64]) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("ctypes.c_long({a})")).collect();
    format!(
        "import ctypes, errno\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         r = libc.syscall(ctypes.c_long({nr}){sep}{args})\n\
         e = ctypes.get_errno()\n\
         print('OK' if r != -1 else errno.errorcode.get(e, str(e)))\n",
        sep = if args.is_empty() { "" } else { ", " },
        args = args.join(", "),
    )
}

/// One escape attempt: a shell line or Python, and what it must print.
enum Probe {
    Shell(&'static str),
    Python(String),
}

#[tokio::test]
async fn the_escape_batterys_core_fails_in_session_mode_too() {
    let Some((_shared, h)) = harness("the_escape_batterys_core_fails_in_session_mode_too").await
    else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    const BAD_PID: i64 = 0x3fff_ffff;
    let cases: Vec<(&str, Probe, &str)> = vec![
        (
            "/etc/shadow is unreadable",
            Probe::Shell("cat /etc/shadow >/dev/null 2>&1 && echo READ || echo denied"),
            "denied",
        ),
        (
            "the root file system is read-only",
            Probe::Shell("touch /etc/x 2>&1 | grep -q 'Read-only' && echo EROFS"),
            "EROFS",
        ),
        (
            "no interface but loopback, no route",
            Probe::Python(
                "import socket\nprint(socket.if_nameindex(), open('/proc/net/route').read().splitlines()[1:])"
                    .into(),
            ),
            "[(1, 'lo')] []",
        ),
        (
            "the host's loopback is unreachable",
            Probe::Python(format!(
                "import socket, errno\n\
                 try:\n  socket.create_connection(('127.0.0.1', {port}), timeout=3); print('CONNECTED')\n\
                 except OSError as e: print(errno.errorcode[e.errno])"
            )),
            "ECONNREFUSED",
        ),
        (
            "mount",
            Probe::Python(syscall_py(libc::SYS_mount, &[0, 0, 0, 0, 0])),
            "EPERM",
        ),
        (
            "unshare",
            Probe::Python(syscall_py(libc::SYS_unshare, &[0])),
            "EPERM",
        ),
        (
            "ptrace",
            Probe::Python(syscall_py(libc::SYS_ptrace, &[2, BAD_PID, 0, 0])),
            "EPERM",
        ),
        (
            "io_uring",
            Probe::Python(syscall_py(libc::SYS_io_uring_setup, &[0, 0])),
            "EPERM",
        ),
        (
            "capabilities all zero, no new privileges, seccomp",
            Probe::Shell(
                "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status \
                 | tr -s '\\t' ' ' | tr '\\n' ' '",
            ),
            "CapInh: 0000000000000000 CapPrm: 0000000000000000 CapEff: 0000000000000000 \
             CapBnd: 0000000000000000 CapAmb: 0000000000000000 NoNewPrivs: 1 Seccomp: 2",
        ),
        (
            "not root, and setuid(0) fails",
            Probe::Python(
                "import os\ntry:\n  os.setuid(0); print('ROOT')\nexcept OSError as e: print(os.getuid() != 0, e.strerror)"
                    .into(),
            ),
            "True Operation not permitted",
        ),
        (
            "limits as in a call container",
            Probe::Shell("echo $(ulimit -c) $(ulimit -n) $(ulimit -f)"),
            "0 1024 131072",
        ),
        (
            "no inherited descriptors, only our environment",
            Probe::Python(
                "import os\nfds = []\nfor fd in range(3, 1024):\n  try: os.fstat(fd); fds.append(fd)\n  except OSError: pass\nprint(sorted(os.environ), fds)"
                    .into(),
            ),
            "['HOME', 'HOSTNAME', 'LANG', 'PATH'] []",
        ),
        (
            "pid 1 is the container's init, not the host's",
            Probe::Shell("tr '\\0' ' ' < /proc/1/cmdline"),
            "/sbin/docker-init -- sleep infinity",
        ),
    ];
    for (name, probe, expected) in cases {
        let o = match &probe {
            Probe::Shell(line) => sh(&h, SESSION_A, line).await,
            Probe::Python(code) => py(&h, SESSION_A, code).await,
        };
        assert_eq!(out(&o).trim(), expected, "{name}: stderr {}", err(&o));
        assert!(!o.timed_out, "{name}");
    }
    assert!(
        listener.accept().is_err(),
        "the host listener saw a connection"
    );
    assert_eq!(h.leftovers().await, 1, "all in the session's one container");
    h.backend.reap_own().await.unwrap();
    assert_eq!(h.leftovers().await, 0);
}

/// The gateway decides per turn: a grant whose sandbox scope is `CALL` (or that has no
/// sandbox claim) gets a throwaway container even where the executor keeps session ones.
#[tokio::test]
async fn a_call_scoped_grant_gets_a_throwaway_container() {
    let Some((_shared, h)) = harness("a_call_scoped_grant_gets_a_throwaway_container").await else {
        return;
    };
    let session_container = container_name(&h, SESSION_A).await;
    assert_eq!(h.leftovers().await, 1);
    let with = |scope: Option<SandboxScope>| {
        let mut req = request(SESSION_A, RW, "uname -n", 0);
        let mut claims =
            GrantClaims::decode(req.grant.as_ref().unwrap().claims.as_slice()).unwrap();
        claims.sandbox = scope.map(|scope| SandboxGrant {
            network: NetworkAccess::None.into(),
            scope: scope.into(),
        });
        req.grant = Some(sign_claims(&testing::gateway_key(), &claims));
        req
    };
    for scope in [Some(SandboxScope::Call), None] {
        let first = out(&h.run(with(scope)).await).trim().to_owned();
        let second = out(&h.run(with(scope)).await).trim().to_owned();
        assert_ne!(first, second, "{scope:?}: a new container per call");
        assert_ne!(first, session_container, "{scope:?}");
    }
    // The throwaway containers are gone; the session's is still there.
    assert_eq!(h.leftovers().await, 1);
    assert_eq!(container_name(&h, SESSION_A).await, session_container);
    h.backend.reap_own().await.unwrap();
}
