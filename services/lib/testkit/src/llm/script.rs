//! Scripted steps, the conversation view both APIs are reduced to, and the demo brain.
//!
//! Everything here is pure: the handlers parse a request into a [`Conversation`], pick a
//! [`Reply`] (script first, then [`demo_brain`]) and render it in their own wire format.

use std::time::Duration;

use serde_json::Value;

/// One scripted answer; each step is consumed by exactly one request (either API).
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Answer with this assistant text (`finish_reason: stop` / `stop_reason: end_turn`).
    Text(String),
    /// Call one tool with these JSON arguments (`tool_calls` / `tool_use`).
    ToolCall { name: String, arguments: Value },
    /// Fail with this HTTP status in the provider's error shape (429 rate limit, 500, 529
    /// overloaded...), with a `retry-after` header when `retry_after_secs` is set.
    Error {
        status: u16,
        retry_after_secs: Option<u64>,
    },
    /// Answer with this text, streamed word by word with `chunk_delay` between chunks
    /// (non-streaming requests wait for the total delay, then answer at once).
    SlowText { text: String, chunk_delay: Duration },
    /// Start answering `partial_text`, then close the connection without finishing the
    /// response (no `[DONE]` / `message_stop`; a non-streaming body is cut off).
    DropMidStream { partial_text: String },
}

/// What a request is answered with, after the script or the demo brain decided.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    Text {
        text: String,
        chunk_delay: Duration,
    },
    ToolCall {
        name: String,
        arguments: Value,
    },
    Error {
        status: u16,
        retry_after_secs: Option<u64>,
    },
    Drop {
        partial_text: String,
    },
}

impl From<Step> for Reply {
    fn from(step: Step) -> Self {
        match step {
            Step::Text(text) => Reply::Text {
                text,
                chunk_delay: Duration::ZERO,
            },
            Step::ToolCall { name, arguments } => Reply::ToolCall { name, arguments },
            Step::Error {
                status,
                retry_after_secs,
            } => Reply::Error {
                status,
                retry_after_secs,
            },
            Step::SlowText { text, chunk_delay } => Reply::Text { text, chunk_delay },
            Step::DropMidStream { partial_text } => Reply::Drop { partial_text },
        }
    }
}

impl Reply {
    /// How long a non-streaming request waits before answering (slow text only).
    pub(crate) fn generation_time(&self) -> Duration {
        match self {
            Reply::Text { text, chunk_delay } => {
                let chunks = u32::try_from(text.split_inclusive(' ').count()).unwrap_or(u32::MAX);
                chunk_delay.saturating_mul(chunks)
            }
            _ => Duration::ZERO,
        }
    }
}

/// The last turn of a conversation, as far as the demo brain cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LastTurn {
    /// The newest message carries a tool result with this text.
    ToolResult(String),
    /// The newest user text (empty when there is none).
    UserText(String),
}

/// A provider-neutral view of a chat request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conversation {
    pub(crate) last: LastTurn,
    pub(crate) tool_names: Vec<String>,
}

/// The tool the demo brain calls for `run: <command>`.
pub(crate) const EXEC_TOOL: &str = "exec";

/// The deterministic answer used when no step is scripted.
pub(crate) fn demo_brain(conversation: &Conversation) -> Reply {
    let text = match &conversation.last {
        LastTurn::ToolResult(output) => format!("Tool output:\n{output}"),
        LastTurn::UserText(user) => match user.trim_start().strip_prefix("run:") {
            Some(command) if conversation.tool_names.iter().any(|t| t == EXEC_TOOL) => {
                return Reply::ToolCall {
                    name: EXEC_TOOL.to_owned(),
                    arguments: serde_json::json!({ "command": command.trim() }),
                };
            }
            Some(command) => format!(
                "I cannot run `{}`: no exec tool is available in this conversation.",
                command.trim()
            ),
            None => format!("You said: {user}"),
        },
    };
    Reply::Text {
        text,
        chunk_delay: Duration::ZERO,
    }
}

