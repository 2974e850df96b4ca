//! Unit tests of the OpenAI encoding, parsing and stream assembly.

use super::*;
use crate::model::{ToolDefinition, ToolResult};

#[test]
fn encodes_messages_tools_and_stream_options() {
    let request = ModelRequest {
        system: "be brief".into(),
        messages: vec![
            Message::User { text: "hi".into() },
            Message::Assistant {
                text: String::new(),
                tool_calls: vec![ToolCall {
                    id: "c1".into(),
                    name: "exec".into(),
                    arguments_json: r#"{"command":"ls"}"#.into(),
                }],
            },
            Message::ToolResults(vec![ToolResult {
                call_id: "c1".into(),
                tool: "exec".into(),
                content: "a\n".into(),
                is_error: false,
            }]),
        ],
        tools: vec![ToolDefinition {
            name: "exec".into(),
            description: "run".into(),
            parameters: json!({"type": "object"}),
        }],
        max_tokens: 100,
        stream: StreamMode::Streamed,
    };
    let body = request_body("gpt-x", "max_tokens", &request);
    assert_eq!(
        body,
        json!({
            "model": "gpt-x",
            "max_tokens": 100,
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "exec", "arguments": "{\"command\":\"ls\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "c1", "content": "a\n"},
            ],
            "tools": [{"type": "function", "function": {"name": "exec", "description": "run", "parameters": {"type": "object"}}}],
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    );
}

#[test]
fn parses_a_whole_response_with_tool_calls() {
    let body = json!({
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "exec", "arguments": "{\"command\":\"date\"}"}}]
        }}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    });
    let r = parse_response(&body).unwrap();
    assert_eq!(r.text, "");
    assert_eq!(r.stop_reason, StopReason::ToolUse);
    assert_eq!(r.tool_calls[0].arguments_json, r#"{"command":"date"}"#);
    assert_eq!(
        r.usage,
        TokenUsage {
            input_tokens: 12,
            output_tokens: 3
        }
    );
    assert!(parse_response(&json!({"choices": []})).is_err());
}

#[test]
fn assembles_tool_calls_from_deltas() {
    let mut a = StreamAssembler::default();
    let chunks = [
        r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"Let me "}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"look."}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"exec","arguments":""}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"exec","arguments":"{\"comm"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"command\":"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"ls\"}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"and\":\"pwd\"}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7}}"#,
        "[DONE]",
    ];
    let mut text = String::new();
    for c in chunks {
        if let Some(t) = a.on_data(c).unwrap() {
            text.push_str(&t);
        }
    }
    assert!(a.done);
    let r = a.finish().unwrap();
    assert_eq!(text, "Let me look.");
    assert_eq!(r.text, "Let me look.");
    assert_eq!(r.stop_reason, StopReason::ToolUse);
    assert_eq!(r.usage.output_tokens, 7);
    let calls: Vec<(&str, &str)> = r
        .tool_calls
        .iter()
        .map(|c| (c.id.as_str(), c.arguments_json.as_str()))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("call_a", r#"{"command":"ls"}"#),
            ("call_b", r#"{"command":"pwd"}"#)
        ]
    );
}

#[test]
fn stream_errors_and_early_end() {
    let mut a = StreamAssembler::default();
    assert_eq!(
        a.on_data(r#"{"error":{"message":"overloaded"}}"#),
        Err(ChunkError::Reported("overloaded".into()))
    );
    assert!(matches!(a.on_data("{nope"), Err(ChunkError::Malformed(_))));
    let mut b = StreamAssembler::default();
    b.on_data(r#"{"choices":[{"index":0,"delta":{"content":"par"}}]}"#)
        .unwrap();
    assert!(b.finish().is_err());
}
