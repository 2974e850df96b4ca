//! Who may talk to the assistant, through the real gateway: a fake bridge replica pushes
//! chat messages over `BridgeService`, a recording agent shows which ones reach the model
//! (and the history it reads), and the owner answers pairing requests over the operator
//! API that `pincer pairing` uses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::channel::{ChannelGateway, FakeBridge, code_in, message, start_channels, stop};
use common::*;
use pincer_proto::v1::executor_link_service_client::ExecutorLinkServiceClient;
use pincer_proto::v1::{
    ApprovalRequest, ChatKind, ExecBinding, GrantClaims, TurnGrant, exec_binding,
};
use pincer_runtime::Secret;
use pincer_runtime::service_auth::{PresentCredential, ServiceName};
use prost::Message;
use serde_json::{Value, json};

/// Long enough for a wrongly queued turn or reply to show up.
const QUIET: Duration = Duration::from_millis(1500);

async fn owner_ws(gw: &Gateway) -> Ws {
    let (ws, res) = Device::new(1)
        .connect(gw, &Cred::Gateway(TOKEN.into()), ALL)
        .await;
    assert_eq!(res["ok"], true, "{res}");
    ws
}

async fn approve(ws: &mut Ws, channel: &str, code: &str) -> Value {
    call(
        ws,
        "a",
        "pairing.approve",
        json!({ "channel": channel, "code": code }),
    )
    .await
}

