//! Anthropic Messages: `POST {baseUrl}/messages` with `x-api-key` and
//! `anthropic-version: 2023-06-01`. The system prompt is top-level; tools are
//! `{name, description, input_schema}`; the model's calls are `tool_use` blocks and the
//! results go back as `tool_result` blocks in a user message. Streaming uses SSE events
//! (`message_start`, `content_block_start`/`_delta`/`_stop`, `message_delta`,
//! `message_stop`, `ping`, `error`), assembled here block by block.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::http::{AttemptError, HttpCaller};
use super::sse::SseReader;
use super::{ProviderError, ProviderSettings};
use crate::model::{
    BoxFuture, Message, ModelClient, ModelRequest, ModelResponse, StopReason, StreamMode, TextSink,
    TokenUsage, ToolCall,
};

/// The API version this client speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// A Messages API client.
#[derive(Debug, Clone)]
pub struct AnthropicMessages {
    http: HttpCaller,
}

impl AnthropicMessages {
    /// A client for `settings`.
    pub fn new(settings: ProviderSettings, client: reqwest::Client) -> Self {
        Self {
            http: HttpCaller::new(settings, client),
        }
    }

    async fn run(
        &self,
        request: &ModelRequest,
        sink: &TextSink,
    ) -> Result<ModelResponse, ProviderError> {
        let body = request_body(&self.http.settings().model, request);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(&body, request.stream, sink).await {
                Ok(response) => return Ok(response),
                Err(failed) => tokio::time::sleep(self.http.next_wait(attempt, failed)?).await,
            }
        }
    }

    async fn attempt(
        &self,
        body: &Value,
        mode: StreamMode,
        sink: &TextSink,
    ) -> Result<ModelResponse, AttemptError> {
        let mut headers = self
            .http
            .key_headers("x-api-key", "")
            .map_err(AttemptError::Fatal)?;
        headers.insert(
            "anthropic-version",
            http::HeaderValue::from_static(ANTHROPIC_VERSION),
        );
        let url = self.http.url("messages");
        let response = self.http.post_json(&url, headers, body).await?;
        let provider = self.http.settings().id.clone();
        match mode {
            StreamMode::Whole => {
                let value: Value = response.json().await.map_err(|e| {
                    AttemptError::Fatal(ProviderError::Protocol {
                        provider: provider.clone(),
                        detail: format!("the response is not JSON: {e}"),
                    })
                })?;
                let parsed = parse_response(&value).map_err(|detail| {
                    AttemptError::Fatal(ProviderError::Protocol { provider, detail })
                })?;
                sink.push(&parsed.text).await;
                Ok(parsed)
            }
            StreamMode::Streamed => self.read_stream(response, sink).await,
        }
    }

    async fn read_stream(
        &self,
        response: reqwest::Response,
        sink: &TextSink,
    ) -> Result<ModelResponse, AttemptError> {
        let provider = self.http.settings().id.clone();
        let mut reader = SseReader::new(response);
        let mut assembler = StreamAssembler::default();
        let mut emitted = false;
        // Once text reached the sink, another attempt would repeat it: fail instead.
        let fail = |retryable: bool, error: ProviderError| {
            if retryable {
                AttemptError::Retry { error, after: None }
            } else {
                AttemptError::Fatal(error)
            }
        };
        while !assembler.done {
            let event = match reader.next_event().await {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(source) => {
                    let error = ProviderError::Transport {
                        provider,
                        attempts: 1,
                        source,
                    };
                    return Err(fail(!emitted, error));
                }
            };
            match assembler.on_event(&event.data) {
                Ok(Some(text)) => {
                    sink.push(&text).await;
                    emitted = true;
                }
                Ok(None) => {}
                Err(EventError::Malformed(detail)) => {
                    return Err(AttemptError::Fatal(ProviderError::Protocol {
                        provider,
                        detail,
                    }));
                }
                Err(EventError::Reported { message, transient }) => {
                    let error = ProviderError::StreamError {
                        provider,
                        message: self.http.redact(&message),
                    };
                    return Err(fail(transient && !emitted, error));
                }
            }
        }
        assembler
            .finish()
            .map_err(|detail| fail(!emitted, ProviderError::Protocol { provider, detail }))
    }
}

