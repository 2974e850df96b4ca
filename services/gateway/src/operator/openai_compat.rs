//! OpenAI-compatible HTTP endpoints (`gateway.http.endpoints.chatCompletions.enabled`, off
//! by default): `POST /v1/chat/completions` (JSON or SSE with `stream: true`) and
//! `GET /v1/models`. Bearer-authenticated with the gateway credential. `model` picks the
//! agent (`main`, also as `pincer`, `pincer:main` or `pincer/main`); `user` picks a stable
//! session (hashed, so it cannot name another session); without `user` each request gets a
//! fresh session. The gateway keeps the history, so only the last user message is read.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::auth::Presented;
use super::http::{OperatorState, client_context};
use super::submit::{SubmitError, submit};
use crate::access::{AuthCheck, CredentialClass};
use crate::store::db::now_ms;
use crate::turn_events::TurnUpdate;

const TURN_TIMEOUT: Duration = Duration::from_secs(600);

/// The routes, to merge into the operator router when enabled.
pub fn routes() -> Router<Arc<OperatorState>> {
    Router::new()
        .route("/v1/chat/completions", post(completions))
        .route("/v1/models", get(models))
}

#[derive(Debug, Deserialize)]
struct CompletionRequest {
    model: String,
    messages: Vec<ChatMessage>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Value,
}

fn error(status: StatusCode, kind: &str, code: &str, message: impl Into<String>) -> Response {
    let body = json!({ "error": { "message": message.into(), "type": kind, "code": code, "param": null } });
    (status, Json(body)).into_response()
}

/// Client address, `Origin`, lockout, bearer credential; and for writes the per-address
/// budget. Failed bearer checks count towards the address's lockout.
async fn authorize(
    state: &OperatorState,
    peer: SocketAddr,
    headers: &HeaderMap,
    write: bool,
) -> Result<(), Response> {
    let ctx = client_context(state, peer, headers).map_err(IntoResponse::into_response)?;
    let ip = ctx.addr.ip;
    let now = now_ms();
    let class = CredentialClass::BearerHttp;
    let locked = state
        .limiter
        .lock()
        .map(|l| l.check(ip, class, now))
        .unwrap_or(AuthCheck::LockedOut {
            retry_after: Duration::from_secs(1),
        });
    if let AuthCheck::LockedOut { retry_after } = locked {
        return Err(throttled(
            retry_after,
            "too many failed attempts from this address",
        ));
    }
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let presented = Presented {
        token: bearer.clone(),
        password: bearer,
    };
    let auth = state.auth.clone();
    match tokio::task::spawn_blocking(move || auth.check(&presented)).await {
        Ok(Ok(())) => {
            if let Ok(mut l) = state.limiter.lock() {
                l.record_success(ip, class);
            }
        }
        Ok(Err(_)) => {
            if let Ok(mut l) = state.limiter.lock() {
                l.record_failure(ip, class, now);
            }
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "invalid_api_key",
                "missing or wrong bearer credential",
            ));
        }
        Err(_) => {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "unavailable",
                "credential check failed",
            ));
        }
    }
    if write {
        let budget = state
            .http_writes
            .lock()
            .map(|mut w| w.try_take(&ip, now))
            .unwrap_or(Ok(()));
        if let Err(t) = budget {
            return Err(throttled(
                t.retry_after,
                "too many requests from this address",
            ));
        }
    }
    Ok(())
}

fn throttled(retry_after: Duration, message: &str) -> Response {
    let mut r = error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
        "rate_limited",
        format!("{message}; try again in {} s", retry_after.as_secs().max(1)),
    );
    if let Ok(v) = axum::http::HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()) {
        r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
    r
}

/// The agent a `model` names, if any.
fn agent_for_model(model: &str, agent_id: &str) -> bool {
    let name = model
        .strip_prefix("pincer:")
        .or_else(|| model.strip_prefix("pincer/"))
        .unwrap_or(model);
    name == agent_id || name == "pincer"
}

/// The text of the last user message (a string, or text parts).
fn last_user_text(messages: &[ChatMessage]) -> Option<String> {
    let msg = messages.iter().rev().find(|m| m.role == "user")?;
    match &msg.content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let text: Vec<&str> = parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            (!text.is_empty()).then(|| text.join("\n"))
        }
        _ => None,
    }
}

fn session_for(user: Option<&str>) -> String {
    match user {
        Some(u) => format!("http-{}", &hex::encode(Sha256::digest(u.as_bytes()))[..24]),
        None => format!("http-{}", &uuid::Uuid::new_v4().simple().to_string()[..24]),
    }
}

