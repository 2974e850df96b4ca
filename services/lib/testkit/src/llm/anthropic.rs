//! `POST /v1/messages` in the Anthropic Messages wire format.
//!
//! Non-streaming answers are one `message` object with `text` or `tool_use` content blocks.
//! Streaming answers are SSE events `event: <type>\ndata: {...}\n\n` in the documented
//! order: `message_start`, then per block `content_block_start`, `content_block_delta`
//! (`text_delta` or `input_json_delta`) and `content_block_stop`, then `message_delta`
//! (stop reason, output usage) and `message_stop`; a `ping` follows the first block start.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::fake::Shared;
use super::openai::cut_in_half;
use super::script::{Reply, anthropic_conversation, estimate_tokens};
use super::stream::{self, Ending, Frames, json_fragments, word_chunks};

const PATH: &str = "/v1/messages";

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
    let header_value = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(expected) = &shared.options.anthropic_api_key {
        match header_value("x-api-key") {
            None => {
                return error(
                    401,
                    "authentication_error",
                    "x-api-key header is required",
                    None,
                );
            }
            Some(key) if key != expected => {
                return error(401, "authentication_error", "invalid x-api-key", None);
            }
            Some(_) => {}
        }
    }
    if header_value("anthropic-version").is_none() {
        return error(
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
            None,
        );
    }
    let request = match parsed {
        Ok(value) if value.is_object() => value,
        _ => {
            return error(
                400,
                "invalid_request_error",
                "There was an issue with the request body: expected a JSON object",
                None,
            );
        }
    };
    for field in ["model", "max_tokens", "messages"] {
        if request.get(field).is_none() {
            return error(
                400,
                "invalid_request_error",
                &format!("{field}: Field required"),
                None,
            );
        }
    }
    let reply = shared.next_reply(&anthropic_conversation(&request));
    if let Reply::Error {
        status,
        retry_after_secs,
    } = reply
    {
        return scripted_error(status, retry_after_secs);
    }
    let ctx = Ctx {
        id: format!("msg_fake{:06}", shared.next_id()),
        tool_use_id: format!("toolu_fake{:06}", shared.next_id()),
        model: request
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("fake-model")
            .to_owned(),
        input_tokens: estimate_tokens(
            &request
                .get("messages")
                .map(Value::to_string)
                .unwrap_or_default(),
        ),
    };
    let (frames, content_type) = if request.get("stream") == Some(&Value::Bool(true)) {
        (
            stream_frames(&ctx, reply),
            "text/event-stream; charset=utf-8",
        )
    } else {
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
    tool_use_id: String,
    model: String,
    input_tokens: u64,
}

impl Ctx {
    fn message(&self, content: Value, stop_reason: Option<&str>, output_tokens: u64) -> Value {
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": { "input_tokens": self.input_tokens, "output_tokens": output_tokens },
        })
    }
}

fn event(kind: &str, data: &Value) -> String {
    format!("event: {kind}\ndata: {data}\n\n")
}

fn json_frames(ctx: &Ctx, reply: Reply) -> Frames {
    let (document, ending) = match reply {
        Reply::Text { text, .. } => {
            let content = json!([{ "type": "text", "text": text }]);
            let message = ctx.message(content, Some("end_turn"), estimate_tokens(&text));
            (message.to_string(), Ending::Complete)
        }
        Reply::ToolCall { name, arguments } => {
            let tokens = estimate_tokens(&arguments.to_string());
            let content = json!([{
                "type": "tool_use", "id": ctx.tool_use_id, "name": name, "input": arguments,
            }]);
            (
                ctx.message(content, Some("tool_use"), tokens).to_string(),
                Ending::Complete,
            )
        }
        Reply::Drop { partial_text } => {
            let content = json!([{ "type": "text", "text": partial_text }]);
            let message = ctx.message(content, Some("end_turn"), 1);
            (cut_in_half(&message.to_string()), Ending::Abort)
        }
        Reply::Error { .. } => (String::new(), Ending::Complete),
    };
    Frames {
        frames: vec![document],
        delay: Duration::ZERO,
        ending,
    }
}

fn stream_frames(ctx: &Ctx, reply: Reply) -> Frames {
    let mut frames = vec![event(
        "message_start",
        &json!({ "type": "message_start", "message": ctx.message(json!([]), None, 1) }),
    )];
    let block_start = |block: Value| {
        event(
            "content_block_start",
            &json!({ "type": "content_block_start", "index": 0, "content_block": block }),
        )
    };
    let delta = |delta: Value| {
        event(
            "content_block_delta",
            &json!({ "type": "content_block_delta", "index": 0, "delta": delta }),
        )
    };
    let finish = |frames: &mut Vec<String>, stop_reason: &str, output_tokens: u64| {
        frames.push(event(
            "content_block_stop",
            &json!({ "type": "content_block_stop", "index": 0 }),
        ));
        frames.push(event(
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": { "stop_reason": stop_reason, "stop_sequence": null },
                "usage": { "output_tokens": output_tokens },
            }),
        ));
        frames.push(event("message_stop", &json!({ "type": "message_stop" })));
    };
    let ping = event("ping", &json!({ "type": "ping" }));
    let (delay, ending) = match reply {
        Reply::Text { text, chunk_delay } => {
            frames.push(block_start(json!({ "type": "text", "text": "" })));
            frames.push(ping);
            for word in word_chunks(&text) {
                frames.push(delta(json!({ "type": "text_delta", "text": word })));
            }
            finish(&mut frames, "end_turn", estimate_tokens(&text));
            (chunk_delay, Ending::Complete)
        }
        Reply::ToolCall { name, arguments } => {
            let arguments = arguments.to_string();
            frames.push(block_start(json!({
                "type": "tool_use", "id": ctx.tool_use_id, "name": name, "input": {},
            })));
            frames.push(ping);
            frames.push(delta(
                json!({ "type": "input_json_delta", "partial_json": "" }),
            ));
            for fragment in json_fragments(&arguments) {
                frames.push(delta(
                    json!({ "type": "input_json_delta", "partial_json": fragment }),
                ));
            }
            finish(&mut frames, "tool_use", estimate_tokens(&arguments));
            (Duration::ZERO, Ending::Complete)
        }
        Reply::Drop { partial_text } => {
            frames.push(block_start(json!({ "type": "text", "text": "" })));
            frames.push(ping);
            for word in word_chunks(&partial_text) {
                frames.push(delta(json!({ "type": "text_delta", "text": word })));
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

/// A scripted failure in Anthropic's error shape (529 is `overloaded_error`).
fn scripted_error(status: u16, retry_after_secs: Option<u64>) -> Response {
    let (kind, message) = match status {
        400 => (
            "invalid_request_error",
            "Invalid request (scripted by the fake).",
        ),
        401 => ("authentication_error", "invalid x-api-key"),
        403 => (
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
        404 => (
            "not_found_error",
            "The requested resource could not be found.",
        ),
        413 => (
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
        ),
        429 => (
            "rate_limit_error",
            "Number of requests has exceeded your rate limit. Please try again later.",
        ),
        529 => ("overloaded_error", "Overloaded"),
        _ => ("api_error", "Internal server error"),
    };
    error(status, kind, message, retry_after_secs)
}

fn error(status: u16, kind: &str, message: &str, retry_after_secs: Option<u64>) -> Response {
    let body = json!({
        "type": "error",
        "error": { "type": kind, "message": message },
        "request_id": "req_fake",
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
