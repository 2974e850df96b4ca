//! OpenAI Chat Completions: `POST {baseUrl}/chat/completions` with `Authorization: Bearer`.
//! Tools are `{type: "function", function: {name, description, parameters}}`; tool results
//! go back as `role: "tool"` messages with `tool_call_id`. Streaming uses SSE `data:`
//! chunks ending in `[DONE]`, with `stream_options.include_usage` for the usage chunk;
//! tool calls arrive as fragments keyed by `index` and are assembled here.
//!
//! The token limit is sent as `max_completion_tokens` to api.openai.com (its reasoning
//! models refuse `max_tokens`) and as `max_tokens` to OpenAI-compatible servers, which
//! do not all know the newer name.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::http::{AttemptError, HttpCaller};
use super::sse::SseReader;
use super::{ProviderError, ProviderSettings};
use crate::model::{
    BoxFuture, Message, ModelClient, ModelRequest, ModelResponse, StopReason, StreamMode, TextSink,
    TokenUsage, ToolCall,
};

/// A Chat Completions client.
#[derive(Debug, Clone)]
pub struct OpenAiChat {
    http: HttpCaller,
    token_field: &'static str,
}

impl OpenAiChat {
    /// A client for `settings`.
    pub fn new(settings: ProviderSettings, client: reqwest::Client) -> Self {
        let token_field = if settings.base_url.host_str() == Some("api.openai.com") {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        Self {
            http: HttpCaller::new(settings, client),
            token_field,
        }
    }

    async fn run(
        &self,
        request: &ModelRequest,
        sink: &TextSink,
    ) -> Result<ModelResponse, ProviderError> {
        let body = request_body(&self.http.settings().model, self.token_field, request);
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
        let headers = self
            .http
            .key_headers("authorization", "Bearer ")
            .map_err(AttemptError::Fatal)?;
        let url = self.http.url("chat/completions");
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
        let fail = |emitted: bool, error: ProviderError| {
            if emitted {
                AttemptError::Fatal(error)
            } else {
                AttemptError::Retry { error, after: None }
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
                    return Err(fail(emitted, error));
                }
            };
            match assembler.on_data(&event.data) {
                Ok(Some(text)) => {
                    sink.push(&text).await;
                    emitted = true;
                }
                Ok(None) => {}
                Err(ChunkError::Malformed(detail)) => {
                    return Err(AttemptError::Fatal(ProviderError::Protocol {
                        provider,
                        detail,
                    }));
                }
                Err(ChunkError::Reported(message)) => {
                    let error = ProviderError::StreamError {
                        provider,
                        message: self.http.redact(&message),
                    };
                    return Err(fail(emitted, error));
                }
            }
        }
        assembler
            .finish()
            .map_err(|detail| fail(emitted, ProviderError::Protocol { provider, detail }))
    }
}

impl ModelClient for OpenAiChat {
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

/// The request body.
pub fn request_body(model: &str, token_field: &str, request: &ModelRequest) -> Value {
    let mut messages = Vec::new();
    if !request.system.is_empty() {
        messages.push(json!({"role": "system", "content": request.system}));
    }
    for message in &request.messages {
        match message {
            Message::User { text } => messages.push(json!({"role": "user", "content": text})),
            Message::Assistant { text, tool_calls } => {
                let mut m = json!({
                    "role": "assistant",
                    "content": if text.is_empty() { Value::Null } else { json!(text) },
                });
                if !tool_calls.is_empty() {
                    m["tool_calls"] = tool_calls
                        .iter()
                        .map(|c| {
                            json!({
                                "id": c.id,
                                "type": "function",
                                "function": {"name": c.name, "arguments": c.arguments_json},
                            })
                        })
                        .collect();
                }
                messages.push(m);
            }
            Message::ToolResults(results) => {
                messages.extend(results.iter().map(
                    |r| json!({"role": "tool", "tool_call_id": r.call_id, "content": r.content}),
                ));
            }
        }
    }
    let mut body = json!({"model": model, "messages": messages});
    body[token_field] = json!(request.max_tokens);
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters,
                }})
            })
            .collect();
    }
    if request.stream == StreamMode::Streamed {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// A non-streamed response body.
pub fn parse_response(body: &Value) -> Result<ModelResponse, String> {
    let choice = body
        .pointer("/choices/0")
        .ok_or("the response has no choices[0]")?;
    let message = choice.get("message").ok_or("choices[0] has no message")?;
    let text = message
        .get("content")
        .and_then(Value::as_str)
        .or_else(|| message.get("refusal").and_then(Value::as_str))
        .unwrap_or_default()
        .to_owned();
    let mut tool_calls = Vec::new();
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let function = call.get("function").ok_or("a tool call has no function")?;
        tool_calls.push(ToolCall {
            id: str_field(call, "id"),
            name: str_field(function, "name"),
            arguments_json: str_field(function, "arguments"),
        });
    }
    let finish = choice.get("finish_reason").and_then(Value::as_str);
    Ok(ModelResponse {
        text,
        stop_reason: stop_reason(finish, !tool_calls.is_empty()),
        tool_calls,
        usage: usage(body.get("usage")),
    })
}

