//! The guard's `docker exec` rules, without Docker (per-session containers,
//! `executor.docker.reuse: "session"`): the executor's real exec bodies pass; privileged
//! execs, other users, environment entries that replace the sandbox's own, working
//! directories outside the workspace, ttys and unknown fields are refused and named; the
//! exec endpoints are recognised only by `classify_exec`, never by `classify`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{policy, set, settings};
use http::Method;
use pincer_docker_guard::rules::create::exec::{check_exec_create, check_exec_start};
use pincer_docker_guard::rules::endpoint::{ExecEndpoint, classify_exec};
use pincer_docker_guard::rules::{BindCheck, Refusal, check_create, classify};
use pincer_executor::docker::posture::{Binds, exec_config, kill_config, session_body};
use pincer_executor::{ExecLimits, ExecPlan, FixedClock, ValidatedExecPlan};
use pincer_proto::v1::{ExecRequest, exec_request};
use serde_json::{Value, json};

const ROOT: &str = "/srv/pincer/workspaces";
const EXEC_ID: &str = "4f1c2b9a0e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b";

/// The user the executor's sandboxes run as (and so the container's `Config.User`).
fn sandbox_user() -> String {
    settings("unused").user.docker_user()
}

fn plan(req: ExecRequest) -> ValidatedExecPlan {
    ExecPlan::from(req)
        .validate(
            ExecLimits {
                max_timeout: Duration::from_secs(30),
            },
            &pincer_executor::grant::testing::keys(),
            &FixedClock(common::now_ms()),
        )
        .unwrap()
}

fn request(line: &str) -> ExecRequest {
    ExecRequest {
        grant: Some(pincer_executor::grant::testing::grant(
            &["exec"],
            "s",
            "main",
            common::now_ms() + 600_000,
        )),
        session_key: "s".into(),
        command: Some(exec_request::Command::Shell(line.into())),
        ..Default::default()
    }
}

/// The exec body the executor sends for a call (built by its posture code, serialised the
/// way bollard does).
fn exec_body() -> Value {
    let mut req = request("echo hi");
    req.cwd = "notes/x".into();
    req.env.insert("GREETING".into(), "hello".into());
    serde_json::to_value(exec_config(&settings("unused"), &plan(req))).unwrap()
}

fn check(body: &Value) -> Result<Value, Refusal> {
    let checked = check_exec_create(
        &policy(ROOT, BindCheck::Text),
        body.to_string().as_bytes(),
        &sandbox_user(),
    )?;
    Ok(serde_json::from_slice(&checked.body).unwrap())
}

/// Applies `edit` to the executor's exec body and asserts a refusal naming `field`.
fn refused(edit: impl FnOnce(&mut Value), field: &str) {
    let mut body = exec_body();
    edit(&mut body);
    match check(&body) {
        Ok(_) => panic!("accepted, expected a refusal naming {field}: {body:#}"),
        Err(refusal) => {
            let message = refusal.to_string();
            assert!(
                message.contains(field),
                "refusal {message:?} does not name {field}"
            );
        }
    }
}

// ---- what the executor really sends ----

#[test]
fn the_executors_exec_bodies_pass_unchanged() {
    let body = exec_body();
    assert_eq!(check(&body).unwrap(), body);
    assert_eq!(body["WorkingDir"], "/workspace/notes/x");
    assert_eq!(body["Env"], json!(["GREETING=hello"]));
    // The kill at a timeout.
    let kill = serde_json::to_value(kill_config(&settings("unused"), 42)).unwrap();
    assert_eq!(check(&kill).unwrap(), kill);
    // bollard's start body.
    let start = json!({"Detach": false, "Tty": false, "OutputCapacity": null});
    let forwarded =
        check_exec_start(&policy(ROOT, BindCheck::Text), start.to_string().as_bytes()).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&forwarded.body).unwrap(),
        start
    );
    assert!(!forwarded.detach, "attached: the proxy splices the streams");
    let detached = check_exec_start(&policy(ROOT, BindCheck::Text), br#"{"Detach": true}"#);
    assert!(detached.unwrap().detach);
}

#[test]
fn a_session_containers_create_body_passes_unchanged() {
    let plan = plan(request("true"));
    let workspace = format!("{ROOT}/main");
    let socket = format!("{ROOT}/.egress/proxy.sock");
    for (read_only, egress) in [(false, None), (true, None), (false, Some(socket.as_str()))] {
        let body = session_body(
            &settings(common::IMAGE),
            plan.agent_id(),
            read_only,
            Binds {
                workspace: &workspace,
                egress,
            },
            "guard-test",
        );
        let body = serde_json::to_value(&body).unwrap();
        let checked =
            check_create(&policy(ROOT, BindCheck::Text), body.to_string().as_bytes()).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&checked.body).unwrap(),
            body
        );
    }
}

