//! Fidelity tests for the fake OpenAI Chat Completions endpoint.
// Integration-test helpers outside #[test] fns are not covered by clippy.toml's
// allow-unwrap-in-tests; panicking on a broken fake is what a test should do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{assert_same_shape, client, parse_sse};
use pincer_testkit::{FakeLlm, FakeLlmOptions, Step};
use serde_json::{Value, json};

const KEY: &str = "sk-test-key";

async fn fake() -> FakeLlm {
    FakeLlm::start(FakeLlmOptions {
        openai_api_key: Some(KEY.into()),
        anthropic_api_key: None,
    })
    .await
    .unwrap()
}

async fn post(fake: &FakeLlm, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/chat/completions", fake.base_url()))
        .bearer_auth(KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn user(text: &str) -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})
}

fn exec_tool() -> Value {
    json!([{"type": "function", "function": {
        "name": "exec", "description": "run a command",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}
    }}])
}

#[tokio::test]
async fn json_text_matches_the_documented_shape() {
    let fake = fake().await;
    fake.push(Step::Text("scripted hello".into()));
    let response = post(&fake, &user("hi")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let doc: Value =
        serde_json::from_str(include_str!("fixtures/openai_chat_completion.json")).unwrap();
    assert_same_shape(&doc, &body);
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["choices"][0]["message"]["content"], "scripted hello");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn documented_tool_request_gets_a_documented_tool_call_response() {
    let fake = fake().await;
    fake.push(Step::ToolCall {
        name: "get_current_weather".into(),
        arguments: json!({"location": "Boston, MA"}),
    });
    let request: Value =
        serde_json::from_str(include_str!("fixtures/openai_tool_calls_request.json")).unwrap();
    let body: Value = post(&fake, &request).await.json().await.unwrap();
    let doc: Value =
        serde_json::from_str(include_str!("fixtures/openai_tool_calls_response.json")).unwrap();
    assert_same_shape(&doc, &body);
    let call = &body["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(call["function"]["name"], "get_current_weather");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"location": "Boston, MA"}));
    assert_eq!(fake.requests()[0].body, request);
}

#[tokio::test]
async fn stream_text_chunks_reassemble_and_end_with_done() {
    let fake = fake().await;
    let mut request = user("stream me");
    request["stream"] = json!(true);
    let response = post(&fake, &request).await;
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = parse_sse(&response.text().await.unwrap());
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| e.json())
        .collect();
    let doc: Value =
        serde_json::from_str(include_str!("fixtures/openai_chat_completion_chunk.json")).unwrap();
    assert_same_shape(&doc, &chunks[0]);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "You said: stream me");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(chunks.iter().all(|c| c["id"] == chunks[0]["id"]));
    let finishes: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes, vec![&json!("stop")]);
}

#[tokio::test]
async fn stream_tool_call_deltas_assemble_into_one_call() {
    let fake = fake().await;
    let request = json!({
        "model": "gpt-4o-mini",
        "stream": true,
        "stream_options": {"include_usage": true},
        "tools": exec_tool(),
        "messages": [{"role": "user", "content": "run: echo hi > note.txt && cat note.txt"}],
    });
    let events = parse_sse(&post(&fake, &request).await.text().await.unwrap());
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| e.json())
        .collect();
    let (mut id, mut name, mut arguments) = (String::new(), String::new(), String::new());
    let mut fragments = 0;
    for chunk in &chunks {
        for call in chunk["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(call["index"], 0);
            id += call["id"].as_str().unwrap_or("");
            name += call["function"]["name"].as_str().unwrap_or("");
            arguments += call["function"]["arguments"].as_str().unwrap_or("");
            fragments += 1;
        }
    }
    assert!(id.starts_with("call_"));
    assert_eq!(name, "exec");
    assert!(fragments > 2, "arguments should arrive in several deltas");
    let arguments: Value = serde_json::from_str(&arguments).unwrap();
    assert_eq!(
        arguments,
        json!({"command": "echo hi > note.txt && cat note.txt"})
    );
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["total_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn demo_brain_reports_tool_output_and_refuses_run_without_exec() {
    let fake = fake().await;
    let request = json!({"model": "m", "tools": exec_tool(), "messages": [
        {"role": "user", "content": "run: echo hi"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "exec", "arguments": "{\"command\":\"echo hi\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "hi\n"}
    ]});
    let body: Value = post(&fake, &request).await.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Tool output:\nhi\n"
    );
    let body: Value = post(&fake, &user("run: ls")).await.json().await.unwrap();
    let text = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.contains("no exec tool"), "{text}");
}

#[tokio::test]
async fn api_key_is_enforced_in_openai_error_shape() {
    let fake = fake().await;
    let url = format!("{}/v1/chat/completions", fake.base_url());
    let missing = client().post(&url).json(&user("x")).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let wrong = client()
        .post(&url)
        .bearer_auth("sk-wrong")
        .json(&user("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert!(
        !body.to_string().contains("sk-wrong"),
        "errors must not echo keys"
    );
    assert_eq!(post(&fake, &user("x")).await.status(), 200);
    assert_eq!(fake.request_count(), 3);
    assert_eq!(
        fake.requests()[1].header("Authorization"),
        Some("Bearer sk-wrong")
    );
}

#[tokio::test]
async fn scripted_errors_are_consumed_once_with_retry_after() {
    let fake = fake().await;
    fake.push(Step::Error {
        status: 429,
        retry_after_secs: Some(7),
    });
    fake.push(Step::Error {
        status: 500,
        retry_after_secs: None,
    });
    let limited = post(&fake, &user("a")).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "7");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    let failed = post(&fake, &user("b")).await;
    assert_eq!(failed.status(), 500);
    assert!(failed.headers().get("retry-after").is_none());
    let body: Value = failed.json().await.unwrap();
    assert_eq!(body["error"]["type"], "server_error");
    let ok: Value = post(&fake, &user("c")).await.json().await.unwrap();
    assert_eq!(ok["choices"][0]["message"]["content"], "You said: c");
    assert_eq!(fake.pending_steps(), 0);
}

#[tokio::test]
async fn drop_mid_stream_sends_partial_text_then_breaks() {
    let fake = fake().await;
    fake.push(Step::DropMidStream {
        partial_text: "half an ans".into(),
    });
    let mut request = user("x");
    request["stream"] = json!(true);
    let mut response = post(&fake, &request).await;
    let mut received = String::new();
    let error = loop {
        match response.chunk().await {
            Ok(Some(bytes)) => received.push_str(std::str::from_utf8(&bytes).unwrap()),
            Ok(None) => panic!("stream ended cleanly: {received}"),
            Err(error) => break error,
        }
    };
    assert!(
        error.is_body() || error.is_decode() || error.is_request(),
        "{error:?}"
    );
    assert!(!received.contains("[DONE]"));
    let text: String = parse_sse(&received)
        .iter()
        .filter_map(|e| {
            e.json()["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "half an ans");
}

#[tokio::test]
async fn slow_text_streams_word_by_word_with_delays() {
    let fake = fake().await;
    fake.push(Step::SlowText {
        text: "one two three four".into(),
        chunk_delay: Duration::from_millis(60),
    });
    let mut request = user("x");
    request["stream"] = json!(true);
    let started = Instant::now();
    let body = post(&fake, &request).await.text().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(180));
    let words = parse_sse(&body)
        .iter()
        .filter(|e| e.data != "[DONE]")
        .filter(|e| {
            e.json()["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        })
        .count();
    assert_eq!(words, 4);
}
