//! Forbidden `docker exec` requests sent straight to the guard (not through the executor),
//! in front of the real engine: a privileged exec, another user, an environment that
//! replaces the sandbox's, a working directory outside the workspace, a tty, an exec into a
//! container without the sandbox label, and starts and inspections of exec instances made
//! behind the guard's back. Each is refused with 403 in Docker's error shape, and no exec
//! instance appears on the target container. And the executor's per-session calls through
//! the guard.
//! Needs Docker (see `common::require_docker`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    DOCKER_SOCKET, GuardHarness, IMAGE, call, call_raw, plan_with_timeout, remove, require_docker,
    settings,
};
use pincer_executor::docker::ContainerReuse;
use pincer_executor::docker::posture::INSTANCE_LABEL;
use pincer_executor::{DockerBackend, Sandbox, Workspaces};
use serde_json::{Value, json};

fn engine() -> &'static Path {
    Path::new(DOCKER_SOCKET)
}

fn assert_guard_refused(status: u16, body: &Value, what: &str) {
    assert_eq!(status, 403, "{what}: {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("pincer-docker-guard: "),
        "{what}: {message:?}"
    );
}

/// A running container made directly on the engine from `body`.
async fn running(body: &Value) -> String {
    let (status, created) = call(engine(), "POST", "/containers/create", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["Id"].as_str().unwrap().to_owned();
    let (status, answer) = call(engine(), "POST", &format!("/containers/{id}/start"), None).await;
    assert_eq!(status, 204, "{answer}");
    id
}

async fn exec_ids(id: &str) -> Value {
    let (status, inspected) = call(engine(), "GET", &format!("/containers/{id}/json"), None).await;
    assert_eq!(status, 200, "{inspected}");
    inspected["ExecIDs"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_exec_requests_are_refused_even_when_sent_directly() {
    let Some(()) =
        require_docker("forbidden_exec_requests_are_refused_even_when_sent_directly").await
    else {
        return;
    };
    let h = GuardHarness::start().await;
    let user = settings("unused").user.docker_user();
    // A sandbox in the posture, idle like a session's container.
    let sandbox = running(&h.body(&["sleep", "60"])).await;
    // The same posture without the sandbox label.
    let mut unlabelled = h.body(&["sleep", "60"]);
    remove(&mut unlabelled, "/Labels/pincer.sandbox");
    let stranger = running(&unlabelled).await;

    let valid = json!({
        "AttachStdout": true, "AttachStderr": true, "AttachStdin": false, "Tty": false,
        "Env": [], "Cmd": ["id"], "Privileged": false, "User": user,
        "WorkingDir": "/workspace",
    });
    let with = |key: &str, value: Value| {
        let mut body = valid.clone();
        body[key] = value;
        body
    };
    let forbidden = [
        ("privileged", with("Privileged", json!(true))),
        ("privileged, lower case", {
            let mut b = valid.clone();
            b.as_object_mut().unwrap().remove("Privileged");
            b["privileged"] = json!(true);
            b
        }),
        ("root", with("User", json!("0"))),
        ("root by name", with("User", json!("root"))),
        ("another uid", with("User", json!("4242:4242"))),
        ("the container's default user", with("User", json!(""))),
        ("PATH replaced", with("Env", json!(["PATH=/workspace"]))),
        ("HOME replaced", with("Env", json!(["HOME=/workspace"]))),
        ("LANG replaced", with("Env", json!(["LANG=C"]))),
        ("PATH unset", with("Env", json!(["PATH"]))),
        (
            "loader variable",
            with("Env", json!(["LD_PRELOAD=/workspace/x.so"])),
        ),
        ("working directory /", with("WorkingDir", json!("/"))),
        ("working directory /etc", with("WorkingDir", json!("/etc"))),
        (
            "working directory through ..",
            with("WorkingDir", json!("/workspace/../etc")),
        ),
        ("a tty", with("Tty", json!(true))),
        ("an unknown field", with("Capabilities", json!(["ALL"]))),
    ];
    for (what, body) in &forbidden {
        let (status, answer) = call(
            &h.socket,
            "POST",
            &format!("/containers/{sandbox}/exec"),
            Some(body),
        )
        .await;
        assert_guard_refused(status, &answer, what);
    }
    // A valid body into a container that is not a sandbox.
    for target in [stranger.as_str(), &stranger[..12]] {
        let (status, answer) = call(
            &h.socket,
            "POST",
            &format!("/containers/{target}/exec"),
            Some(&valid),
        )
        .await;
        assert_guard_refused(status, &answer, "exec into a container without the label");
    }
    assert_eq!(
        exec_ids(&sandbox).await,
        Value::Null,
        "no exec on the sandbox"
    );
    assert_eq!(
        exec_ids(&stranger).await,
        Value::Null,
        "no exec on the stranger"
    );

    // Exec instances made behind the guard's back (directly on the engine) cannot be
    // started or inspected through it when they belong to a container without the label,
    // nor started with a tty or resized.
    let (status, made) = call(
        engine(),
        "POST",
        &format!("/containers/{stranger}/exec"),
        Some(&valid),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let stranger_exec = made["Id"].as_str().unwrap().to_owned();
    let (status, made) = call(
        engine(),
        "POST",
        &format!("/containers/{sandbox}/exec"),
        Some(&valid),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let sandbox_exec = made["Id"].as_str().unwrap().to_owned();
    let upgrade = [("Connection", "Upgrade"), ("Upgrade", "tcp")];
    for (what, method, path, body) in [
        (
            "start of a stranger's exec",
            "POST",
            format!("/exec/{stranger_exec}/start"),
            json!({"Detach": false, "Tty": false}),
        ),
        (
            "inspection of a stranger's exec",
            "GET",
            format!("/exec/{stranger_exec}/json"),
            Value::Null,
        ),
        (
            "start with a tty",
            "POST",
            format!("/exec/{sandbox_exec}/start"),
            json!({"Detach": false, "Tty": true}),
        ),
        (
            "resize",
            "POST",
            format!("/exec/{sandbox_exec}/resize?h=10&w=10"),
            Value::Null,
        ),
    ] {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let (status, answer) = call_raw(&h.socket, method, &path, bytes, &upgrade).await;
        assert_guard_refused(status, &answer, what);
    }
    // Neither exec ever ran.
    for exec in [&stranger_exec, &sandbox_exec] {
        let (status, inspected) = call(engine(), "GET", &format!("/exec/{exec}/json"), None).await;
        assert_eq!(status, 200, "{inspected}");
        assert_eq!(inspected["Running"], false);
        assert_eq!(inspected["Pid"], 0, "never started: {inspected}");
    }

    h.cleanup().await;
    assert!(h.containers().await.is_empty());
    h.stop().await;
}

/// The executor's per-session calls through the guard (docs/sandbox.md, "Docker guard",
/// "Exec").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_executors_session_calls_work_through_the_guard() {
    let Some(()) = require_docker("the_executors_session_calls_work_through_the_guard").await
    else {
        return;
    };
    let h = GuardHarness::start().await;
    let mut s = settings(IMAGE);
    s.host = Some(format!("unix://{}", h.socket.display()));
    s.reuse = ContainerReuse::PerSession {
        idle: Duration::from_secs(600),
    };
    let user = s.user;
    let backend = DockerBackend::new(s);
    h.cleanup_labels
        .lock()
        .unwrap()
        .push(format!("{INSTANCE_LABEL}={}", backend.instance_id()));
    let workspaces = Workspaces::new(h.root.clone(), user);
    let run = |line: &str, timeout_ms: u32| {
        let p = plan_with_timeout(line, timeout_ms);
        let ws = workspaces.prepare(&p).unwrap();
        backend.run(p, ws)
    };

    // Image check, create, start, then one exec (create, start with an upgrade, inspect)
    // per call, in one container.
    let out = run(
        "echo one > /tmp/note && echo hi > note.txt && echo err >&2",
        0,
    )
    .await
    .unwrap();
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    let out = run("cat /tmp/note note.txt; exit 3", 0).await.unwrap();
    assert_eq!(out.exit_code, 3);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\nhi\n");
    // The timeout: the kill is an exec through the guard too; the container stays.
    let out = run("sleep 30", 1_000).await.unwrap();
    assert!(out.timed_out, "{out:?}");
    let out = run("cat /tmp/note", 0).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\n");

    backend.reap_own().await.unwrap();
    let label = format!("{INSTANCE_LABEL}={}", backend.instance_id());
    let filters = json!({ "label": [label] }).to_string();
    let path = format!(
        "/containers/json?all=true&filters={}",
        url::form_urlencoded::byte_serialize(filters.as_bytes()).collect::<String>()
    );
    let (status, list) = call(engine(), "GET", &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(list, json!([]), "the session container is removed");
    h.stop().await;
}