// ---- forbidden exec bodies ----

#[test]
fn a_privileged_exec_is_refused() {
    refused(|b| set(b, "/Privileged", json!(true)), "Privileged");
    // Read as the engine reads keys: case-folded, and a second spelling is a duplicate.
    refused(
        |b| {
            b.as_object_mut().unwrap().remove("Privileged");
            set(b, "/privileged", json!(true));
        },
        "Privileged",
    );
    let mut body = exec_body();
    set(&mut body, "/PRIVILEGED", json!(true));
    assert!(
        matches!(check(&body), Err(Refusal::Json(_))),
        "duplicate key"
    );
    refused(|b| set(b, "/Privileged", json!("true")), "Privileged");
}

#[test]
fn an_exec_as_another_user_is_refused() {
    let uid = sandbox_user()
        .split(':')
        .next()
        .unwrap()
        .parse::<u32>()
        .unwrap();
    for user in [
        json!("0"),
        json!("0:0"),
        json!("root"),
        json!(format!("{uid}")),
        json!(format!("{uid}:0")),
        json!(format!("{}:{}", uid + 1, uid + 1)),
        json!(""),
        json!(null),
        json!(10001),
    ] {
        refused(|b| set(b, "/User", user.clone()), "User");
    }
    refused(|b| remove_key(b, "User"), "User");
}

#[test]
fn environment_entries_replacing_the_sandboxs_are_refused() {
    for entry in [
        "PATH=/workspace/bin:/usr/bin",
        "PATH",
        "HOME=/workspace",
        "LANG=C",
        "TMPDIR=/workspace",
        "LD_PRELOAD=/workspace/x.so",
        "LD_LIBRARY_PATH=/workspace",
        "BASH_ENV=/workspace/rc",
        "ENV=/workspace/rc",
        "BASH_FUNC_ls%%=() { id; }",
        "=x",
        "A=\u{0}",
    ] {
        refused(
            |b| {
                b["Env"].as_array_mut().unwrap().push(json!(entry));
            },
            "Env",
        );
    }
    refused(|b| set(b, "/Env", json!("PATH=/x")), "Env");
    refused(|b| set(b, "/Env", json!([1])), "Env");
    // Names are case-sensitive in the environment: `path` is not `PATH`.
    let mut body = exec_body();
    body["Env"].as_array_mut().unwrap().push(json!("path=/x"));
    check(&body).unwrap();
}

#[test]
fn a_working_directory_outside_the_workspace_is_refused() {
    for dir in [
        "/",
        "/etc",
        "/tmp",
        "/workspacex",
        "/workspace/../etc",
        "/workspace/./x",
        "/workspace//x",
        "/workspace/",
        "workspace",
        "",
    ] {
        refused(|b| set(b, "/WorkingDir", json!(dir)), "WorkingDir");
    }
    refused(|b| remove_key(b, "WorkingDir"), "WorkingDir");
    for dir in ["/workspace", "/workspace/a/b"] {
        let mut body = exec_body();
        set(&mut body, "/WorkingDir", json!(dir));
        check(&body).unwrap();
    }
}