impl ModelClient for AnthropicMessages {
    fn complete<'a>(
        &'a self,
        request: &'a ModelRequest,
        sink: &'a TextSink,
    ) -> BoxFuture<'a, Result<ModelResponse, ProviderError>> {
        Box::pin(self.run(request, sink))
    }

    fn describe(&self) -> String {
        let s = self.http.settings();
        format!("{}/{}", s.id, s.model)
    }
}

/// The request body. Consecutive messages of the same role are merged into one (the API
/// wants user and assistant to alternate); empty messages are left out.
pub fn request_body(model: &str, request: &ModelRequest) -> Value {
    let mut messages: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for message in &request.messages {
        let (role, blocks) = match message {
            Message::User { text } => ("user", text_block(text).into_iter().collect()),
            Message::Assistant { text, tool_calls } => {
                let mut blocks: Vec<Value> = text_block(text).into_iter().collect();
                blocks.extend(tool_calls.iter().map(|c| {
                    let input = serde_json::from_str::<Value>(&c.arguments_json)
                        .ok()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({}));
                    json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input})
                }));
                ("assistant", blocks)
            }
            Message::ToolResults(results) => (
                "user",
                results
                    .iter()
                    .map(|r| {
                        json!({"type": "tool_result", "tool_use_id": r.call_id,
                               "content": r.content, "is_error": r.is_error})
                    })
                    .collect(),
            ),
        };
        if blocks.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some((last_role, last_blocks)) if *last_role == role => last_blocks.extend(blocks),
            _ => messages.push((role, blocks)),
        }
    }
    let messages: Vec<Value> = messages
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    let mut body = json!({"model": model, "max_tokens": request.max_tokens, "messages": messages});
    if !request.system.is_empty() {
        body["system"] = json!(request.system);
    }
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
    }
    if request.stream == StreamMode::Streamed {
        body["stream"] = json!(true);
    }
    body
}

fn text_block(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({"type": "text", "text": text}))
}

/// A non-streamed response body.
pub fn parse_response(body: &Value) -> Result<ModelResponse, String> {
    let content = body
        .get("content")
        .and_then(Value::as_array)
        .ok_or("the response has no content array")?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: str_field(block, "id"),
                name: str_field(block, "name"),
                arguments_json: block
                    .get("input")
                    .map_or_else(|| "{}".to_owned(), Value::to_string),
            }),
            _ => {}
        }
    }
    let stop = body.get("stop_reason").and_then(Value::as_str);
    let mut usage = TokenUsage::default();
    apply_usage(&mut usage, body.get("usage"));
    Ok(ModelResponse {
        text,
        stop_reason: stop_reason(stop, !tool_calls.is_empty()),
        tool_calls,
        usage,
    })
}

fn str_field(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn stop_reason(stop: Option<&str>, has_tool_calls: bool) -> StopReason {
    match stop {
        Some("end_turn" | "stop_sequence") => StopReason::EndTurn,
        Some("max_tokens") => StopReason::MaxTokens,
        Some("tool_use") => StopReason::ToolUse,
        Some(other) => StopReason::Other(other.to_owned()),
        None if has_tool_calls => StopReason::ToolUse,
        None => StopReason::EndTurn,
    }
}

/// Counts in `usage` replace earlier ones (the stream's counts are cumulative); cache
/// reads and writes count as input.
fn apply_usage(usage: &mut TokenUsage, value: Option<&Value>) {
    let Some(value) = value else { return };
    let n = |key: &str| value.get(key).and_then(Value::as_u64);
    let input = [
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ]
    .iter()
    .filter_map(|k| n(k))
    .reduce(u64::saturating_add);
    if let Some(input) = input {
        usage.input_tokens = input;
    }
    if let Some(output) = n("output_tokens") {
        usage.output_tokens = output;
    }
}

/// Why a stream event could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventError {
    /// Not a Messages event.
    Malformed(String),
    /// The provider sent an `error` event.
    Reported {
        /// Its message.
        message: String,
        /// Overload or server error: worth another attempt if no text was shown yet.
        transient: bool,
    },
}

