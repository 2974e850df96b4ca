//! The guard in front of the real Docker engine, on a temporary Unix socket. Needs Docker
//! (see `common::require_docker`). Every container created here carries the label
//! `pincer.guard-test=<run id>` (or, for the executor's own, `pincer.executor=<instance>`)
//! and is removed at the end. Nothing a refused request describes is ever started: the
//! bodies run `true` in the sandbox posture, and the guard's refusals are checked before
//! anything else is attempted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{
    DOCKER_SOCKET, GuardHarness, IMAGE, call, call_raw, plan, plan_with_timeout, remove,
    require_docker, set, settings, try_call_raw,
};
use pincer_docker_guard::proxy::MAX_BODY_BYTES;
use pincer_executor::docker::posture::INSTANCE_LABEL;
use pincer_executor::{DockerBackend, Sandbox, Workspaces};
use serde_json::{Value, json};

fn engine() -> &'static Path {
    Path::new(DOCKER_SOCKET)
}

/// Asserts a guard refusal: 403, Docker's error shape, naming `needle`.
fn assert_refused(status: u16, body: &Value, needle: &str, what: &str) {
    assert_eq!(status, 403, "{what}: {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("pincer-docker-guard: ") && message.contains(needle),
        "{what}: {message:?} should name {needle:?}"
    );
}

