//! Provider wire tests against a scripted loopback server: JSON and SSE for both APIs,
//! tool-call assembly, retries (429 + retry-after, 5xx, 529), immediate failure on 400,
//! and broken streams.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pincer_agent::model::{
    Message, ModelClient, ModelRequest, ModelResponse, StopReason, StreamMode, TextSink,
    ToolDefinition,
};
use pincer_agent::providers::{ProviderError, ProviderSettings, RetryPolicy, model_client};
use pincer_runtime::Secret;
use pincer_runtime::config::raw::ProviderApi;
use serde_json::json;
use support::llm::{
    Reply, ScriptedLlm, anthropic_sse, openai_exec_stream, openai_sse, openai_text_stream,
};

const KEY: &str = "sk-test-secret-9c1d";

fn client(llm: &ScriptedLlm, api: ProviderApi) -> Arc<dyn ModelClient> {
    model_client(ProviderSettings {
        id: "prov".into(),
        api,
        base_url: reqwest::Url::parse(&llm.base_url()).unwrap(),
        api_key: Some(Secret::new(KEY)),
        model: "m-1".into(),
        retry: RetryPolicy {
            base_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        },
    })
    .unwrap()
}

fn request(stream: StreamMode) -> ModelRequest {
    ModelRequest {
        system: "sys".into(),
        messages: vec![Message::User { text: "hi".into() }],
        tools: vec![ToolDefinition {
            name: "exec".into(),
            description: "run".into(),
            parameters: json!({"type": "object"}),
        }],
        max_tokens: 77,
        stream,
    }
}

/// Runs one call, returning the response and the text pushed to the sink.
async fn complete(
    client: &dyn ModelClient,
    stream: StreamMode,
) -> (Result<ModelResponse, ProviderError>, Vec<String>) {
    let (sink, mut rx) = TextSink::channel(1024);
    let req = request(stream);
    let result = client.complete(&req, &sink).await;
    drop(sink);
    let mut deltas = Vec::new();
    while let Some(d) = rx.recv().await {
        deltas.push(d);
    }
    (result, deltas)
}

#[tokio::test]
async fn openai_json_with_tool_call() {
    let llm = ScriptedLlm::start(vec![Reply::ok(json!({
        "id": "c", "object": "chat.completion",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "On it.",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "exec", "arguments": "{\"command\":\"ls\"}"}}]}}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 5}
    }))])
    .await;
    let (result, deltas) =
        complete(&*client(&llm, ProviderApi::OpenAiChat), StreamMode::Whole).await;
    let response = result.unwrap();
    assert_eq!(deltas, vec!["On it."]);
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(response.tool_calls[0].name, "exec");
    assert_eq!(response.usage.input_tokens, 9);
    let sent = &llm.requests()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(
        sent.headers["authorization"],
        format!("Bearer {KEY}").as_str()
    );
    assert_eq!(sent.body["model"], "m-1");
    assert_eq!(sent.body["max_tokens"], 77);
    assert_eq!(
        sent.body["messages"][0],
        json!({"role": "system", "content": "sys"})
    );
    assert_eq!(sent.body["tools"][0]["function"]["name"], "exec");
    assert!(sent.body.get("stream").is_none());
}