#[derive(Debug)]
enum Block {
    Text(String),
    Tool {
        id: String,
        name: String,
        json: String,
    },
    Other,
}

/// Assembles a streamed answer from its events.
#[derive(Debug, Default)]
pub struct StreamAssembler {
    blocks: BTreeMap<u64, Block>,
    stop: Option<String>,
    usage: TokenUsage,
    /// `message_stop` was seen.
    pub done: bool,
}

impl StreamAssembler {
    /// One event's `data:` payload (its `type` names the event); returns the text delta it
    /// carries, if any.
    pub fn on_event(&mut self, data: &str) -> Result<Option<String>, EventError> {
        let event: Value = serde_json::from_str(data)
            .map_err(|e| EventError::Malformed(format!("a stream event is not JSON: {e}")))?;
        let index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
        match event.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                apply_usage(&mut self.usage, event.pointer("/message/usage"));
            }
            Some("content_block_start") => {
                let block = event.get("content_block").unwrap_or(&Value::Null);
                let block = match block.get("type").and_then(Value::as_str) {
                    Some("text") => Block::Text(str_field(block, "text")),
                    Some("tool_use") => Block::Tool {
                        id: str_field(block, "id"),
                        name: str_field(block, "name"),
                        json: String::new(),
                    },
                    _ => Block::Other,
                };
                self.blocks.insert(index, block);
            }
            Some("content_block_delta") => {
                let delta = event.get("delta").unwrap_or(&Value::Null);
                let piece = |key: &str| delta.get(key).and_then(Value::as_str).unwrap_or("");
                match (
                    delta.get("type").and_then(Value::as_str),
                    self.blocks.get_mut(&index),
                ) {
                    (Some("text_delta"), Some(Block::Text(text))) => {
                        let t = piece("text");
                        text.push_str(t);
                        return Ok((!t.is_empty()).then(|| t.to_owned()));
                    }
                    (Some("input_json_delta"), Some(Block::Tool { json, .. })) => {
                        json.push_str(piece("partial_json"));
                    }
                    (Some("text_delta" | "input_json_delta"), _) => {
                        return Err(EventError::Malformed(format!(
                            "a delta for content block {index}, which was not started with that type"
                        )));
                    }
                    _ => {}
                }
            }
            Some("message_delta") => {
                if let Some(stop) = event.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop = Some(stop.to_owned());
                }
                apply_usage(&mut self.usage, event.get("usage"));
            }
            Some("message_stop") => self.done = true,
            Some("error") => {
                let kind = event.pointer("/error/type").and_then(Value::as_str);
                let message = event
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error");
                return Err(EventError::Reported {
                    message: format!("{}: {message}", kind.unwrap_or("error")),
                    transient: matches!(kind, Some("overloaded_error" | "api_error")),
                });
            }
            // ping, content_block_stop and events added later need nothing.
            _ => {}
        }
        Ok(None)
    }

    /// The whole answer, once `message_stop` arrived.
    pub fn finish(self) -> Result<ModelResponse, String> {
        if !self.done {
            return Err("the stream ended before message_stop".to_owned());
        }
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        for block in self.blocks.into_values() {
            match block {
                Block::Text(t) => text.push_str(&t),
                Block::Tool { id, name, json } => tool_calls.push(ToolCall {
                    id,
                    name,
                    arguments_json: if json.trim().is_empty() {
                        "{}".to_owned()
                    } else {
                        json
                    },
                }),
                Block::Other => {}
            }
        }
        Ok(ModelResponse {
            text,
            stop_reason: stop_reason(self.stop.as_deref(), !tool_calls.is_empty()),
            tool_calls,
            usage: self.usage,
        })
    }
}

#[cfg(test)]
#[path = "anthropic_tests.rs"]
mod tests;