#[test]
fn a_tty_unknown_fields_and_no_command_are_refused() {
    refused(|b| set(b, "/Tty", json!(true)), "Tty");
    refused(|b| set(b, "/ConsoleSize", json!([24, 80])), "ConsoleSize");
    refused(
        |b| set(b, "/Capabilities", json!(["CAP_SYS_ADMIN"])),
        "Capabilities",
    );
    refused(
        |b| set(b, "/HostConfig", json!({"Privileged": true})),
        "HostConfig",
    );
    refused(|b| set(b, "/Cmd", json!([])), "Cmd");
    refused(|b| remove_key(b, "Cmd"), "Cmd");
    // A field the guard does not know passes only with a zero value.
    let mut body = exec_body();
    set(&mut body, "/SomethingNew", json!(false));
    check(&body).unwrap();
    for bad in [&b""[..], b"not json", b"[]", b"null"] {
        assert!(
            check_exec_create(&policy(ROOT, BindCheck::Text), bad, &sandbox_user()).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    // An empty container user (not a sandbox made by the create check) admits nothing.
    let body = exec_body();
    assert!(
        check_exec_create(
            &policy(ROOT, BindCheck::Text),
            body.to_string().as_bytes(),
            ""
        )
        .is_err()
    );
}

#[test]
fn a_start_with_a_tty_or_unknown_fields_is_refused() {
    let policy = policy(ROOT, BindCheck::Text);
    for (body, field) in [
        (json!({"Detach": false, "Tty": true}), "Tty"),
        (
            json!({"Detach": false, "ConsoleSize": [1, 1]}),
            "ConsoleSize",
        ),
        (json!({"Detach": false, "Privileged": true}), "Privileged"),
        (json!({"Detach": "yes"}), "Detach"),
    ] {
        let refusal = check_exec_start(&policy, body.to_string().as_bytes()).unwrap_err();
        assert!(refusal.to_string().contains(field), "{refusal}");
    }
    assert!(check_exec_start(&policy, b"").is_err());
    assert!(check_exec_start(&policy, br#"{"Tty": false, "tty": true}"#).is_err());
}

fn remove_key(body: &mut Value, key: &str) {
    body.as_object_mut().unwrap().remove(key);
}

// ---- endpoints ----

fn exec_route(
    method: Method,
    path_and_query: &str,
) -> Result<pincer_docker_guard::rules::endpoint::ExecRoute, Refusal> {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    classify_exec(&method, path, query)
}

#[test]
fn the_exec_endpoints_are_recognised_apart() {
    let create = exec_route(Method::POST, "/containers/pincer-sbx-1/exec").unwrap();
    assert_eq!(
        create.endpoint,
        ExecEndpoint::Create {
            container: "pincer-sbx-1".into()
        }
    );
    assert!(create.takes_body());
    // Sent to the engine under the full id the guard resolved.
    assert_eq!(create.upstream_path("f00d"), "/containers/f00d/exec");
    let start = exec_route(Method::POST, &format!("/v1.41/exec/{EXEC_ID}/start")).unwrap();
    assert_eq!(
        start.endpoint,
        ExecEndpoint::Start {
            exec: EXEC_ID.into()
        }
    );
    assert_eq!(
        start.upstream_path(""),
        format!("/v1.41/exec/{EXEC_ID}/start")
    );
    let inspect = exec_route(Method::GET, &format!("/exec/{EXEC_ID}/json")).unwrap();
    assert_eq!(inspect.method(), Method::GET);
    assert!(!inspect.takes_body());

    // `classify` (what the proxy forwards on its own) still refuses all three.
    let policy = policy(ROOT, BindCheck::Text);
    for (method, path) in [
        (Method::POST, "/containers/pincer-sbx-1/exec".to_owned()),
        (Method::POST, format!("/exec/{EXEC_ID}/start")),
        (Method::GET, format!("/exec/{EXEC_ID}/json")),
    ] {
        assert!(
            matches!(
                classify(&policy, &method, &path, None),
                Err(Refusal::Endpoint { .. })
            ),
            "{method} {path}"
        );
    }
}

#[test]
fn other_exec_requests_are_refused() {
    for (method, path) in [
        (Method::POST, format!("/exec/{EXEC_ID}/resize?h=1&w=1")),
        (Method::POST, format!("/exec/{EXEC_ID}/resize")),
        (Method::DELETE, format!("/exec/{EXEC_ID}")),
        (Method::GET, format!("/exec/{EXEC_ID}/start")),
        (Method::POST, format!("/exec/{EXEC_ID}/json")),
        (Method::POST, "/exec/abc/start".to_owned()),
        (Method::POST, format!("/exec/{}/start", &EXEC_ID[..63])),
        (Method::POST, format!("/exec/{EXEC_ID}0/start")),
        (
            Method::POST,
            format!("/exec/{}/start", EXEC_ID.replace('a', "g")),
        ),
        (Method::POST, "/containers/-x/exec".to_owned()),
        (Method::POST, "/containers/a%2F../exec".to_owned()),
        (Method::GET, "/containers/abc/exec".to_owned()),
        (Method::POST, "/containers/create".to_owned()),
        (Method::GET, "/_ping".to_owned()),
    ] {
        match exec_route(method.clone(), &path) {
            Err(Refusal::Endpoint { .. } | Refusal::Query { .. }) => {}
            other => panic!("{method} {path}: expected a refusal, got {other:?}"),
        }
    }
    assert!(matches!(
        exec_route(Method::POST, "/containers/abc/exec?x=1"),
        Err(Refusal::Query { .. })
    ));
    assert!(matches!(
        exec_route(Method::POST, "/v1.39/containers/abc/exec"),
        Err(Refusal::ApiVersion(_))
    ));
}
