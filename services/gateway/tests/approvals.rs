//! Exec approvals through the real gateway: the executor asks over `ExecutorLinkService`
//! (grant verified again, session and agent taken from it), the owner resolves over the
//! operator API, and the decision covers exactly the call that was asked about.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use pincer_identity::DeviceKey;
use pincer_proto::v1::executor_link_service_client::ExecutorLinkServiceClient;
use pincer_proto::v1::{
    ApprovalAnswer, ApprovalOutcome, ApprovalRequest, ExecBinding, GrantClaims, NetworkAccess,
    TurnGrant, WorkspaceAccess, exec_binding,
};
use pincer_runtime::Secret;
use pincer_runtime::service_auth::{PresentCredential, ServiceName};
use prost::Message;
use serde_json::{Value, json};
use tokio::net::TcpListener;

type Link = ExecutorLinkServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, PresentCredential>,
>;

struct Setup {
    gw: Gateway,
    key: DeviceKey,
    dir: tempfile::TempDir,
}

async fn setup_in(dir: tempfile::TempDir) -> Setup {
    let (key, _) = DeviceKey::load_or_generate(&dir.path().join("keys/grant.key")).unwrap();
    let gw = start_custom(
        "{}",
        "{ exec: { approvalTimeoutSeconds: 2 } }",
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        Some(dir.path()),
    )
    .await;
    ready(&gw).await;
    Setup { gw, key, dir }
}

async fn link(gw: &Gateway, service: ServiceName, cred: &str) -> Link {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", gw.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    ExecutorLinkServiceClient::with_interceptor(
        channel,
        PresentCredential::new(service, &Secret::new(cred)).unwrap(),
    )
}

fn grant(key: &DeviceKey, session: &str, tools: &[&str], expires_at_ms: i64) -> TurnGrant {
    let claims = GrantClaims {
        turn_id: "turn-1".into(),
        session_key: session.into(),
        agent_id: "main".into(),
        allowed_tools: tools.iter().map(|t| (*t).to_owned()).collect(),
        expires_at_ms,
        workspace_access: WorkspaceAccess::ReadWrite.into(),
        network: NetworkAccess::None.into(),
        exec_policy: None,
        sandbox: None,
    }
    .encode_to_vec();
    TurnGrant {
        signature: pincer_identity::sign_grant(key, &claims)
            .as_bytes()
            .to_vec(),
        claims,
        key_id: key.device_id().to_string(),
    }
}

fn live() -> i64 {
    now_ms() as i64 + 600_000
}

fn binding(line: &str, cwd: &str, env: &[(&str, &str)]) -> ExecBinding {
    ExecBinding {
        command: Some(exec_binding::Command::Shell(line.into())),
        cwd: cwd.into(),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<HashMap<_, _>>(),
        executables: vec!["/usr/bin/ls".into()],
        background: false,
    }
}

