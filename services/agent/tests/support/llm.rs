//! A scripted LLM HTTP server on 127.0.0.1 for wire tests: each request gets the next
//! scripted reply (JSON with any status and headers, or an SSE body that may break
//! off), and every request is recorded.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use serde_json::Value;

/// One scripted reply.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A JSON body.
    Json {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Value,
    },
    /// A `text/event-stream` body sent chunk by chunk; `broken` cuts the connection after
    /// the last chunk instead of ending the body.
    Sse { chunks: Vec<String>, broken: bool },
}

impl Reply {
    pub fn ok(body: Value) -> Self {
        Self::Json {
            status: 200,
            headers: vec![],
            body,
        }
    }

    pub fn status(status: u16, headers: Vec<(&'static str, String)>, body: Value) -> Self {
        Self::Json {
            status,
            headers,
            body,
        }
    }

    pub fn sse(chunks: Vec<String>) -> Self {
        Self::Sse {
            chunks,
            broken: false,
        }
    }

    pub fn broken_sse(chunks: Vec<String>) -> Self {
        Self::Sse {
            chunks,
            broken: true,
        }
    }
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Default)]
struct Script {
    replies: VecDeque<Reply>,
    requests: Vec<Recorded>,
}

/// The server.
#[derive(Clone)]
pub struct ScriptedLlm {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
}

impl ScriptedLlm {
    pub async fn start(replies: Vec<Reply>) -> Self {
        let script = Arc::new(Mutex::new(Script {
            replies: replies.into(),
            requests: Vec::new(),
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&script));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, script }
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn push(&self, reply: Reply) {
        self.script.lock().unwrap().replies.push_back(reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.script.lock().unwrap().requests.clone()
    }
}

async fn handle(
    State(script): State<Arc<Mutex<Script>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let reply = {
        let mut s = script.lock().unwrap();
        s.requests.push(Recorded {
            path: uri.path().to_owned(),
            headers,
            body,
        });
        s.replies.pop_front()
    };
    match reply {
        None => (StatusCode::INTERNAL_SERVER_ERROR, "script exhausted").into_response(),
        Some(Reply::Json {
            status,
            headers,
            body,
        }) => {
            let mut response = (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                body.to_string(),
            )
                .into_response();
            for (name, value) in headers {
                response.headers_mut().insert(
                    HeaderName::from_static(name),
                    HeaderValue::from_str(&value).unwrap(),
                );
            }
            response
        }
        Some(Reply::Sse { chunks, broken }) => {
            let tail: BoxStream<'static, Result<Bytes, std::io::Error>> = if broken {
                stream::once(async {
                    // Let the chunks before the break reach the client first.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    Err(std::io::Error::other("connection dropped"))
                })
                .boxed()
            } else {
                stream::empty().boxed()
            };
            let body = stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c)))).chain(tail);
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(body))
                .unwrap()
        }
    }
}

/// OpenAI SSE: each chunk as `data: {json}`, then `data: [DONE]`.
pub fn openai_sse(chunks: &[Value]) -> Vec<String> {
    chunks
        .iter()
        .map(|c| format!("data: {c}\n\n"))
        .chain(["data: [DONE]\n\n".to_owned()])
        .collect()
}

/// Anthropic SSE: each event as `event: {type}` + `data: {json}`.
pub fn anthropic_sse(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect()
}

/// An OpenAI stream answering `text`, with usage.
pub fn openai_text_stream(text: &str) -> Vec<String> {
    let mut chunks: Vec<Value> = text
        .split_inclusive(' ')
        .map(|piece| serde_json::json!({"choices": [{"index": 0, "delta": {"content": piece}}]}))
        .collect();
    chunks
        .push(serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}));
    chunks.push(
        serde_json::json!({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 4}}),
    );
    openai_sse(&chunks)
}

/// An OpenAI stream calling `exec` with `arguments` (split in two fragments).
pub fn openai_exec_stream(call_id: &str, arguments: &str) -> Vec<String> {
    let (a, b) = arguments.split_at(arguments.len() / 2);
    openai_sse(&[
        serde_json::json!({"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
            {"index": 0, "id": call_id, "type": "function", "function": {"name": "exec", "arguments": a}}]}}]}),
        serde_json::json!({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": b}}]}}]}),
        serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        serde_json::json!({"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 6}}),
    ])
}
