//! Fidelity tests for the fake Anthropic Messages endpoint.
// Integration-test helpers outside #[test] fns are not covered by clippy.toml's
// allow-unwrap-in-tests; panicking on a broken fake is what a test should do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{assert_same_shape, client, parse_sse};
use pincer_testkit::{FakeLlm, FakeLlmOptions, Step};
use serde_json::{Value, json};

const KEY: &str = "ant-test-key";

async fn fake() -> FakeLlm {
    FakeLlm::start(FakeLlmOptions {
        openai_api_key: None,
        anthropic_api_key: Some(KEY.into()),
    })
    .await
    .unwrap()
}

fn request(text: &str, stream: bool) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "stream": stream,
        "tools": [{"name": "exec", "description": "run", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": text}],
    })
}

async fn post(fake: &FakeLlm, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/messages", fake.base_url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn json_text_and_tool_use_match_the_documented_shape() {
    let fake = fake().await;
    let body: Value = post(&fake, &request("hello", false))
        .await
        .json()
        .await
        .unwrap();
    let doc: Value = serde_json::from_str(include_str!("fixtures/anthropic_message.json")).unwrap();
    assert_same_shape(&doc, &body);
    assert_eq!(
        body["content"],
        json!([{"type": "text", "text": "You said: hello"}])
    );
    assert_eq!(body["stop_reason"], "end_turn");

    let body: Value = post(&fake, &request("run: ls -la", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["stop_reason"], "tool_use");
    let block = &body["content"][0];
    assert_eq!(block["type"], "tool_use");
    assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(block["name"], "exec");
    assert_eq!(block["input"], json!({"command": "ls -la"}));
}

#[tokio::test]
async fn text_stream_follows_the_documented_event_order() {
    let fake = fake().await;
    fake.push(Step::Text("Hello!".into()));
    let response = post(&fake, &request("hi", true)).await;
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let ours = parse_sse(&response.text().await.unwrap());
    let doc = parse_sse(include_str!("fixtures/anthropic_stream.txt"));
    let names = |events: &[common::Event]| {
        let mut names: Vec<String> = events.iter().map(|e| e.name.clone().unwrap()).collect();
        names.dedup();
        names
    };
    assert_eq!(names(&ours), names(&doc));
    for event in &ours {
        // The `event:` name always repeats the payload's `type`.
        assert_eq!(event.json()["type"], event.name.clone().unwrap());
        let documented = doc.iter().find(|d| d.name == event.name).unwrap();
        assert_same_shape(&documented.json(), &event.json());
    }
    let text: String = ours
        .iter()
        .filter_map(|e| e.json()["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "Hello!");
}

#[tokio::test]
async fn input_json_deltas_assemble_into_valid_json() {
    let fake = fake().await;
    let arguments = json!({"command": "echo \"🦀\" > note.txt && cat note.txt", "timeout": 30});
    fake.push(Step::ToolCall {
        name: "exec".into(),
        arguments: arguments.clone(),
    });
    let ours = parse_sse(&post(&fake, &request("x", true)).await.text().await.unwrap());
    let doc = parse_sse(include_str!("fixtures/anthropic_tool_use_stream.txt"));
    let start = ours
        .iter()
        .find(|e| e.name.as_deref() == Some("content_block_start"))
        .unwrap();
    assert_same_shape(&doc[0].json(), &start.json());
    assert_eq!(start.json()["content_block"]["input"], json!({}));
    let partial: String = ours
        .iter()
        .filter(|e| e.json()["delta"]["type"] == "input_json_delta")
        .map(|e| {
            assert_same_shape(&doc[1].json(), &e.json());
            e.json()["delta"]["partial_json"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&partial).unwrap(), arguments);
    let delta = ours
        .iter()
        .find(|e| e.name.as_deref() == Some("message_delta"))
        .unwrap();
    assert_eq!(delta.json()["delta"]["stop_reason"], "tool_use");
    assert_eq!(ours.last().unwrap().name.as_deref(), Some("message_stop"));
}

#[tokio::test]
async fn headers_are_enforced_in_anthropic_error_shape() {
    let fake = fake().await;
    let url = format!("{}/v1/messages", fake.base_url());
    let no_version = client()
        .post(&url)
        .header("x-api-key", KEY)
        .json(&request("x", false))
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.status(), 400);
    let body: Value = no_version.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    for key in [None, Some("wrong")] {
        let mut builder = client()
            .post(&url)
            .header("anthropic-version", "2023-06-01");
        if let Some(key) = key {
            builder = builder.header("x-api-key", key);
        }
        let response = builder.json(&request("x", false)).send().await.unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "authentication_error");
    }
    let mut no_max_tokens = request("x", false);
    no_max_tokens.as_object_mut().unwrap().remove("max_tokens");
    assert_eq!(post(&fake, &no_max_tokens).await.status(), 400);
}

#[tokio::test]
async fn overloaded_529_has_retry_after_and_then_recovers() {
    let fake = fake().await;
    fake.push(Step::Error {
        status: 529,
        retry_after_secs: Some(2),
    });
    let response = post(&fake, &request("x", true)).await;
    assert_eq!(response.status(), 529);
    assert_eq!(response.headers()["retry-after"], "2");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "overloaded_error");
    assert_eq!(post(&fake, &request("x", false)).await.status(), 200);
}

#[tokio::test]
async fn tool_result_is_reported_and_dropped_stream_never_stops() {
    let fake = fake().await;
    let body = json!({"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": "run: echo hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "exec", "input": {"command": "echo hi"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "hi"}]}
    ]});
    let reply: Value = post(&fake, &body).await.json().await.unwrap();
    assert_eq!(reply["content"][0]["text"], "Tool output:\nhi");

    fake.push(Step::DropMidStream {
        partial_text: "partial".into(),
    });
    let result = post(&fake, &request("x", true)).await.text().await;
    assert!(result.is_err(), "the body must fail, got {result:?}");
}