async fn models(
    State(state): State<Arc<OperatorState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&state, peer, &headers, false).await {
        return r;
    }
    Json(json!({ "object": "list", "data": [{ "id": state.agent_id, "object": "model", "created": 0, "owned_by": "pincer" }] })).into_response()
}

async fn completions(
    State(state): State<Arc<OperatorState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = authorize(&state, peer, &headers, true).await {
        return r;
    }
    let req: CompletionRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_json",
                format!("bad request body: {e}"),
            );
        }
    };
    if !agent_for_model(&req.model, &state.agent_id) {
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            format!(
                "model {:?} does not exist; GET /v1/models lists them",
                req.model
            ),
        );
    }
    let Some(text) = last_user_text(&req.messages) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "no_user_message",
            "messages must contain a user message with text",
        );
    };
    let session = session_for(req.user.as_deref());
    let submission = match submit(&state, &session, text, None).await {
        Ok(s) => s,
        Err(e @ SubmitError::Store(_)) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "unavailable",
                e.to_string(),
            );
        }
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_message",
                e.to_string(),
            );
        }
    };
    let id = format!("chatcmpl-{}", submission.run_id);
    let model = req.model.clone();
    let mut updates = submission.updates;
    if req.stream {
        let stream = async_stream::stream! {
            let chunk = |delta: Value, finish: Option<&str>| {
                let body = json!({ "id": id, "object": "chat.completion.chunk", "created": now_ms() / 1000, "model": model,
                    "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] });
                Ok::<Event, Infallible>(Event::default().data(body.to_string()))
            };
            yield chunk(json!({ "role": "assistant", "content": "" }), None);
            let mut streamed = false;
            loop {
                match tokio::time::timeout(TURN_TIMEOUT, updates.recv()).await {
                    Ok(Ok(TurnUpdate::Delta(t))) => { streamed = true; yield chunk(json!({ "content": t }), None); }
                    Ok(Ok(TurnUpdate::Final { text })) => {
                        if !streamed { yield chunk(json!({ "content": text }), None); }
                        yield chunk(json!({}), Some("stop"));
                        break;
                    }
                    Ok(Ok(TurnUpdate::Failed { message })) => {
                        yield Ok(Event::default().data(json!({ "error": { "message": message, "type": "server_error" } }).to_string()));
                        break;
                    }
                    Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                    Ok(Err(_)) | Err(_) => {
                        yield Ok(Event::default().data(json!({ "error": { "message": "the turn did not finish", "type": "server_error" } }).to_string()));
                        break;
                    }
                }
            }
            yield Ok(Event::default().data("[DONE]"));
        };
        return Sse::new(stream).into_response();
    }
    loop {
        match tokio::time::timeout(TURN_TIMEOUT, updates.recv()).await {
            Ok(Ok(TurnUpdate::Final { text })) => {
                return Json(json!({
                    "id": id, "object": "chat.completion", "created": now_ms() / 1000, "model": model,
                    "choices": [{ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": "stop" }],
                    "usage": { "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0 },
                }))
                .into_response();
            }
            Ok(Ok(TurnUpdate::Failed { message })) => {
                return error(
                    StatusCode::BAD_GATEWAY,
                    "server_error",
                    "turn_failed",
                    message,
                );
            }
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(_)) | Err(_) => {
                return error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "server_error",
                    "timeout",
                    "the turn did not finish",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_and_sessions() {
        assert!(
            agent_for_model("main", "main")
                && agent_for_model("pincer:main", "main")
                && agent_for_model("pincer", "main")
        );
        assert!(!agent_for_model("gpt-4o", "main"));
        let a = session_for(Some("alice"));
        assert_eq!(a, session_for(Some("alice")));
        assert_ne!(a, session_for(Some("bob")));
        assert!(super::super::submit::valid_session_name(&a));
        assert_ne!(session_for(None), session_for(None));
    }

    #[test]
    fn last_user_message_text() {
        let msgs: Vec<ChatMessage> = serde_json::from_value(json!([
            { "role": "system", "content": "be nice" },
            { "role": "user", "content": "first" },
            { "role": "assistant", "content": "ok" },
            { "role": "user", "content": [{ "type": "text", "text": "second" }, { "type": "image_url", "image_url": {} }] },
        ]))
        .unwrap();
        assert_eq!(last_user_text(&msgs).as_deref(), Some("second"));
    }
}