fn str_field(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn stop_reason(finish: Option<&str>, has_tool_calls: bool) -> StopReason {
    match finish {
        Some("stop") => StopReason::EndTurn,
        Some("length") => StopReason::MaxTokens,
        Some("tool_calls" | "function_call") => StopReason::ToolUse,
        Some(other) => StopReason::Other(other.to_owned()),
        None if has_tool_calls => StopReason::ToolUse,
        None => StopReason::EndTurn,
    }
}

fn usage(value: Option<&Value>) -> TokenUsage {
    let n = |key: &str| {
        value
            .and_then(|u| u.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    TokenUsage {
        input_tokens: n("prompt_tokens"),
        output_tokens: n("completion_tokens"),
    }
}

/// Why a stream chunk could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkError {
    /// Not a chunk.
    Malformed(String),
    /// The provider reported an error in the stream.
    Reported(String),
}

#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// Assembles a streamed answer from its chunks.
#[derive(Debug, Default)]
pub struct StreamAssembler {
    text: String,
    calls: BTreeMap<u64, PartialCall>,
    finish: Option<String>,
    usage: TokenUsage,
    /// `[DONE]` was seen.
    pub done: bool,
}

impl StreamAssembler {
    /// One `data:` payload; returns the text delta it carries, if any.
    pub fn on_data(&mut self, data: &str) -> Result<Option<String>, ChunkError> {
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(None);
        }
        let chunk: Value = serde_json::from_str(data)
            .map_err(|e| ChunkError::Malformed(format!("a stream chunk is not JSON: {e}")))?;
        if let Some(error) = chunk.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_owned);
            return Err(ChunkError::Reported(message));
        }
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = usage(Some(u));
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            return Ok(None);
        };
        if let Some(finish) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(finish.to_owned());
        }
        let Some(delta) = choice.get("delta") else {
            return Ok(None);
        };
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let partial = self.calls.entry(index).or_default();
            if let Some(id) = call
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                partial.id = id.to_owned();
            }
            let function = call.get("function");
            if let Some(name) = function.and_then(|f| f.get("name")).and_then(Value::as_str)
                && partial.name != name
            {
                partial.name.push_str(name);
            }
            if let Some(args) = function
                .and_then(|f| f.get("arguments"))
                .and_then(Value::as_str)
            {
                partial.arguments.push_str(args);
            }
        }
        match delta.get("content").and_then(Value::as_str) {
            Some(text) if !text.is_empty() => {
                self.text.push_str(text);
                Ok(Some(text.to_owned()))
            }
            _ => Ok(None),
        }
    }

    /// The whole answer, once the stream ended.
    pub fn finish(self) -> Result<ModelResponse, String> {
        if !self.done && self.finish.is_none() {
            return Err("the stream ended before the answer was complete".to_owned());
        }
        let tool_calls: Vec<ToolCall> = self
            .calls
            .into_values()
            .map(|p| ToolCall {
                id: p.id,
                name: p.name,
                arguments_json: p.arguments,
            })
            .collect();
        Ok(ModelResponse {
            text: self.text,
            stop_reason: stop_reason(self.finish.as_deref(), !tool_calls.is_empty()),
            tool_calls,
            usage: self.usage,
        })
    }
}

#[cfg(test)]
#[path = "openai_tests.rs"]
mod tests;