#[tokio::test]
async fn openai_sse_streams_text_and_assembles_tool_calls() {
    let llm = ScriptedLlm::start(vec![
        Reply::sse(openai_text_stream("Hello there friend")),
        Reply::sse(openai_exec_stream("call_9", r#"{"command":"uname -a"}"#)),
    ])
    .await;
    let client = client(&llm, ProviderApi::OpenAiChat);
    let (result, deltas) = complete(&*client, StreamMode::Streamed).await;
    let response = result.unwrap();
    assert_eq!(deltas, vec!["Hello ", "there ", "friend"]);
    assert_eq!(response.text, "Hello there friend");
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    assert_eq!(response.usage.output_tokens, 4);
    let sent = &llm.requests()[0];
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["stream_options"], json!({"include_usage": true}));

    let (result, deltas) = complete(&*client, StreamMode::Streamed).await;
    let response = result.unwrap();
    assert!(deltas.is_empty());
    assert_eq!(response.tool_calls.len(), 1);
    assert_eq!(response.tool_calls[0].id, "call_9");
    assert_eq!(
        response.tool_calls[0].arguments_json,
        r#"{"command":"uname -a"}"#
    );
}

fn anthropic_stream(text: &str, tool_json: Option<&str>) -> Vec<String> {
    let mut events = vec![
        json!({"type": "message_start", "message": {"id": "msg", "type": "message", "role": "assistant", "content": [], "usage": {"input_tokens": 25, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
    ];
    for piece in text.split_inclusive(' ') {
        events.push(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}));
    }
    events.push(json!({"type": "content_block_stop", "index": 0}));
    if let Some(tool_json) = tool_json {
        let (a, b) = tool_json.split_at(5);
        events.extend([
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "exec", "input": {}}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": a}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": b}}),
            json!({"type": "content_block_stop", "index": 1}),
        ]);
    }
    let stop = if tool_json.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    events.push(json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": 12}}));
    events.push(json!({"type": "message_stop"}));
    anthropic_sse(&events)
}

#[tokio::test]
async fn anthropic_json_and_sse() {
    let llm = ScriptedLlm::start(vec![
        Reply::ok(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "m-1",
            "content": [{"type": "text", "text": "Sure."}, {"type": "tool_use", "id": "toolu_a", "name": "exec", "input": {"command": "pwd"}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 3, "output_tokens": 4}
        })),
        Reply::sse(anthropic_stream("Checking the disk ", Some(r#"{"command":"df -h"}"#))),
    ])
    .await;
    let client = client(&llm, ProviderApi::Anthropic);
    let (result, deltas) = complete(&*client, StreamMode::Whole).await;
    let response = result.unwrap();
    assert_eq!(deltas, vec!["Sure."]);
    assert_eq!(
        response.tool_calls[0].arguments_json,
        r#"{"command":"pwd"}"#
    );
    let sent = &llm.requests()[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.headers["x-api-key"], KEY);
    assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
    assert!(sent.headers.get("authorization").is_none());
    assert_eq!(sent.body["system"], "sys");
    assert_eq!(sent.body["max_tokens"], 77);
    assert_eq!(
        sent.body["tools"][0]["input_schema"],
        json!({"type": "object"})
    );

    let (result, deltas) = complete(&*client, StreamMode::Streamed).await;
    let response = result.unwrap();
    assert_eq!(deltas, vec!["Checking ", "the ", "disk "]);
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(
        response.tool_calls[0].arguments_json,
        r#"{"command":"df -h"}"#
    );
    assert_eq!(response.usage.input_tokens, 25);
    assert_eq!(response.usage.output_tokens, 12);
    assert_eq!(llm.requests()[1].body["stream"], true);
}

#[tokio::test]
async fn rate_limit_with_retry_after_then_success() {
    let limited = |header: &'static str, value: &str| {
        Reply::status(
            429,
            vec![(header, value.to_owned())],
            json!({"error": {"message": "slow down"}}),
        )
    };
    let llm = ScriptedLlm::start(vec![
        limited("retry-after-ms", "40"),
        limited("retry-after", "1"),
        Reply::sse(openai_text_stream("ok")),
    ])
    .await;
    let started = Instant::now();
    let (result, _) = complete(
        &*client(&llm, ProviderApi::OpenAiChat),
        StreamMode::Streamed,
    )
    .await;
    assert_eq!(result.unwrap().text, "ok");
    assert_eq!(llm.requests().len(), 3);
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "retry-after was not honoured"
    );
}