/// Joins the text of a `content` value: a plain string, or an array of parts/blocks whose
/// `type` is `text` (OpenAI content parts and Anthropic text blocks look alike here).
pub(crate) fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|part| part.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// Reads an OpenAI Chat Completions request body.
pub(crate) fn openai_conversation(body: &Value) -> Conversation {
    let messages = messages(body);
    let last = match messages.last() {
        Some(last) if role(last) == Some("tool") => {
            LastTurn::ToolResult(content_text(last.get("content").unwrap_or(&Value::Null)))
        }
        _ => LastTurn::UserText(last_user_text(messages)),
    };
    let tool_names = tools(body)
        .iter()
        .filter_map(|tool| tool.pointer("/function/name").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    Conversation { last, tool_names }
}

/// Reads an Anthropic Messages request body.
pub(crate) fn anthropic_conversation(body: &Value) -> Conversation {
    let messages = messages(body);
    let tool_result = messages
        .last()
        .filter(|last| role(last) == Some("user"))
        .and_then(|last| last.get("content"))
        .and_then(Value::as_array)
        .and_then(|blocks| {
            blocks
                .iter()
                .rev()
                .find(|block| block.get("type").and_then(Value::as_str) == Some("tool_result"))
        })
        .map(|block| content_text(block.get("content").unwrap_or(&Value::Null)));
    let last = match tool_result {
        Some(output) => LastTurn::ToolResult(output),
        None => LastTurn::UserText(last_user_text(messages)),
    };
    let tool_names = tools(body)
        .iter()
        .filter_map(|tool| tool.get("name").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    Conversation { last, tool_names }
}

fn messages(body: &Value) -> &[Value] {
    body.get("messages")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn tools(body: &Value) -> &[Value] {
    body.get("tools")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn role(message: &Value) -> Option<&str> {
    message.get("role").and_then(Value::as_str)
}

fn last_user_text(messages: &[Value]) -> String {
    messages
        .iter()
        .rev()
        .find(|message| role(message) == Some("user"))
        .map(|message| content_text(message.get("content").unwrap_or(&Value::Null)))
        .unwrap_or_default()
}

/// A rough, deterministic token estimate (about four characters per token).
pub(crate) fn estimate_tokens(text: &str) -> u64 {
    let chars = u64::try_from(text.chars().count()).unwrap_or(u64::MAX);
    chars.div_ceil(4).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(reply: Reply) -> String {
        match reply {
            Reply::Text { text, .. } => text,
            other => panic!("expected text, got {other:?}"),
        }
    }

    #[test]
    fn echoes_the_last_user_text() {
        let body = json!({"messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello"}]}
        ]});
        assert_eq!(
            text(demo_brain(&openai_conversation(&body))),
            "You said: hello"
        );
    }

    #[test]
    fn run_becomes_an_exec_call_only_when_offered() {
        let with_exec = json!({
            "messages": [{"role": "user", "content": "run: echo hi > note.txt && cat note.txt "}],
            "tools": [{"type": "function", "function": {"name": "exec", "parameters": {}}}]
        });
        assert_eq!(
            demo_brain(&openai_conversation(&with_exec)),
            Reply::ToolCall {
                name: "exec".into(),
                arguments: json!({"command": "echo hi > note.txt && cat note.txt"})
            }
        );
        let without = json!({"messages": [{"role": "user", "content": "run: ls"}]});
        assert!(text(demo_brain(&openai_conversation(&without))).contains("no exec tool"));
    }

    #[test]
    fn tool_results_are_reported_for_both_apis() {
        let openai = json!({"messages": [
            {"role": "user", "content": "run: echo hi"},
            {"role": "assistant", "content": null, "tool_calls": []},
            {"role": "tool", "tool_call_id": "call_1", "content": "hi\n"}
        ]});
        assert_eq!(
            text(demo_brain(&openai_conversation(&openai))),
            "Tool output:\nhi\n"
        );
        let anthropic = json!({"messages": [
            {"role": "user", "content": "run: echo hi"},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1",
                 "content": [{"type": "text", "text": "hi"}]}
            ]}
        ], "tools": [{"name": "exec", "input_schema": {"type": "object"}}]});
        let conversation = anthropic_conversation(&anthropic);
        assert_eq!(conversation.tool_names, vec!["exec".to_owned()]);
        assert_eq!(text(demo_brain(&conversation)), "Tool output:\nhi");
    }
}
