//! Unit tests of the Anthropic encoding and stream assembly.

use super::*;
use crate::model::{ToolDefinition, ToolResult};

#[test]
fn encodes_system_tools_blocks_and_merges_roles() {
    let request = ModelRequest {
        system: "be brief".into(),
        messages: vec![
            Message::User { text: "a".into() },
            Message::User { text: "b".into() },
            Message::Assistant {
                text: "checking".into(),
                tool_calls: vec![ToolCall {
                    id: "tu_1".into(),
                    name: "exec".into(),
                    arguments_json: r#"{"command":"ls"}"#.into(),
                }],
            },
            Message::ToolResults(vec![ToolResult {
                call_id: "tu_1".into(),
                tool: "exec".into(),
                content: "exit code 1".into(),
                is_error: true,
            }]),
            Message::Assistant {
                text: String::new(),
                tool_calls: vec![],
            },
        ],
        tools: vec![ToolDefinition {
            name: "exec".into(),
            description: "run".into(),
            parameters: json!({"type": "object"}),
        }],
        max_tokens: 64,
        stream: StreamMode::Whole,
    };
    assert_eq!(
        request_body("claude-x", &request),
        json!({
            "model": "claude-x",
            "max_tokens": 64,
            "system": "be brief",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "checking"},
                    {"type": "tool_use", "id": "tu_1", "name": "exec", "input": {"command": "ls"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "tu_1", "content": "exit code 1", "is_error": true}
                ]},
            ],
            "tools": [{"name": "exec", "description": "run", "input_schema": {"type": "object"}}],
        })
    );
}

#[test]
fn parses_a_whole_response() {
    let body = json!({
        "id": "msg_1", "type": "message", "role": "assistant",
        "content": [
            {"type": "text", "text": "Running it."},
            {"type": "tool_use", "id": "toolu_1", "name": "exec", "input": {"command": "date"}}
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 20, "output_tokens": 9, "cache_read_input_tokens": 5}
    });
    let r = parse_response(&body).unwrap();
    assert_eq!(r.text, "Running it.");
    assert_eq!(r.stop_reason, StopReason::ToolUse);
    assert_eq!(r.tool_calls[0].id, "toolu_1");
    assert_eq!(r.tool_calls[0].arguments_json, r#"{"command":"date"}"#);
    assert_eq!(
        r.usage,
        TokenUsage {
            input_tokens: 25,
            output_tokens: 9
        }
    );
    assert!(parse_response(&json!({"type": "message"})).is_err());
}

#[test]
fn assembles_text_and_tool_input_from_events() {
    let events = [
        r#"{"type":"message_start","message":{"id":"m","usage":{"input_tokens":30,"output_tokens":1}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        r#"{"type":"ping"}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_9","name":"exec","input":{}}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"command\": \"u"}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ptime\"}"}}"#,
        r#"{"type":"content_block_stop","index":1}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":15}}"#,
        r#"{"type":"message_stop"}"#,
    ];
    let mut a = StreamAssembler::default();
    let mut text = String::new();
    for e in events {
        if let Some(t) = a.on_event(e).unwrap() {
            text.push_str(&t);
        }
    }
    assert!(a.done);
    let r = a.finish().unwrap();
    assert_eq!(text, "Hello");
    assert_eq!(r.text, "Hello");
    assert_eq!(r.stop_reason, StopReason::ToolUse);
    assert_eq!(
        r.usage,
        TokenUsage {
            input_tokens: 30,
            output_tokens: 15
        }
    );
    assert_eq!(r.tool_calls.len(), 1);
    assert_eq!(r.tool_calls[0].arguments_json, r#"{"command": "uptime"}"#);
}

#[test]
fn tool_call_without_input_deltas_gets_an_empty_object() {
    let mut a = StreamAssembler::default();
    for e in [
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"exec","input":{}}}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":2}}"#,
        r#"{"type":"message_stop"}"#,
    ] {
        a.on_event(e).unwrap();
    }
    assert_eq!(a.finish().unwrap().tool_calls[0].arguments_json, "{}");
}

#[test]
fn error_events_and_early_end() {
    let mut a = StreamAssembler::default();
    let err = a
        .on_event(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)
        .unwrap_err();
    assert_eq!(
        err,
        EventError::Reported {
            message: "overloaded_error: Overloaded".into(),
            transient: true
        }
    );
    let err = a
        .on_event(r#"{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}"#)
        .unwrap_err();
    assert!(matches!(
        err,
        EventError::Reported {
            transient: false,
            ..
        }
    ));
    assert!(matches!(
        a.on_event(
            r#"{"type":"content_block_delta","index":4,"delta":{"type":"text_delta","text":"x"}}"#
        ),
        Err(EventError::Malformed(_))
    ));
    let mut b = StreamAssembler::default();
    b.on_event(r#"{"type":"message_start","message":{"usage":{"input_tokens":1}}}"#)
        .unwrap();
    assert!(b.finish().is_err());
}
