//! One operator WebSocket connection: the first frame must be `connect` (within 15 s, at
//! most 64 KiB) carrying the gateway token; then `health` and `chat.send` requests, with
//! `chat` events streamed for each run and a `tick` keepalive every 30 s.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::auth::Presented;
use super::frames::{
    ChatSendParams, ClientFrame, ConnectParams, ErrorCode, PROTOCOL_VERSION, ServerFrame,
};
use super::http::OperatorState;
use super::submit::{SubmitError, SubmitStatus, submit};
use crate::store::inbound::counts as inbound_counts;
use crate::store::outbox::counts as outbox_counts;
use crate::store::transcript::session_count;
use crate::turn_events::TurnUpdate;

/// Most bytes in any frame after authentication.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// Most bytes in a frame before authentication.
pub const MAX_PREAUTH_FRAME_BYTES: usize = 64 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
const TICK_EVERY: Duration = Duration::from_secs(30);

/// Serves one connection until it closes.
pub async fn serve(socket: WebSocket, state: Arc<OperatorState>) {
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<OutFrame>(256);
    let writer = tokio::spawn(async move {
        let mut seq = 0u64;
        while let Some(frame) = out_rx.recv().await {
            let frame = match frame {
                OutFrame::Res(f) => f,
                OutFrame::Event(event, payload) => {
                    seq += 1;
                    ServerFrame::Event {
                        event,
                        payload,
                        seq,
                    }
                }
                OutFrame::Close => break,
            };
            let Ok(text) = serde_json::to_string(&frame) else {
                continue;
            };
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let out = Outbound(out_tx);

    if handshake(&mut stream, &out, &state).await {
        let ticker = {
            let out = out.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(TICK_EVERY);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if !out
                        .event("tick", json!({ "ts": crate::store::db::now_ms() }))
                        .await
                    {
                        break;
                    }
                }
            })
        };
        while let Some(Ok(message)) = stream.next().await {
            let text = match message {
                Message::Text(t) => t.to_string(),
                Message::Binary(_) => {
                    out.res(ServerFrame::err(
                        String::new(),
                        ErrorCode::InvalidRequest,
                        "binary frames are not supported",
                        false,
                    ))
                    .await;
                    continue;
                }
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            match serde_json::from_str::<ClientFrame>(&text) {
                Ok(ClientFrame::Req { id, method, params }) => {
                    handle(id, &method, params, &out, &state).await
                }
                Err(e) => {
                    out.res(ServerFrame::err(
                        String::new(),
                        ErrorCode::InvalidRequest,
                        format!("bad frame: {e}"),
                        false,
                    ))
                    .await;
                }
            }
        }
        ticker.abort();
    }
    let _ = out.0.send(OutFrame::Close).await;
    let _ = writer.await;
}

enum OutFrame {
    Res(ServerFrame),
    Event(String, Value),
    Close,
}

#[derive(Clone)]
struct Outbound(mpsc::Sender<OutFrame>);

impl Outbound {
    async fn res(&self, frame: ServerFrame) -> bool {
        self.0.send(OutFrame::Res(frame)).await.is_ok()
    }

    async fn event(&self, name: &str, payload: Value) -> bool {
        self.0
            .send(OutFrame::Event(name.to_owned(), payload))
            .await
            .is_ok()
    }
}

/// Waits for a valid `connect`. Returns false (after answering) when the client fails it.
async fn handshake(
    stream: &mut futures::stream::SplitStream<WebSocket>,
    out: &Outbound,
    state: &OperatorState,
) -> bool {
    let first = match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => t,
        Ok(_) => return false,
        Err(_) => {
            out.res(ServerFrame::err(
                String::new(),
                ErrorCode::NotConnected,
                "no connect frame within 15 s",
                false,
            ))
            .await;
            return false;
        }
    };
    if first.len() > MAX_PREAUTH_FRAME_BYTES {
        out.res(ServerFrame::err(
            String::new(),
            ErrorCode::InvalidRequest,
            "the connect frame exceeds 64 KiB",
            false,
        ))
        .await;
        return false;
    }
    let (id, params) = match serde_json::from_str::<ClientFrame>(&first) {
        Ok(ClientFrame::Req { id, method, params }) if method == "connect" => (id, params),
        Ok(ClientFrame::Req { id, .. }) => {
            out.res(ServerFrame::err(
                id,
                ErrorCode::NotConnected,
                "the first request must be connect",
                false,
            ))
            .await;
            return false;
        }
        Err(e) => {
            out.res(ServerFrame::err(
                String::new(),
                ErrorCode::InvalidRequest,
                format!("bad frame: {e}"),
                false,
            ))
            .await;
            return false;
        }
    };
    let params: ConnectParams = match serde_json::from_value(params) {
        Ok(p) => p,
        Err(e) => {
            out.res(ServerFrame::err(
                id,
                ErrorCode::InvalidRequest,
                format!("bad connect params: {e}"),
                false,
            ))
            .await;
            return false;
        }
    };
    if params.min_protocol > PROTOCOL_VERSION || params.max_protocol < PROTOCOL_VERSION {
        let msg = format!(
            "protocol {}..={} not supported; this gateway speaks {PROTOCOL_VERSION}",
            params.min_protocol, params.max_protocol
        );
        out.res(ServerFrame::err(id, ErrorCode::InvalidRequest, msg, false))
            .await;
        return false;
    }
    let presented = Presented {
        token: params.auth.token,
        password: params.auth.password,
    };
    let auth = state.auth.clone();
    let verdict = tokio::task::spawn_blocking(move || auth.check(&presented)).await;
    match verdict {
        Ok(Ok(())) => {}
        Ok(Err(failure)) => {
            tracing::warn!(%failure, "operator connection refused");
            out.res(ServerFrame::err(
                id,
                ErrorCode::Unauthorized,
                failure.to_string(),
                false,
            ))
            .await;
            return false;
        }
        Err(e) => {
            tracing::error!(error = %e, "credential check failed");
            out.res(ServerFrame::err(
                id,
                ErrorCode::Unavailable,
                "credential check failed",
                true,
            ))
            .await;
            return false;
        }
    }
    let client = params
        .client
        .map(|c| format!("{} {}", c.id, c.version))
        .unwrap_or_default();
    tracing::info!(client, "operator connected");
    out.res(ServerFrame::ok(
        id,
        json!({ "type": "hello-ok", "protocol": PROTOCOL_VERSION, "server": { "name": "pincer-gateway", "version": env!("CARGO_PKG_VERSION") } }),
    ))
    .await
}