fn telegram(access: &str) -> String {
    format!(r#"channels: {{ telegram: {{ botToken: "x", {access} }} }}"#)
}

#[tokio::test]
async fn a_stranger_gets_one_code_never_the_model_until_the_owner_approves() {
    let dir = tempfile::tempdir().unwrap();
    let sections = telegram(r#"owners: ["1"]"#);
    let cg = start_channels(&sections, Some(dir.path())).await;
    let mut bridge = FakeBridge::connect(&cg.gw, &[("telegram", "default")]).await;

    bridge.dm("42", "hello?").await;
    let code = code_in(&bridge.wait_delivered("42", 1).await[0]);
    assert_eq!(code.len(), 8);
    bridge.dm("42", "hello again").await;
    bridge.dm("42", "/status").await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(bridge.delivered_to("42").len(), 1, "the code is sent once");
    assert!(cg.turns().is_empty(), "nothing reached the model");

    // The request survives a restart.
    drop(bridge);
    stop(cg.gw).await;
    let cg = start_channels(&sections, Some(dir.path())).await;
    let mut bridge = FakeBridge::connect(&cg.gw, &[("telegram", "default")]).await;
    let mut ws = owner_ws(&cg.gw).await;
    let listed = call(&mut ws, "l", "pairing.list", json!({})).await;
    let requests = listed["payload"]["requests"].as_array().unwrap().clone();
    assert_eq!(requests.len(), 1, "{listed}");
    assert_eq!(requests[0]["senderId"], "42");
    assert_eq!(requests[0]["code"], code.as_str());
    assert_eq!(requests[0]["state"], "pending");
    bridge.dm("42", "still there?").await;
    tokio::time::sleep(QUIET).await;
    assert!(
        bridge.delivered_to("42").is_empty(),
        "no second code after a restart"
    );

    let res = approve(&mut ws, "telegram", &code.to_lowercase()).await;
    assert_eq!(res["payload"]["status"], "approved", "{res}");
    assert_eq!(res["payload"]["senderId"], "42");
    let again = approve(&mut ws, "telegram", &code).await;
    assert_eq!(
        again["error"]["details"]["reason"], "not_found",
        "single use: {again}"
    );

    bridge.dm("42", "now?").await;
    let turns = cg.wait_turns(1).await;
    assert_eq!(turns[0].text, "now?");
    assert!(
        turns[0].history.is_empty(),
        "earlier messages never reached the model: {:?}",
        turns[0].history
    );
    let replies = bridge.wait_delivered("42", 1).await;
    assert!(replies[0].starts_with("echo: now?"), "{replies:?}");

    // The paired sender survives a restart too.
    drop((bridge, ws));
    stop(cg.gw).await;
    let cg = start_channels(&sections, Some(dir.path())).await;
    let mut bridge = FakeBridge::connect(&cg.gw, &[("telegram", "default")]).await;
    bridge.dm("42", "after restart").await;
    assert_eq!(cg.wait_turns(1).await[0].text, "after restart");
    let mut ws = owner_ws(&cg.gw).await;
    let listed = call(&mut ws, "l", "pairing.list", json!({})).await;
    assert_eq!(listed["payload"]["paired"][0]["senderId"], "42", "{listed}");
    assert!(listed["payload"]["requests"].as_array().unwrap().is_empty());
    stop(cg.gw).await;
}

#[tokio::test]
async fn expired_fourth_other_channel_guessed_and_rejected_codes_fail() {
    let dir = tempfile::tempdir().unwrap();
    let sections = telegram(r#"owners: ["1"]"#);
    let cg = start_channels(&sections, Some(dir.path())).await;
    let mut bridge = FakeBridge::connect(&cg.gw, &[("telegram", "default")]).await;
    let mut codes = HashMap::new();
    for s in ["41", "42", "43"] {
        bridge.dm(s, "hi").await;
        codes.insert(s, code_in(&bridge.wait_delivered(s, 1).await[0]));
    }
    // A fourth stranger while three wait: nothing.
    bridge.dm("44", "hi").await;
    tokio::time::sleep(QUIET).await;
    assert!(bridge.delivered_to("44").is_empty());
    let mut ws = owner_ws(&cg.gw).await;
    let listed = call(&mut ws, "l", "pairing.list", json!({})).await;
    assert_eq!(listed["payload"]["requests"].as_array().unwrap().len(), 3);

    // A code for another channel, a guessed code, a malformed code.
    let res = approve(&mut ws, "matrix", &codes["41"]).await;
    assert_eq!(res["error"]["details"]["reason"], "not_found", "{res}");
    let guess = if codes.values().any(|c| c == "ABCD2345") {
        "ABCD2346"
    } else {
        "ABCD2345"
    };
    let res = approve(&mut ws, "telegram", guess).await;
    assert_eq!(res["error"]["details"]["reason"], "not_found", "{res}");
    let res = approve(&mut ws, "telegram", "ABCD0000").await;
    assert_eq!(res["error"]["details"]["reason"], "malformed", "{res}");
    assert!(
        res["error"]["message"]
            .as_str()
            .unwrap()
            .contains("8 characters")
    );

    // Rejected: the code is dead and the sender gets nothing more.
    let res = call(
        &mut ws,
        "r",
        "pairing.reject",
        json!({ "channel": "telegram", "code": codes["43"] }),
    )
    .await;
    assert_eq!(res["payload"]["status"], "rejected", "{res}");
    let res = approve(&mut ws, "telegram", &codes["43"]).await;
    assert_eq!(res["error"]["details"]["reason"], "not_found", "{res}");
    bridge.dm("43", "please").await;

    // Expired: an hour passes (the stored request is made an hour older).
    drop((bridge, ws));
    stop(cg.gw).await;
    let db = rusqlite::Connection::open(dir.path().join("gateway.db")).unwrap();
    db.execute(
        "UPDATE sender_requests SET created_at_ms = created_at_ms - 3600001 WHERE sender_id = '41'",
        [],
    )
    .unwrap();
    drop(db);
    let cg = start_channels(&sections, Some(dir.path())).await;
    let mut ws = owner_ws(&cg.gw).await;
    let res = approve(&mut ws, "telegram", &codes["41"]).await;
    assert_eq!(res["error"]["details"]["reason"], "expired", "{res}");
    // 42's code still works; nobody was paired by the failures.
    let res = approve(&mut ws, "telegram", &codes["42"]).await;
    assert_eq!(res["payload"]["status"], "approved", "{res}");
    let listed = call(&mut ws, "l", "pairing.list", json!({})).await;
    let paired = listed["payload"]["paired"].as_array().unwrap();
    assert_eq!(paired.len(), 1, "{listed}");
    assert_eq!(paired[0]["senderId"], "42");
    let mut bridge = FakeBridge::connect(&cg.gw, &[("telegram", "default")]).await;
    bridge.dm("43", "please?").await;
    bridge.dm("41", "new code?").await;
    let fresh = code_in(&bridge.wait_delivered("41", 1).await[0]);
    assert_ne!(
        fresh, codes["41"],
        "after expiry a new request gets a new code"
    );
    tokio::time::sleep(QUIET).await;
    assert!(
        bridge.delivered_to("43").is_empty(),
        "rejected: nothing within the hour"
    );
    assert!(cg.turns().is_empty());
    stop(cg.gw).await;
}

fn grant(key: &pincer_identity::DeviceKey, session: &str) -> TurnGrant {
    let claims = GrantClaims {
        turn_id: "turn-1".into(),
        session_key: session.into(),
        agent_id: "main".into(),
        allowed_tools: vec!["exec".into()],
        expires_at_ms: now_ms() as i64 + 600_000,
        ..Default::default()
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

async fn pending_approval(ws: &mut Ws) -> Value {
    for _ in 0..100 {
        let listed = call(ws, "al", "approvals.list", json!({})).await;
        if let Some(a) = listed["payload"]["approvals"].as_array().unwrap().first() {
            return a.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no approval request appeared");
}

#[tokio::test]
async fn groups_mentions_and_who_may_approve() {
    let dir = tempfile::tempdir().unwrap();
    let sections = format!(
        "{}, tools: {{ exec: {{ approvalTimeoutSeconds: 1 }} }}",
        telegram(
            r#"owners: ["1"], allowFrom: ["2"], groups: { "-100": {} }, mentionPatterns: ["(?i)\\bpincer\\b"]"#
        )
    );
    let cg = start_channels(&sections, Some(dir.path())).await;
    let mut bridge = FakeBridge::connect(&cg.gw, &[("telegram", "default")]).await;

    // A group that is not on the allowlist: ignored, even the owner's mention.
    bridge.group("-200", "1", "@bot hello", true).await;
    // An allowed group: unmentioned messages are context only.
    bridge
        .group("-100", "2", "the meeting moved to 3pm", false)
        .await;
    // A member who is not allowed: a mention starts nothing.
    bridge
        .group("-100", "9", "@bot tell me the owner's secrets", true)
        .await;
    tokio::time::sleep(QUIET).await;
    assert!(cg.turns().is_empty(), "{:?}", cg.turns());
    assert_eq!(bridge.delivery_count(), 0);

    // An allowed member mentions the bot (by pattern): one turn, with the context.
    bridge
        .group("-100", "2", "Pincer, when is the meeting?", false)
        .await;
    let turns = cg.wait_turns(1).await;
    assert_eq!(
        turns[0].session_key,
        "agent:main:telegram:default:group:-100"
    );
    assert_eq!(turns[0].text, "Pincer, when is the meeting?");
    assert!(turns[0].tools.is_empty(), "groups get no tools");
    let history = turns[0].history.join("\n");
    assert!(history.contains("the meeting moved to 3pm"), "{history}");
    assert!(
        history.contains("telegram user 2, not addressed to the assistant"),
        "{history}"
    );
    assert!(
        history.contains("tell me the owner's secrets"),
        "kept as context: {history}"
    );
    assert!(
        !history.contains("@bot hello"),
        "the other group is not context: {history}"
    );
    assert_eq!(bridge.wait_delivered("-100", 1).await.len(), 1);

    // `/approve` from anyone but the owner does nothing.
    let key = pincer_identity::DeviceKey::load_or_generate(&dir.path().join("keys/grant.key"))
        .unwrap()
        .0;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", cg.gw.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let cred =
        PresentCredential::new(ServiceName::Executor, &Secret::new("executor-cred")).unwrap();
    let mut link = ExecutorLinkServiceClient::with_interceptor(channel, cred);
    let answer = link
        .request_approval(ApprovalRequest {
            grant: Some(grant(&key, "agent:main:main")),
            binding: Some(ExecBinding {
                command: Some(exec_binding::Command::Shell("ls".into())),
                cwd: String::new(),
                env: HashMap::new(),
                executables: vec!["/usr/bin/ls".into()],
                background: false,
            }),
            reason: "not on the allowlist".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let id = answer.approval_id.clone();
    let mut ws = owner_ws(&cg.gw).await;
    assert_eq!(pending_approval(&mut ws).await["id"], id.as_str());
    let before = bridge.delivery_count();
    bridge.dm("2", &format!("/approve {id} allow-always")).await;
    bridge
        .group(
            "-100",
            "2",
            &format!("@bot /approve {id} allow-always"),
            true,
        )
        .await;
    bridge
        .group("-100", "9", &format!("@bot /approve {id} allow-once"), true)
        .await;
    bridge.dm("9", &format!("/approve {id} allow-once")).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(pending_approval(&mut ws).await["state"], "pending");
    assert_eq!(cg.turns().len(), 1, "no turn from an ignored command");
    // Only the stranger's pairing code went out; no command was answered.
    assert_eq!(bridge.delivery_count(), before + 1);
    assert!(bridge.delivered_to("9")[0].contains("pairing code"));

    // The owner's `/approve` in a DM resolves it, without the model.
    bridge.dm("1", &format!("/approve {id} allow-once")).await;
    let reply = bridge.wait_delivered("1", 1).await;
    assert_eq!(reply[0], format!("{id}: allowed-once"));
    assert_eq!(pending_approval(&mut ws).await["state"], "allowed-once");
    bridge.dm("1", "/approve nonsense").await;
    let reply = bridge.wait_delivered("1", 2).await;
    assert!(reply[1].starts_with("Usage: /approve"), "{reply:?}");
    assert_eq!(cg.turns().len(), 1);
    stop(cg.gw).await;
}

async fn pair(cg: &ChannelGateway, bridge: &mut FakeBridge, ws: &mut Ws, sender: &str) {
    bridge.dm(sender, "hi").await;
    let code = code_in(&bridge.wait_delivered(sender, 1).await[0]);
    let res = approve(ws, "telegram", &code).await;
    assert_eq!(res["payload"]["status"], "approved", "{res}");
    assert!(cg.turns().iter().all(|t| t.text != "hi"));
}

#[tokio::test]
async fn two_strangers_paired_per_peer_never_see_each_others_history() {
    let sections = format!(
        r#"{}, session: {{ dmScope: "per-peer" }}"#,
        telegram(r#"owners: ["1"]"#)
    );
    let cg = start_channels(&sections, None).await;
    let mut bridge = FakeBridge::connect(&cg.gw, &[("telegram", "default")]).await;
    let mut ws = owner_ws(&cg.gw).await;
    pair(&cg, &mut bridge, &mut ws, "41").await;
    pair(&cg, &mut bridge, &mut ws, "42").await;

    bridge.dm("41", "my secret is apple").await;
    cg.wait_turns(1).await;
    bridge.dm("42", "my secret is banana").await;
    cg.wait_turns(2).await;
    bridge.dm("41", "what is my secret?").await;
    cg.wait_turns(3).await;
    bridge.dm("42", "what is my secret?").await;
    let turns = cg.wait_turns(4).await;

    let alice = &turns[2];
    let bob = &turns[3];
    assert_eq!(alice.session_key, "agent:main:dm:telegram%3A41");
    assert_eq!(bob.session_key, "agent:main:dm:telegram%3A42");
    let a = alice.history.join("\n");
    let b = bob.history.join("\n");
    assert!(a.contains("apple") && !a.contains("banana"), "{a}");
    assert!(b.contains("banana") && !b.contains("apple"), "{b}");
    let to_41 = bridge.wait_delivered("41", 3).await.join("\n");
    let to_42 = bridge.wait_delivered("42", 3).await.join("\n");
    assert!(!to_41.contains("banana"), "{to_41}");
    assert!(!to_42.contains("apple"), "{to_42}");
    // Paired senders get the DM tools; they are allowed, not owners.
    assert!(!alice.tools.is_empty());
    stop(cg.gw).await;
}

#[tokio::test]
async fn owner_main_session_links_and_chat_commands() {
    let sections = format!(
        r#"{}, session: {{ identityLinks: {{ carol: ["telegram:3", "telegram:4"] }} }}"#,
        telegram(r#"owners: ["1"], allowFrom: ["3", "4"]"#)
    );
    let cg = start_channels(&sections, None).await;
    let mut bridge = FakeBridge::connect(&cg.gw, &[("telegram", "default")]).await;

    bridge.dm("1", "note: buy milk").await;
    bridge.dm("3", "hello from my phone").await;
    cg.wait_turns(2).await;
    bridge.dm("4", "and from my laptop").await;
    let turns = cg.wait_turns(3).await;
    assert_eq!(turns[0].session_key, "agent:main:main");
    assert_eq!(turns[1].session_key, "agent:main:dm:~carol");
    assert_eq!(
        turns[2].session_key, "agent:main:dm:~carol",
        "linked accounts share"
    );
    assert!(turns[2].history.join(" ").contains("hello from my phone"));
    assert!(!turns[2].history.join(" ").contains("milk"));

    // Commands are answered by the gateway, not the model.
    bridge.dm("3", "/status").await;
    let status = bridge.wait_delivered("3", 2).await[1].clone();
    assert!(
        status.contains("Session: agent:main:dm:~carol (4 messages)"),
        "{status}"
    );
    assert!(status.contains("an allowed sender"), "{status}");
    bridge.dm("3", "/help").await;
    let help = bridge.wait_delivered("3", 3).await[2].clone();
    assert!(
        help.contains("/new") && !help.contains("/approve"),
        "{help}"
    );
    bridge.dm("3", "/new").await;
    assert!(bridge.wait_delivered("3", 4).await[3].starts_with("Started a new session"));
    assert_eq!(cg.turns().len(), 3, "commands never reach the model");
    bridge.dm("4", "fresh start?").await;
    let turns = cg.wait_turns(4).await;
    assert_eq!(turns[3].session_key, "agent:main:dm:~carol#1");
    assert!(turns[3].history.is_empty(), "{:?}", turns[3].history);
    bridge.dm("1", "/reset").await;
    bridge.wait_delivered("1", 2).await;
    bridge.dm("1", "again").await;
    assert_eq!(cg.wait_turns(5).await[4].session_key, "agent:main:main#1");
    stop(cg.gw).await;
}

#[tokio::test]
async fn open_dms_admit_strangers_without_tools_and_unknown_channels_are_ignored() {
    let sections = telegram(r#"dmPolicy: "open", allowFrom: ["*", "2"]"#);
    let cg = start_channels(&sections, None).await;
    let mut bridge =
        FakeBridge::connect(&cg.gw, &[("telegram", "default"), ("matrix", "default")]).await;
    bridge.dm("99", "hi").await;
    bridge.dm("2", "hi").await;
    let turns = cg.wait_turns(2).await;
    let stranger = turns
        .iter()
        .find(|t| t.session_key.ends_with("%3A99"))
        .unwrap();
    let allowed = turns
        .iter()
        .find(|t| t.session_key.ends_with("%3A2"))
        .unwrap();
    assert!(stranger.tools.is_empty(), "{:?}", stranger.tools);
    assert!(
        allowed.tools.contains(&"exec".to_owned()),
        "{:?}",
        allowed.tools
    );

    let id = bridge.next_message_id();
    bridge
        .send(message(
            "matrix",
            ChatKind::Direct,
            "@x:y",
            "@x:y",
            "hi",
            false,
            &id,
        ))
        .await
        .unwrap();
    // A redelivery is acknowledged as a duplicate and changes nothing.
    let again = bridge
        .send(message(
            "matrix",
            ChatKind::Direct,
            "@x:y",
            "@x:y",
            "hi",
            false,
            &id,
        ))
        .await
        .unwrap();
    assert!(again.duplicate);
    tokio::time::sleep(QUIET).await;
    assert_eq!(cg.turns().len(), 2);
    assert!(bridge.delivered_to("@x:y").is_empty());
    stop(cg.gw).await;
}
