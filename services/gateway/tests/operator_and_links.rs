//! The gateway in-process on 127.0.0.1:0 with a fake agent: the operator WebSocket API
//! (token, handshake rules, health, chat.send with streamed events, idempotency), the
//! health routes, and service credentials on the gRPC side.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use pincer_proto::v1::bridge_service_client::BridgeServiceClient;
use pincer_proto::v1::gateway_service_client::GatewayServiceClient;
use pincer_proto::v1::{BridgeUp, GetHistoryRequest};
use pincer_runtime::Secret;
use pincer_runtime::service_auth::ServiceName;
use serde_json::{Value, json};

#[tokio::test]
async fn wrong_token_is_refused_and_the_connection_closed() {
    let gw = start().await;
    ready(&gw).await;
    let mut dev = Device::new(1);
    let (mut socket, res) = dev
        .connect(
            &gw,
            &Cred::Gateway("operator-token-for-tests-0123456789abcdeX".into()),
            ALL,
        )
        .await;
    assert_eq!(res["ok"], false);
    assert_eq!(res["error"]["code"], "unauthorized");
    assert!(
        recv(&mut socket).await.is_none(),
        "closed after a failed connect"
    );
    let (_s, res) = dev.connect(&gw, &Cred::Nothing, ALL).await;
    assert_eq!(res["error"]["code"], "unauthorized", "no credential: {res}");
    gw.shutdown.cancel();
}

#[tokio::test]
async fn the_first_request_must_be_connect() {
    let gw = start().await;
    let mut socket = ws(&gw).await;
    challenge(&mut socket).await;
    send(
        &mut socket,
        json!({ "type": "req", "id": "1", "method": "health" }),
    )
    .await;
    let res = recv(&mut socket).await.unwrap();
    assert_eq!(res["error"]["code"], "not_connected");
    assert!(recv(&mut socket).await.is_none());
    gw.shutdown.cancel();
}

#[tokio::test]
async fn oversized_preauth_frame_closes_the_connection() {
    let gw = start().await;
    let mut socket = ws(&gw).await;
    let nonce = challenge(&mut socket).await;
    let mut frame = Device::new(1).connect_frame(&nonce, &Cred::Gateway(TOKEN.into()), ALL);
    frame["params"]["client"]["version"] = Value::String("x".repeat(70 * 1024));
    send(&mut socket, frame).await;
    let res = recv(&mut socket).await;
    assert!(
        res.is_none_or(|r| r["ok"] == false),
        "oversized connect must not be accepted"
    );
    assert!(recv(&mut socket).await.is_none());
    gw.shutdown.cancel();
}

#[tokio::test]
async fn silent_clients_are_dropped_after_the_handshake_timeout() {
    let gw = start().await;
    let mut socket = ws(&gw).await;
    challenge(&mut socket).await;
    let started = std::time::Instant::now();
    let res = recv(&mut socket).await.unwrap();
    assert_eq!(res["error"]["code"], "not_connected", "{res}");
    assert!(recv(&mut socket).await.is_none());
    assert!(started.elapsed() < Duration::from_secs(12));
    gw.shutdown.cancel();
}

#[tokio::test]
async fn chat_send_streams_events_and_is_idempotent() {
    let gw = start().await;
    ready(&gw).await;
    let (mut socket, hello) = Device::new(1)
        .connect(&gw, &Cred::Gateway(TOKEN.into()), ALL)
        .await;
    assert_eq!(hello["ok"], true, "{hello}");
    assert_eq!(hello["payload"]["protocol"], 2);

    send(&mut socket, json!({ "type": "req", "id": "2", "method": "chat.send", "params": { "text": "hi there", "idempotencyKey": "k-1" } })).await;
    let mut states = Vec::new();
    let mut seqs = Vec::new();
    let mut final_text = None;
    while final_text.is_none() {
        let frame = recv(&mut socket).await.unwrap();
        match frame["type"].as_str().unwrap() {
            "res" => assert_eq!(frame["payload"]["status"], "accepted", "{frame}"),
            "event" if frame["event"] == "chat" => {
                seqs.push(frame["seq"].as_u64().unwrap());
                let state = frame["payload"]["state"].as_str().unwrap().to_owned();
                if state == "final" {
                    final_text = Some(frame["payload"]["text"].as_str().unwrap().to_owned());
                }
                states.push(state);
            }
            _ => {}
        }
    }
    assert_eq!(final_text.as_deref(), Some("echo: hi there"));
    assert_eq!(states, ["delta", "final"]);
    assert!(
        seqs.windows(2).all(|w| w[1] > w[0]),
        "event seq increases: {seqs:?}"
    );

    send(&mut socket, json!({ "type": "req", "id": "3", "method": "chat.send", "params": { "text": "hi there", "idempotencyKey": "k-1" } })).await;
    let dup = recv(&mut socket).await.unwrap();
    assert_eq!(dup["payload"]["status"], "duplicate", "{dup}");

    send(
        &mut socket,
        json!({ "type": "req", "id": "4", "method": "health" }),
    )
    .await;
    let health = recv(&mut socket).await.unwrap();
    assert_eq!(health["payload"]["ok"], true);
    assert_eq!(
        health["payload"]["inbound"]["total"], 1,
        "the duplicate was not stored again"
    );

    send(
        &mut socket,
        json!({ "type": "req", "id": "5", "method": "admin.shutdown" }),
    )
    .await;
    assert_eq!(
        recv(&mut socket).await.unwrap()["error"]["code"],
        "unknown_method"
    );
    gw.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), gw.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn health_routes_reveal_nothing_else() {
    let gw = start().await;
    let client = reqwest::Client::new();
    let mut ok = false;
    for _ in 0..50 {
        if let Ok(r) = client
            .get(format!("http://{}/healthz", gw.operator))
            .send()
            .await
        {
            assert_eq!(r.text().await.unwrap(), "ok\n");
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok);
    let ready = client
        .get(format!("http://{}/readyz", gw.operator))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), "ready\n");
    gw.shutdown.cancel();
}