async fn ask(link: &Link, grant: TurnGrant, binding: ExecBinding) -> ApprovalAnswer {
    link.clone()
        .request_approval(ApprovalRequest {
            grant: Some(grant),
            binding: Some(binding),
            reason: "/usr/bin/ls is not on the allowlist".into(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// The next `approval.requested` event on `ws`.
async fn next_request(ws: &mut Ws) -> Value {
    loop {
        let f = recv(ws).await.expect("an event");
        if f["type"] == "event" && f["event"] == "approval.requested" {
            return f["payload"].clone();
        }
    }
}

async fn owner(gw: &Gateway) -> Ws {
    let mut dev = Device::new(1);
    let (ws, res) = dev.connect(gw, &Cred::Gateway(TOKEN.into()), ALL).await;
    assert_eq!(res["ok"], true, "{res}");
    ws
}

#[tokio::test]
async fn an_approval_covers_exactly_the_call_that_was_approved() {
    let s = setup_in(tempfile::tempdir().unwrap()).await;
    let link = link(&s.gw, ServiceName::Executor, "executor-cred").await;
    let mut ws = owner(&s.gw).await;
    let g = grant(&s.key, "s1", &["exec"], live());

    // The executor asks; the owner sees the exact call and allows it once.
    let asking = tokio::spawn({
        let (link, g) = (link.clone(), g.clone());
        async move { ask(&link, g, binding("ls", "", &[])).await }
    });
    let req = next_request(&mut ws).await;
    assert_eq!(req["command"], "ls");
    assert_eq!(req["sessionKey"], "s1", "from the grant");
    assert_eq!(req["agentId"], "main");
    assert_eq!(req["executables"], json!(["/usr/bin/ls"]));
    let id = req["id"].as_str().unwrap().to_owned();
    let listed = call(&mut ws, "l", "approvals.list", json!({})).await;
    assert_eq!(listed["payload"]["approvals"][0]["state"], "pending");
    let res = call(
        &mut ws,
        "r",
        "approvals.resolve",
        json!({ "id": id, "decision": "allow-once" }),
    )
    .await;
    assert_eq!(res["payload"]["state"], "allowed-once", "{res}");
    let answer = asking.await.unwrap();
    assert_eq!(answer.outcome(), ApprovalOutcome::AllowedOnce);
    assert_eq!(answer.approval_id, id);
    let listed = call(&mut ws, "l2", "approvals.list", json!({})).await;
    assert_eq!(listed["payload"]["approvals"][0]["state"], "used");

    // Single use: the same call again is not covered; and neither are altered calls.
    let started = Instant::now();
    let (again, chained, env, cwd) = tokio::join!(
        ask(&link, g.clone(), binding("ls", "", &[])),
        ask(&link, g.clone(), binding("ls; rm -rf x", "", &[])),
        ask(&link, g.clone(), binding("ls", "", &[("LS_COLORS", "x")])),
        ask(&link, g.clone(), binding("ls", "other", &[])),
    );
    for a in [&again, &chained, &env, &cwd] {
        assert_eq!(a.outcome(), ApprovalOutcome::Pending, "{a:?}");
        assert_ne!(a.approval_id, id, "a new request each");
    }
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited for the owner"
    );
    s.gw.shutdown.cancel();
}

#[tokio::test]
async fn allow_always_covers_the_identical_call_everywhere_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup_in(dir).await;
    let link = link(&s.gw, ServiceName::Executor, "executor-cred").await;
    let mut ws = owner(&s.gw).await;
    let g1 = grant(&s.key, "s1", &["exec"], live());

    // Nobody answers in time: pending; the request stays open and the owner answers later.
    let first = ask(&link, g1.clone(), binding("ls", "", &[])).await;
    assert_eq!(first.outcome(), ApprovalOutcome::Pending);
    let res = call(
        &mut ws,
        "r",
        "approvals.resolve",
        json!({ "id": first.approval_id, "decision": "allow-always" }),
    )
    .await;
    assert_eq!(res["payload"]["state"], "allowed-always", "{res}");
    let g2 = grant(&s.key, "s2", &["exec"], live());
    let t = Instant::now();
    let a = ask(&link, g2.clone(), binding("ls", "", &[])).await;
    assert_eq!(a.outcome(), ApprovalOutcome::AllowedAlways);
    assert!(t.elapsed() < Duration::from_secs(2), "answered at once");
    // Deciding twice is refused.
    let res = call(
        &mut ws,
        "r2",
        "approvals.resolve",
        json!({ "id": first.approval_id, "decision": "allow-once" }),
    )
    .await;
    assert_eq!(res["ok"], false);
    assert_eq!(res["error"]["code"], "invalid_request", "{res}");

    // Restart on the same state: the decision is still there.
    s.gw.shutdown.cancel();
    let _ = s.gw.task.await;
    let Setup { dir, .. } = s;
    let s = setup_in(dir).await;
    let link = crate::link(&s.gw, ServiceName::Executor, "executor-cred").await;
    let a = ask(&link, g2.clone(), binding("ls", "", &[])).await;
    assert_eq!(a.outcome(), ApprovalOutcome::AllowedAlways);

    // Denying an allow-always revokes it.
    let mut ws = owner(&s.gw).await;
    let res = call(
        &mut ws,
        "r3",
        "approvals.resolve",
        json!({ "id": first.approval_id, "decision": "deny" }),
    )
    .await;
    assert_eq!(res["payload"]["state"], "denied", "{res}");
    let a = ask(&link, g2, binding("ls", "", &[])).await;
    assert_eq!(a.outcome(), ApprovalOutcome::Pending);
    s.gw.shutdown.cancel();
    drop(s.dir);
}

#[tokio::test]
async fn the_owner_can_deny() {
    let s = setup_in(tempfile::tempdir().unwrap()).await;
    let link = link(&s.gw, ServiceName::Executor, "executor-cred").await;
    let mut ws = owner(&s.gw).await;
    let g = grant(&s.key, "s1", &["exec"], live());
    let asking = tokio::spawn({
        let link = link.clone();
        async move { ask(&link, g, binding("rm -rf /workspace", "", &[])).await }
    });
    let id = next_request(&mut ws).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    call(
        &mut ws,
        "r",
        "approvals.resolve",
        json!({ "id": id, "decision": "deny" }),
    )
    .await;
    assert_eq!(asking.await.unwrap().outcome(), ApprovalOutcome::Denied);
    s.gw.shutdown.cancel();
}

#[tokio::test]
async fn only_a_live_exec_grant_from_this_gateway_may_ask() {
    let s = setup_in(tempfile::tempdir().unwrap()).await;
    let link = link(&s.gw, ServiceName::Executor, "executor-cred").await;
    let ask_err = |g: TurnGrant| {
        let link = link.clone();
        async move {
            link.clone()
                .request_approval(ApprovalRequest {
                    grant: Some(g),
                    binding: Some(binding("ls", "", &[])),
                    reason: String::new(),
                })
                .await
                .unwrap_err()
        }
    };
    let forged = grant(&DeviceKey::from_seed([9; 32]), "s1", &["exec"], live());
    assert_eq!(ask_err(forged).await.code(), tonic::Code::PermissionDenied);
    let mut altered = grant(&s.key, "s1", &["exec"], live());
    altered.claims.push(0);
    assert_eq!(ask_err(altered).await.code(), tonic::Code::PermissionDenied);
    let no_exec = grant(&s.key, "s1", &["read_file"], live());
    assert_eq!(ask_err(no_exec).await.code(), tonic::Code::PermissionDenied);
    let expired = grant(&s.key, "s1", &["exec"], now_ms() as i64 - 1);
    assert_eq!(ask_err(expired).await.code(), tonic::Code::PermissionDenied);

    // Only the executor's credential opens the link.
    let as_agent = crate::link(&s.gw, ServiceName::Agent, "agent-cred").await;
    let err = as_agent
        .clone()
        .request_approval(ApprovalRequest {
            grant: Some(grant(&s.key, "s1", &["exec"], live())),
            binding: Some(binding("ls", "", &[])),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    s.gw.shutdown.cancel();
}

#[tokio::test]
async fn approvals_need_the_approvals_scope_and_valid_input() {
    let s = setup_in(tempfile::tempdir().unwrap()).await;
    let mut ws = owner(&s.gw).await;
    for (params, needle) in [
        (
            json!({ "id": "nope", "decision": "deny" }),
            "not an approval id",
        ),
        (
            json!({ "id": "apr_abcdefghij", "decision": "yes" }),
            "not a decision",
        ),
        (
            json!({ "id": "apr_abcdefghij", "decision": "deny" }),
            "no approval",
        ),
        (
            json!({ "id": "apr_abcdefghij", "decision": "deny", "approved": true }),
            "unknown field",
        ),
    ] {
        let res = call(&mut ws, "x", "approvals.resolve", params).await;
        assert_eq!(res["ok"], false);
        assert!(
            res["error"]["message"].as_str().unwrap().contains(needle),
            "{res}"
        );
    }
    // A device without the approvals scope can neither list nor resolve.
    let mut reader = Device::new(7);
    let (mut rws, res) = reader
        .connect(&s.gw, &Cred::Gateway(TOKEN.into()), &["read"])
        .await;
    assert_eq!(res["ok"], true, "{res}");
    for method in ["approvals.list", "approvals.resolve"] {
        let res = call(&mut rws, "y", method, json!({})).await;
        assert_eq!(res["error"]["code"], "forbidden", "{res}");
    }
    s.gw.shutdown.cancel();
}
