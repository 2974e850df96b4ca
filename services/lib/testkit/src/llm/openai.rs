//! `POST /v1/chat/completions` in the OpenAI Chat Completions wire format.
//!
//! Non-streaming answers are one `chat.completion` object; `stream: true` answers are
//! `data: {chat.completion.chunk}\n\n` frames ending with `data: [DONE]\n\n`. Tool calls
//! stream as `delta.tool_calls[{index, id, type, function: {name, arguments}}]` where the
//! first delta carries id and name and later ones carry argument fragments.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::fake::Shared;
use super::script::{Reply, estimate_tokens, openai_conversation};
use super::stream::{self, Ending, Frames, json_fragments, word_chunks};
use crate::server::unix_now;

const PATH: &str = "/v1/chat/completions";

pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = serde_json::from_slice::<Value>(&body);
    shared.record(
        PATH,
        &headers,
        parsed.as_ref().map_or(Value::Null, Clone::clone),
    );
    if let Some(expected) = &shared.options.openai_api_key {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        match presented {
            None => {
                return error(
                    401,
                    "You didn't provide an API key. You need to provide your API key in an \
                     Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    "invalid_request_error",
                    None,
                    None,
                );
            }
            Some(key) if key != expected => {
                return error(
                    401,
                    "Incorrect API key provided: sk-****. You can find your API key at \
                     https://platform.openai.com/account/api-keys.",
                    "invalid_request_error",
                    Some("invalid_api_key"),
                    None,
                );
            }
            Some(_) => {}
        }
    }
    let request = match parsed {
        Ok(value) if value.is_object() => value,
        _ => {
            return error(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you \
             aren't using your HTTP library correctly.)",
                "invalid_request_error",
                None,
                None,
            );
        }
    };
    for field in ["model", "messages"] {
        if request.get(field).is_none() {
            return error(
                400,
                &format!("Missing required parameter: '{field}'."),
                "invalid_request_error",
                Some("missing_required_parameter"),
                None,
            );
        }
    }
    let reply = shared.next_reply(&openai_conversation(&request));
    let ctx = Ctx {
        id: format!("chatcmpl-fake{:06}", shared.next_id()),
        call_id: format!("call_fake{:06}", shared.next_id()),
        created: unix_now(),
        model: request
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("fake-model")
            .to_owned(),
        prompt_tokens: estimate_tokens(
            &request
                .get("messages")
                .map(Value::to_string)
                .unwrap_or_default(),
        ),
        include_usage: request.pointer("/stream_options/include_usage") == Some(&Value::Bool(true)),
    };
    let streaming = request.get("stream") == Some(&Value::Bool(true));
    if let Reply::Error {
        status,
        retry_after_secs,
    } = reply
    {
        return scripted_error(status, retry_after_secs);
    }
    let (frames, content_type) = if streaming {
        (
            stream_frames(&ctx, reply),
            "text/event-stream; charset=utf-8",
        )
    } else {
        // A slow non-streaming answer: the whole generation time passes before the reply.
        tokio::time::sleep(reply.generation_time()).await;
        (json_frames(&ctx, reply), "application/json")
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        stream::body(frames, shared.stop.clone()),
    )
        .into_response()
}

struct Ctx {
    id: String,
    call_id: String,
    created: i64,
    model: String,
    prompt_tokens: u64,
    include_usage: bool,
}

impl Ctx {
    fn usage(&self, completion: &str) -> Value {
        let completion_tokens = estimate_tokens(completion);
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        })
    }

    fn completion(&self, message: Value, finish_reason: &str, output: &str) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
            "usage": self.usage(output),
            "system_fingerprint": "fp_fake",
        })
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> String {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        });
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        sse(&chunk)
    }

    /// The extra final chunk sent when `stream_options.include_usage` is set.
    fn usage_chunk(&self, output: &str) -> String {
        sse(&json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [],
            "usage": self.usage(output),
        }))
    }
}

fn sse(value: &Value) -> String {
    format!("data: {value}\n\n")
}

fn text_message(text: &str) -> Value {
    json!({ "role": "assistant", "content": text, "refusal": null, "annotations": [] })
}