async fn create_via_guard(h: &GuardHarness, body: &Value) -> String {
    let (status, created) = call(&h.socket, "POST", "/containers/create", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["Id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_executors_docker_backend_works_through_the_guard() {
    let Some(()) = require_docker("the_executors_docker_backend_works_through_the_guard").await
    else {
        return;
    };
    let h = GuardHarness::start().await;
    let mut s = settings(IMAGE);
    s.host = Some(format!("unix://{}", h.socket.display()));
    let user = s.user;
    let backend = Arc::new(DockerBackend::new(s));
    h.cleanup_labels
        .lock()
        .unwrap()
        .push(format!("{INSTANCE_LABEL}={}", backend.instance_id()));
    let workspaces = Workspaces::new(h.root.clone(), user);

    // version negotiation, image check, create, attach (upgrade), start, wait, remove
    let p = plan("echo hi > note.txt && cat note.txt && echo err >&2");
    let ws = workspaces.prepare(&p).unwrap();
    let out = backend.run(p, ws).await.unwrap();
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    assert_eq!(
        std::fs::read_to_string(h.root.join("main/note.txt")).unwrap(),
        "hi\n"
    );

    // exit codes pass through the wait
    let p = plan("exit 3");
    let ws = workspaces.prepare(&p).unwrap();
    assert_eq!(backend.run(p, ws).await.unwrap().exit_code, 3);

    // the timeout path: kill through the guard
    let p = plan_with_timeout("sleep 30", 1_000);
    let ws = workspaces.prepare(&p).unwrap();
    let out = backend.run(p, ws).await.unwrap();
    assert!(out.timed_out, "{out:?}");

    // the reaper's list and removal through the guard
    backend.reap_own().await.unwrap();
    let label = format!("{INSTANCE_LABEL}={}", backend.instance_id());
    let filters = json!({ "label": [label] }).to_string();
    let path = format!(
        "/containers/json?all=true&filters={}",
        url::form_urlencoded::byte_serialize(filters.as_bytes()).collect::<String>()
    );
    let (status, list) = call(engine(), "GET", &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(list, json!([]), "the executor's sandboxes are all removed");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_executor_reaches_the_guard_over_tcp_as_in_compose() {
    let Some(()) = require_docker("the_executor_reaches_the_guard_over_tcp_as_in_compose").await
    else {
        return;
    };
    let h = GuardHarness::start_tcp().await;
    let mut s = settings(IMAGE);
    s.host = Some(format!("tcp://{}", h.tcp.unwrap()));
    let user = s.user;
    let backend = DockerBackend::new(s);
    h.cleanup_labels
        .lock()
        .unwrap()
        .push(format!("{INSTANCE_LABEL}={}", backend.instance_id()));
    let workspaces = Workspaces::new(h.root.clone(), user);
    let p = plan("id -u; ls -d /workspace");
    let ws = workspaces.prepare(&p).unwrap();
    let out = backend.run(p, ws).await.unwrap();
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n/workspace\n", user.uid)
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_creates_are_refused_and_create_nothing() {
    let Some(()) = require_docker("forbidden_creates_are_refused_and_create_nothing").await else {
        return;
    };
    let h = GuardHarness::start().await;
    // A link the executor (or anyone who can write the root) might plant: textually
    // `<root>/<agent>`, really the host's `/`.
    std::os::unix::fs::symlink("/", h.root.join("evil")).unwrap();
    let evil = format!("{}/evil", h.root_str());
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "privileged",
            Box::new(|b| set(b, "/HostConfig/Privileged", json!(true))),
            "HostConfig.Privileged",
        ),
        (
            "bind the host root",
            Box::new(|b| set(b, "/HostConfig/Binds", json!(["/:/host"]))),
            "HostConfig.Binds",
        ),
        (
            "mount the host root",
            Box::new(|b| set(b, "/HostConfig/Mounts/0/Source", json!("/"))),
            "HostConfig.Mounts[0].Source",
        ),
        (
            "mount the docker socket",
            Box::new(|b| set(b, "/HostConfig/Mounts/0/Source", json!(DOCKER_SOCKET))),
            "HostConfig.Mounts[0].Source",
        ),
        (
            "mount through a symlink",
            Box::new(move |b| set(b, "/HostConfig/Mounts/0/Source", json!(evil))),
            "is a symbolic link",
        ),
        (
            "cap add",
            Box::new(|b| set(b, "/HostConfig/CapAdd", json!(["SYS_ADMIN"]))),
            "HostConfig.CapAdd",
        ),
        (
            "host network",
            Box::new(|b| set(b, "/HostConfig/NetworkMode", json!("host"))),
            "HostConfig.NetworkMode",
        ),
        (
            "host pid",
            Box::new(|b| set(b, "/HostConfig/PidMode", json!("host"))),
            "HostConfig.PidMode",
        ),
        (
            "seccomp unconfined",
            Box::new(|b| {
                set(
                    b,
                    "/HostConfig/SecurityOpt",
                    json!(["no-new-privileges", "seccomp=unconfined"]),
                )
            }),
            "seccomp=unconfined",
        ),
        (
            "masked paths off",
            Box::new(|b| set(b, "/HostConfig/MaskedPaths", json!([]))),
            "HostConfig.MaskedPaths",
        ),
        (
            "root user",
            Box::new(|b| set(b, "/User", json!("0:0"))),
            "User",
        ),
        (
            "another image",
            Box::new(|b| set(b, "/Image", json!("pincer-base:bookworm"))),
            "Image",
        ),
        (
            "writable root",
            Box::new(|b| set(b, "/HostConfig/ReadonlyRootfs", json!(false))),
            "HostConfig.ReadonlyRootfs",
        ),
        (
            "no memory limit",
            Box::new(|b| remove(b, "/HostConfig/Memory")),
            "HostConfig.Memory",
        ),
        (
            "privileged in lower case",
            Box::new(|b| {
                let hc = b["HostConfig"].as_object_mut().unwrap();
                hc.remove("Privileged");
                hc.insert("privileged".into(), json!(true));
            }),
            "HostConfig.Privileged",
        ),
    ];
    for (what, edit, needle) in &cases {
        let mut body = h.body(&["true"]);
        edit(&mut body);
        let (status, answer) = call(&h.socket, "POST", "/containers/create", Some(&body)).await;
        assert_refused(status, &answer, needle, what);
    }
    // The same bodies sent straight to the engine would have been accepted (so the
    // refusals above are the guard's doing): check one, then remove it unstarted.
    let mut body = h.body(&["true"]);
    set(&mut body, "/HostConfig/CapAdd", json!(["SYS_ADMIN"]));
    let (status, created) = call(engine(), "POST", "/containers/create", Some(&body)).await;
    assert_eq!(status, 201, "{created}");
    h.cleanup().await;
    assert!(
        h.containers().await.is_empty(),
        "nothing created through the guard"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posture_container_lives_and_dies_through_the_guard() {
    let Some(()) = require_docker("a_posture_container_lives_and_dies_through_the_guard").await
    else {
        return;
    };
    let h = GuardHarness::start().await;
    let id = create_via_guard(&h, &h.body(&["/bin/sh", "-c", "exit 7"])).await;
    assert_eq!(h.containers().await, vec![id.clone()]);

    // Other operations on a sandbox are still refused. (An exec without the sandbox's
    // user is refused too, for its body once the exec endpoints are served:
    // tests/exec_engine.rs.)
    let (status, answer) = call(
        &h.socket,
        "POST",
        &format!("/containers/{id}/exec"),
        Some(&json!({"Cmd": ["true"]})),
    )
    .await;
    assert_refused(status, &answer, "", "exec without a user");
    for (method, path, body) in [
        ("GET", format!("/containers/{id}/archive?path=/"), None),
        ("GET", format!("/containers/{id}/export"), None),
        (
            "POST",
            format!("/containers/{id}/update"),
            Some(json!({"Memory": 0})),
        ),
        ("POST", format!("/commit?container={id}"), None),
    ] {
        let (status, answer) = call(&h.socket, method, &path, body.as_ref()).await;
        assert_refused(status, &answer, "not an endpoint", &path);
    }
    // Old API versions could hand `start` a new host config.
    let (status, answer) = call(
        &h.socket,
        "POST",
        &format!("/v1.23/containers/{id}/start"),
        Some(&json!({"Privileged": true})),
    )
    .await;
    assert_refused(status, &answer, "API version", "old API start");
    // A body on start is refused whatever the version.
    let (status, answer) = call(
        &h.socket,
        "POST",
        &format!("/v1.41/containers/{id}/start"),
        Some(&json!({"Privileged": true})),
    )
    .await;
    assert_refused(status, &answer, "no request body", "start with a body");
    // Attach without an upgrade is refused (the engine would hijack the connection).
    let (status, answer) = call(
        &h.socket,
        "POST",
        &format!("/containers/{id}/attach?stream=true&stdout=true"),
        None,
    )
    .await;
    assert_refused(status, &answer, "upgrade", "attach without upgrade");

    let (status, answer) = call(
        &h.socket,
        "POST",
        &format!("/v1.41/containers/{id}/start"),
        None,
    )
    .await;
    assert_eq!(status, 204, "{answer}");
    let (status, answer) = call(&h.socket, "POST", &format!("/containers/{id}/wait"), None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["StatusCode"], 7);
    let (status, answer) = call(
        &h.socket,
        "POST",
        &format!("/containers/{id}/kill?signal=SIGKILL"),
        None,
    )
    .await;
    assert_eq!(
        status, 409,
        "the engine's own answer (not running) passes: {answer}"
    );
    let (status, answer) = call(
        &h.socket,
        "DELETE",
        &format!("/containers/{id}?force=true&v=true"),
        None,
    )
    .await;
    assert_eq!(status, 204, "{answer}");
    assert!(h.containers().await.is_empty());
    // A container that is gone: the engine's 404 passes through (the executor relies on it).
    let (status, _) = call(
        &h.socket,
        "DELETE",
        &format!("/containers/{id}?force=true"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_without_the_sandbox_label_are_out_of_reach() {
    let Some(()) = require_docker("containers_without_the_sandbox_label_are_out_of_reach").await
    else {
        return;
    };
    let h = GuardHarness::start().await;
    // Created directly on the engine, in the posture but without pincer.sandbox=1.
    let mut body = h.body(&["true"]);
    remove(&mut body, "/Labels/pincer.sandbox");
    let name = format!("pincer-guard-test-{}", h.run_id);
    let (status, created) = call(
        engine(),
        "POST",
        &format!("/containers/create?name={name}"),
        Some(&body),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["Id"].as_str().unwrap().to_owned();

    for target in [id.as_str(), &id[..12], name.as_str()] {
        for (method, path, headers) in [
            ("POST", format!("/containers/{target}/start"), vec![]),
            (
                "POST",
                format!("/containers/{target}/kill?signal=SIGKILL"),
                vec![],
            ),
            ("POST", format!("/containers/{target}/wait"), vec![]),
            (
                "POST",
                format!("/containers/{target}/attach?stream=true&stdout=true"),
                vec![("Connection", "Upgrade"), ("Upgrade", "tcp")],
            ),
            ("DELETE", format!("/containers/{target}?force=true"), vec![]),
        ] {
            let (status, answer) = call_raw(&h.socket, method, &path, Vec::new(), &headers).await;
            assert_refused(status, &answer, "not a Pincer sandbox", &path);
        }
    }
    // Still there, never started.
    let (status, inspected) = call(engine(), "GET", &format!("/containers/{id}/json"), None).await;
    assert_eq!(status, 200);
    assert_eq!(inspected["State"]["Status"], "created");
    // And invisible in lists through the guard, whatever the filter asks.
    let filters = json!({ "label": [h.label_filter()] }).to_string();
    let path = format!(
        "/containers/json?all=true&filters={}",
        url::form_urlencoded::byte_serialize(filters.as_bytes()).collect::<String>()
    );
    let (status, list) = call(&h.socket, "GET", &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(list, json!([]));
    let (status, list) = call(&h.socket, "GET", "/containers/json?all=true", None).await;
    assert_eq!(status, 200);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|c| c["Labels"]["pincer.sandbox"] == "1"),
        "{list}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_volumes_networks_and_exec_are_refused() {
    let Some(()) = require_docker("images_volumes_networks_and_exec_are_refused").await else {
        return;
    };
    let h = GuardHarness::start().await;
    let volume = format!("pincer-guard-test-{}", h.run_id);
    let network = format!("pincer-guard-test-{}", h.run_id);
    let sandbox = create_via_guard(&h, &h.body(&["true"])).await;
    for (path, body) in [
        (
            "/images/create?fromImage=busybox&tag=latest".to_owned(),
            None,
        ),
        ("/volumes/create".to_owned(), Some(json!({"Name": volume}))),
        (
            "/networks/create".to_owned(),
            Some(json!({"Name": network})),
        ),
        ("/build".to_owned(), None),
        ("/v1.41/images/load".to_owned(), None),
    ] {
        let (status, answer) = call(&h.socket, "POST", &path, body.as_ref()).await;
        assert_refused(status, &answer, "not an endpoint", &path);
    }
    // A privileged exec (refused as an endpoint, or for its body once the exec endpoints
    // are served: tests/exec_engine.rs).
    let (status, answer) = call(
        &h.socket,
        "POST",
        &format!("/containers/{sandbox}/exec"),
        Some(&json!({"Cmd": ["true"], "Privileged": true})),
    )
    .await;
    assert_refused(status, &answer, "", "privileged exec");
    for path in [
        "/info",
        "/images/json",
        "/volumes",
        "/networks",
        "/events",
        "/system/df",
    ] {
        let (status, answer) = call(&h.socket, "GET", path, None).await;
        assert_refused(status, &answer, "not an endpoint", path);
    }
    // Nothing was made.
    let (status, _) = call(engine(), "GET", &format!("/volumes/{volume}"), None).await;
    assert_eq!(status, 404, "no volume");
    let (status, _) = call(engine(), "GET", &format!("/networks/{network}"), None).await;
    assert_eq!(status, 404, "no network");
    let (status, inspected) = call(
        engine(),
        "GET",
        &format!("/containers/{sandbox}/json"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(inspected["ExecIDs"], Value::Null, "no exec instance");
    // Allowed information: ping, version, the sandbox image only.
    let (status, pong) = call(&h.socket, "GET", "/_ping", None).await;
    assert_eq!((status, pong), (200, json!("OK")));
    let (status, _) = call_raw(&h.socket, "HEAD", "/_ping", Vec::new(), &[]).await;
    assert_eq!(status, 200);
    let (status, version) = call(&h.socket, "GET", "/version", None).await;
    assert_eq!(status, 200);
    assert!(version["ApiVersion"].is_string(), "{version}");
    let (status, image) = call(&h.socket, "GET", &format!("/images/{IMAGE}/json"), None).await;
    assert_eq!(status, 200);
    assert!(image["Id"].is_string());
    let (status, answer) = call(&h.socket, "GET", "/images/pincer-base:bookworm/json", None).await;
    assert_refused(status, &answer, "not an endpoint", "another image");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_and_shutdown_closes_the_socket() {
    let Some(()) =
        require_docker("oversized_bodies_are_refused_and_shutdown_closes_the_socket").await
    else {
        return;
    };
    let h = GuardHarness::start().await;
    let mut body = h.body(&["true"]);
    let pad = MAX_BODY_BYTES + 64 * 1024;
    set(
        &mut body,
        "/Env/3",
        json!(format!("PAD={}", "x".repeat(pad))),
    );
    // The guard answers after reading its limit and closes the connection; the client may
    // still be writing, and then sees the close instead of the answer.
    match try_call_raw(
        &h.socket,
        "POST",
        "/containers/create",
        body.to_string().into_bytes(),
        &[("Content-Type", "application/json")],
    )
    .await
    {
        Ok((status, answer)) => assert_refused(status, &answer, "larger than", "oversized body"),
        Err(e) => assert!(
            e.is_closed()
                || e.to_string().contains("roken pipe")
                || e.to_string().contains("reset"),
            "{e}"
        ),
    }
    assert!(h.containers().await.is_empty());
    let socket = h.socket.clone();
    h.stop().await;
    assert!(
        tokio::net::UnixStream::connect(&socket).await.is_err(),
        "nothing listens after shutdown"
    );
}