async fn handle(
    id: String,
    method: &str,
    params: Value,
    out: &Outbound,
    state: &Arc<OperatorState>,
) {
    match method {
        "health" => {
            let result = state
                .store
                .call(|c| Ok((inbound_counts(c)?, outbox_counts(c)?, session_count(c)?)))
                .await;
            let frame = match result {
                Ok(((pending, total), (out_pending, sent), sessions)) => ServerFrame::ok(
                    id,
                    json!({
                        "ok": true,
                        "sessions": sessions,
                        "inbound": { "pending": pending, "total": total },
                        "outbox": { "pending": out_pending, "sent": sent },
                        "bridges": state.hub.replica_count(),
                    }),
                ),
                Err(e) => ServerFrame::err(id, ErrorCode::Unavailable, e.to_string(), true),
            };
            out.res(frame).await;
        }
        "chat.send" => chat_send(id, params, out, state).await,
        "connect" => {
            out.res(ServerFrame::err(
                id,
                ErrorCode::InvalidRequest,
                "already connected",
                false,
            ))
            .await;
        }
        other => {
            out.res(ServerFrame::err(
                id,
                ErrorCode::UnknownMethod,
                format!("unknown method {other:?}; available: health, chat.send"),
                false,
            ))
            .await;
        }
    }
}

async fn chat_send(id: String, params: Value, out: &Outbound, state: &Arc<OperatorState>) {
    let params: ChatSendParams = match serde_json::from_value(params) {
        Ok(p) => p,
        Err(e) => {
            out.res(ServerFrame::err(
                id,
                ErrorCode::InvalidRequest,
                format!("bad chat.send params: {e}"),
                false,
            ))
            .await;
            return;
        }
    };
    let session = params.session.unwrap_or_else(|| "main".to_owned());
    let submission = match submit(state, &session, params.text, params.idempotency_key).await {
        Ok(s) => s,
        Err(e @ SubmitError::Store(_)) => {
            out.res(ServerFrame::err(
                id,
                ErrorCode::Unavailable,
                e.to_string(),
                true,
            ))
            .await;
            return;
        }
        Err(e) => {
            out.res(ServerFrame::err(
                id,
                ErrorCode::InvalidRequest,
                e.to_string(),
                false,
            ))
            .await;
            return;
        }
    };
    let (run_id, mut updates) = (submission.run_id, submission.updates);
    out.res(ServerFrame::ok(
        id,
        json!({ "runId": run_id, "status": submission.status.as_str() }),
    ))
    .await;
    if submission.status == SubmitStatus::Duplicate {
        return;
    }
    let out = out.clone();
    tokio::spawn(async move {
        loop {
            let update = match updates.recv().await {
                Ok(u) => u,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            let (payload, last) = match update {
                TurnUpdate::Delta(text) => (
                    json!({ "runId": run_id, "state": "delta", "text": text }),
                    false,
                ),
                TurnUpdate::ToolCall { tool, arguments } => (
                    json!({ "runId": run_id, "state": "tool_call", "tool": tool, "arguments": arguments }),
                    false,
                ),
                TurnUpdate::ToolResult { tool, ok, content } => (
                    json!({ "runId": run_id, "state": "tool_result", "tool": tool, "ok": ok, "content": content }),
                    false,
                ),
                TurnUpdate::Final { text } => (
                    json!({ "runId": run_id, "state": "final", "text": text }),
                    true,
                ),
                TurnUpdate::Failed { message } => (
                    json!({ "runId": run_id, "state": "error", "message": message }),
                    true,
                ),
            };
            if !out.event("chat", payload).await || last {
                break;
            }
        }
    });
}