fn json_frames(ctx: &Ctx, reply: Reply) -> Frames {
    let (document, ending) = match reply {
        Reply::Text { text, .. } => (
            ctx.completion(text_message(&text), "stop", &text)
                .to_string(),
            Ending::Complete,
        ),
        Reply::ToolCall { name, arguments } => {
            let arguments = arguments.to_string();
            let message = json!({
                "role": "assistant",
                "content": null,
                "refusal": null,
                "annotations": [],
                "tool_calls": [{
                    "id": ctx.call_id,
                    "type": "function",
                    "function": { "name": name, "arguments": arguments },
                }],
            });
            let document = ctx
                .completion(message, "tool_calls", &arguments)
                .to_string();
            (document, Ending::Complete)
        }
        Reply::Drop { partial_text } => {
            let full = ctx.completion(text_message(&partial_text), "stop", &partial_text);
            (cut_in_half(&full.to_string()), Ending::Abort)
        }
        Reply::Error { .. } => (String::new(), Ending::Complete),
    };
    Frames {
        frames: vec![document],
        delay: Duration::ZERO,
        ending,
    }
}

/// The first half of a document, as a client would see it when the connection drops.
pub(crate) fn cut_in_half(document: &str) -> String {
    document
        .chars()
        .take(document.chars().count() / 2)
        .collect()
}

fn stream_frames(ctx: &Ctx, reply: Reply) -> Frames {
    let mut frames = Vec::new();
    let (delay, ending) = match reply {
        Reply::Text { text, chunk_delay } => {
            frames.push(ctx.chunk(
                json!({"role": "assistant", "content": "", "refusal": null}),
                None,
            ));
            for word in word_chunks(&text) {
                frames.push(ctx.chunk(json!({ "content": word }), None));
            }
            frames.push(ctx.chunk(json!({}), Some("stop")));
            if ctx.include_usage {
                frames.push(ctx.usage_chunk(&text));
            }
            frames.push("data: [DONE]\n\n".to_owned());
            (chunk_delay, Ending::Complete)
        }
        Reply::ToolCall { name, arguments } => {
            let arguments = arguments.to_string();
            frames.push(ctx.chunk(
                json!({
                    "role": "assistant",
                    "content": null,
                    "refusal": null,
                    "tool_calls": [{
                        "index": 0,
                        "id": ctx.call_id,
                        "type": "function",
                        "function": { "name": name, "arguments": "" },
                    }],
                }),
                None,
            ));
            for fragment in json_fragments(&arguments) {
                frames.push(ctx.chunk(
                    json!({ "tool_calls": [{ "index": 0, "function": { "arguments": fragment } }] }),
                    None,
                ));
            }
            frames.push(ctx.chunk(json!({}), Some("tool_calls")));
            if ctx.include_usage {
                frames.push(ctx.usage_chunk(&arguments));
            }
            frames.push("data: [DONE]\n\n".to_owned());
            (Duration::ZERO, Ending::Complete)
        }
        Reply::Drop { partial_text } => {
            frames.push(ctx.chunk(
                json!({"role": "assistant", "content": "", "refusal": null}),
                None,
            ));
            for word in word_chunks(&partial_text) {
                frames.push(ctx.chunk(json!({ "content": word }), None));
            }
            (Duration::ZERO, Ending::Abort)
        }
        Reply::Error { .. } => (Duration::ZERO, Ending::Complete),
    };
    Frames {
        frames,
        delay,
        ending,
    }
}

/// A scripted failure in OpenAI's error shape.
fn scripted_error(status: u16, retry_after_secs: Option<u64>) -> Response {
    let (message, kind, code) = match status {
        400 => (
            "Invalid request (scripted by the fake).",
            "invalid_request_error",
            None,
        ),
        401 => (
            "Incorrect API key provided.",
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
        403 => (
            "You are not allowed to use this model.",
            "invalid_request_error",
            None,
        ),
        404 => (
            "The model does not exist.",
            "invalid_request_error",
            Some("model_not_found"),
        ),
        429 => (
            "Rate limit reached for requests. Please try again later.",
            "requests",
            Some("rate_limit_exceeded"),
        ),
        503 | 529 => (
            "The engine is currently overloaded, please try again later.",
            "server_error",
            None,
        ),
        _ => (
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
    };
    error(status, message, kind, code, retry_after_secs)
}

fn error(
    status: u16,
    message: &str,
    kind: &str,
    code: Option<&str>,
    retry_after_secs: Option<u64>,
) -> Response {
    let body = json!({
        "error": { "message": message, "type": kind, "param": null, "code": code }
    });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body.to_string()),
    )
        .into_response();
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}