#[tokio::test]
async fn server_errors_twice_then_success_and_anthropic_overload() {
    let failing = |status| Reply::status(status, vec![], json!({"error": {"message": "oops"}}));
    let llm = ScriptedLlm::start(vec![
        failing(500),
        failing(502),
        Reply::sse(openai_text_stream("fine")),
    ])
    .await;
    let (result, _) = complete(
        &*client(&llm, ProviderApi::OpenAiChat),
        StreamMode::Streamed,
    )
    .await;
    assert_eq!(result.unwrap().text, "fine");
    assert_eq!(llm.requests().len(), 3);

    let overloaded = Reply::status(
        529,
        vec![],
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    let llm =
        ScriptedLlm::start(vec![overloaded, Reply::sse(anthropic_stream("done", None))]).await;
    let (result, _) = complete(&*client(&llm, ProviderApi::Anthropic), StreamMode::Streamed).await;
    assert_eq!(result.unwrap().text, "done");
    assert_eq!(llm.requests().len(), 2);
}

#[tokio::test]
async fn retries_are_bounded() {
    let failing = || Reply::status(503, vec![], json!({"error": {"message": "unavailable"}}));
    let llm = ScriptedLlm::start((0..6).map(|_| failing()).collect()).await;
    let (result, _) = complete(&*client(&llm, ProviderApi::OpenAiChat), StreamMode::Whole).await;
    let err = result.unwrap_err().to_string();
    assert_eq!(llm.requests().len(), 4);
    assert!(err.contains("503") && err.contains("4 attempt"), "{err}");

    let too_long = Reply::status(
        429,
        vec![("retry-after", "3600".into())],
        json!({"error": {"message": "quota"}}),
    );
    let llm = ScriptedLlm::start(vec![too_long]).await;
    let (result, _) = complete(&*client(&llm, ProviderApi::OpenAiChat), StreamMode::Whole).await;
    let err = result.unwrap_err().to_string();
    assert_eq!(llm.requests().len(), 1);
    assert!(err.contains("retry after 3600 s"), "{err}");
}

#[tokio::test]
async fn bad_request_fails_at_once_with_the_providers_message_and_no_key() {
    let body = json!({"error": {"message": format!("model m-1 does not exist (key {KEY})"), "type": "invalid_request_error"}});
    let llm = ScriptedLlm::start(vec![Reply::status(400, vec![], body)]).await;
    let (result, _) = complete(
        &*client(&llm, ProviderApi::OpenAiChat),
        StreamMode::Streamed,
    )
    .await;
    let err = result.unwrap_err();
    let text = format!("{err} {err:?}");
    assert_eq!(llm.requests().len(), 1);
    assert!(text.contains("prov answered HTTP 400"), "{text}");
    assert!(text.contains("model m-1 does not exist"), "{text}");
    assert!(!text.contains(KEY), "the API key leaked: {text}");
}

#[tokio::test]
async fn dropped_stream_after_output_fails_before_output_is_retried() {
    let mut first = openai_text_stream("partial answer here");
    first.truncate(2);
    let llm = ScriptedLlm::start(vec![Reply::broken_sse(first)]).await;
    let (result, deltas) = complete(
        &*client(&llm, ProviderApi::OpenAiChat),
        StreamMode::Streamed,
    )
    .await;
    assert_eq!(deltas, vec!["partial ", "answer "]);
    assert!(result.is_err());
    assert_eq!(
        llm.requests().len(),
        1,
        "must not retry once text was shown"
    );

    let llm = ScriptedLlm::start(vec![
        Reply::broken_sse(vec![]),
        Reply::sse(anthropic_stream("recovered", None)),
    ])
    .await;
    let (result, deltas) =
        complete(&*client(&llm, ProviderApi::Anthropic), StreamMode::Streamed).await;
    assert_eq!(result.unwrap().text, "recovered");
    assert_eq!(deltas, vec!["recovered"]);
    assert_eq!(llm.requests().len(), 2);

    // A stream that simply ends early (no [DONE], no finish_reason) is an error too.
    let mut cut = openai_sse(&[json!({"choices": [{"index": 0, "delta": {"content": "x"}}]})]);
    cut.pop();
    let llm = ScriptedLlm::start(vec![Reply::sse(cut)]).await;
    let (result, _) = complete(
        &*client(&llm, ProviderApi::OpenAiChat),
        StreamMode::Streamed,
    )
    .await;
    assert!(
        matches!(result, Err(ProviderError::Protocol { .. })),
        "{result:?}"
    );
}