#[tokio::test]
async fn grpc_calls_need_the_right_service_credential() {
    let gw = start().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", gw.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();

    // No credential at all.
    let mut history = GatewayServiceClient::new(channel.clone());
    let err = history
        .get_history(GetHistoryRequest {
            session_key: "s".into(),
            turn_id: "t".into(),
            max_entries: 5,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    // The bridge's credential is not the agent's: history stays closed to bridges.
    let bridge_cred = pincer_runtime::service_auth::PresentCredential::new(
        ServiceName::Bridge,
        &Secret::new("bridge-cred"),
    )
    .unwrap();
    let mut as_bridge = GatewayServiceClient::with_interceptor(channel.clone(), bridge_cred);
    let err = as_bridge
        .get_history(GetHistoryRequest {
            session_key: "s".into(),
            turn_id: "t".into(),
            max_entries: 5,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    // A bridge presenting a wrong credential cannot open the bridge stream.
    let wrong = pincer_runtime::service_auth::PresentCredential::new(
        ServiceName::Bridge,
        &Secret::new("guess"),
    )
    .unwrap();
    let mut bridge = BridgeServiceClient::with_interceptor(channel.clone(), wrong);
    let err = bridge
        .open_stream(futures::stream::empty::<BridgeUp>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    // The agent's credential works.
    let agent_cred = pincer_runtime::service_auth::PresentCredential::new(
        ServiceName::Agent,
        &Secret::new("agent-cred"),
    )
    .unwrap();
    let mut as_agent = GatewayServiceClient::with_interceptor(channel.clone(), agent_cred);
    let ok = as_agent
        .get_history(GetHistoryRequest {
            session_key: "s".into(),
            turn_id: "t".into(),
            max_entries: 5,
        })
        .await
        .unwrap();
    assert!(ok.into_inner().entries.is_empty());

    // The grant key: only the executor's credential opens ExecutorLinkService.
    use pincer_proto::v1::GetGrantKeyRequest;
    use pincer_proto::v1::executor_link_service_client::ExecutorLinkServiceClient;
    let as_agent = pincer_runtime::service_auth::PresentCredential::new(
        ServiceName::Agent,
        &Secret::new("agent-cred"),
    )
    .unwrap();
    let err = ExecutorLinkServiceClient::with_interceptor(channel.clone(), as_agent)
        .get_grant_key(GetGrantKeyRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let as_executor = pincer_runtime::service_auth::PresentCredential::new(
        ServiceName::Executor,
        &Secret::new("executor-cred"),
    )
    .unwrap();
    let key = ExecutorLinkServiceClient::with_interceptor(channel.clone(), as_executor)
        .get_grant_key(GetGrantKeyRequest {})
        .await
        .unwrap()
        .into_inner();
    let pk = pincer_identity::PublicKey::from_bytes(&key.public_key.clone().try_into().unwrap())
        .unwrap();
    assert_eq!(pk.device_id().to_string(), key.key_id);
    gw.shutdown.cancel();
}

#[tokio::test]
async fn openai_compatible_api_is_off_by_default_and_bearer_protected() {
    let off = start().await;
    let client = reqwest::Client::new();
    let body = json!({ "model": "main", "messages": [{ "role": "user", "content": "hi" }] });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = client
        .post(format!("http://{}/v1/chat/completions", off.operator))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "disabled by default");
    off.shutdown.cancel();

    let gw = start_with(r#"{ http: { endpoints: { chatCompletions: { enabled: true } } } }"#).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let url = format!("http://{}/v1/chat/completions", gw.operator);
    let r = client
        .post(&url)
        .bearer_auth("wrong-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_api_key"
    );
    let r = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401, "no bearer, no answer");

    let r = client.post(&url).bearer_auth(TOKEN).json(&json!({ "model": "main", "user": "alice", "messages": [{ "role": "user", "content": "hi" }] })).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "echo: hi");

    let r = client
        .post(&url)
        .bearer_auth(TOKEN)
        .json(&json!({ "model": "pincer:main", "stream": true, "messages": [{ "role": "user", "content": "streamed" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let datas: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(datas.last(), Some(&"[DONE]"), "{text}");
    let content: String = datas[..datas.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content, "echo: streamed");

    let r = client
        .post(&url)
        .bearer_auth(TOKEN)
        .json(&json!({ "model": "gpt-4o", "messages": [{ "role": "user", "content": "x" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let models: Value = client
        .get(format!("http://{}/v1/models", gw.operator))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "main");
    gw.shutdown.cancel();
}
