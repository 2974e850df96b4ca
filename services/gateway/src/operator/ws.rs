//! One operator WebSocket connection: the gateway sends `connect.challenge`; the first
//! client frame must be `connect` (within 10 s, at most 64 KiB), checked by
//! [`super::handshake`]; then requests go through [`super::methods`], gateway events are
//! forwarded when the connection's scopes may see them, a `tick` keepalive goes out every
//! 30 s, and the connection is closed when its device is revoked or its token rotated away.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures::stream::SplitStream;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::frames::{ClientFrame, ConnectParams, ErrorCode, ServerFrame};
use super::handshake::{self, ClientContext, Refusal, Session};
use super::http::OperatorState;
use crate::access::MethodPolicy;
use crate::store::db::now_ms;

/// Most bytes in any frame after authentication.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// Most bytes in a frame before authentication.
pub const MAX_PREAUTH_FRAME_BYTES: usize = 64 * 1024;
/// How long a client has to send `connect`.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Keepalive interval.
pub const TICK_EVERY: Duration = Duration::from_secs(30);

/// Serves one connection until it closes.
pub async fn serve(socket: WebSocket, state: Arc<OperatorState>, ctx: ClientContext) {
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

    if let Some(session) = handshake(&mut stream, &out, &state, ctx).await {
        tracing::info!(device = %session.device_id, scopes = %session.scopes, ip = %ctx.addr.ip, "operator connected");
        run(&mut stream, &out, &state, &session).await;
    }
    let _ = out.0.send(OutFrame::Close).await;
    let _ = writer.await;
}

/// Requests, events and kicks until the client leaves or is kicked.
async fn run(
    stream: &mut SplitStream<WebSocket>,
    out: &Outbound,
    state: &Arc<OperatorState>,
    session: &Session,
) {
    let policy = MethodPolicy::for_role(session.role);
    let mut events = state.bus.subscribe();
    let mut kicks = state.bus.kicks();
    let mut tick = tokio::time::interval(TICK_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(Ok(message)) = message else { break };
                let text = match message {
                    Message::Text(t) => t,
                    Message::Binary(_) => {
                        out.res(ServerFrame::err(String::new(), ErrorCode::InvalidRequest, "binary frames are not supported", false)).await;
                        continue;
                    }
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => continue,
                };
                match serde_json::from_str::<ClientFrame>(&text) {
                    Ok(ClientFrame::Req { id, method, .. }) if method == "connect" => {
                        out.res(ServerFrame::err(id, ErrorCode::InvalidRequest, "already connected", false)).await;
                    }
                    Ok(ClientFrame::Req { id, method, params }) => {
                        super::methods::call(state, session, id, &method, params, out).await;
                    }
                    Err(e) => {
                        out.res(ServerFrame::err(String::new(), ErrorCode::InvalidRequest, format!("bad frame: {e}"), false)).await;
                    }
                }
            }
            event = events.recv() => match event {
                Ok(e) => {
                    if policy.event_visible(e.name, session.scopes) && !out.event(e.name, e.payload).await {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "operator connection fell behind on events");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            kick = kicks.recv() => match kick {
                Ok(k) if k.device_id == session.device_id => {
                    let stale = match (k.below_generation, session.token_generation) {
                        (None, _) => true,
                        (Some(limit), Some(used)) => used < limit,
                        (Some(_), None) => false,
                    };
                    if stale {
                        let reason = if k.below_generation.is_some() { "token-rotated" } else { "device-revoked" };
                        tracing::info!(device = %session.device_id, reason, "closing operator connection");
                        out.event("disconnect", json!({ "reason": reason })).await;
                        break;
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = tick.tick() => {
                if !out.event("tick", json!({ "ts": now_ms() })).await {
                    break;
                }
            }
        }
    }
}

enum OutFrame {
    Res(ServerFrame),
    Event(String, Value),
    Close,
}

/// The sending half of a connection.
#[derive(Clone)]
pub struct Outbound(mpsc::Sender<OutFrame>);

impl Outbound {
    /// Sends a response; false once the connection is gone.
    pub async fn res(&self, frame: ServerFrame) -> bool {
        self.0.send(OutFrame::Res(frame)).await.is_ok()
    }

    /// Sends an event (numbered by the writer); false once the connection is gone.
    pub async fn event(&self, name: &str, payload: Value) -> bool {
        self.0
            .send(OutFrame::Event(name.to_owned(), payload))
            .await
            .is_ok()
    }

    async fn refuse(&self, id: String, r: Refusal) {
        self.res(ServerFrame::err_with(
            id,
            r.code,
            r.message,
            r.retryable,
            r.details,
        ))
        .await;
    }
}

/// Sends the challenge and checks the `connect`. `None` (after answering) when refused.
async fn handshake(
    stream: &mut SplitStream<WebSocket>,
    out: &Outbound,
    state: &Arc<OperatorState>,
    ctx: ClientContext,
) -> Option<Session> {
    let challenge = {
        let random: [u8; 32] = rand::random();
        let now = u64::try_from(now_ms()).unwrap_or(0);
        let issued = state.challenges.lock().ok()?.issue(now, random);
        match issued {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot issue a connect challenge");
                return None;
            }
        }
    };
    out.event(
        "connect.challenge",
        json!({ "nonce": challenge.nonce.to_string(), "ts": challenge.issued_at_ms }),
    )
    .await;
    let first = match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => t,
        Ok(_) => return None,
        Err(_) => {
            out.res(ServerFrame::err(
                String::new(),
                ErrorCode::NotConnected,
                format!("no connect frame within {} s", HANDSHAKE_TIMEOUT.as_secs()),
                false,
            ))
            .await;
            return None;
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
        return None;
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
            return None;
        }
        Err(e) => {
            out.res(ServerFrame::err(
                String::new(),
                ErrorCode::InvalidRequest,
                format!("bad frame: {e}"),
                false,
            ))
            .await;
            return None;
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
            return None;
        }
    };
    match handshake::connect(state, ctx, &challenge, params).await {
        Ok((session, hello)) => out.res(ServerFrame::ok(id, hello)).await.then_some(session),
        Err(refusal) => {
            tracing::warn!(ip = %ctx.addr.ip, code = ?refusal.code, reason = %refusal.message, "operator connect refused");
            out.refuse(id, refusal).await;
            None
        }
    }
}
