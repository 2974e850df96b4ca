//! Operator methods after `connect`. [`call`] first checks the method table (scope) and,
//! for side-effecting methods, the per-device write budget; then it runs the method and
//! answers. `chat.send` keeps streaming `chat` events after its response.

use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::devices::DevicesError;
use super::frames::{ChatSendParams, DeviceParams, ErrorCode, ServerFrame};
use super::handshake::Session;
use super::http::OperatorState;
use super::submit::{SubmitError, SubmitStatus, submit};
use super::ws::Outbound;
use crate::access::pairing::{DeviceState, PairingError};
use crate::access::{DeviceId, MethodDenied, MethodPolicy, ScopeSet};
use crate::approvals::{ApprovalId, ApprovalsError, Decision};
use crate::store::db::now_ms;
use crate::store::inbound::counts as inbound_counts;
use crate::store::outbox::counts as outbox_counts;
use crate::store::transcript::session_count;
use crate::turn_events::TurnUpdate;

type Answer = Result<Value, (ErrorCode, String, Option<Value>)>;

/// Authorises and runs one request, then sends its response.
pub async fn call(
    state: &Arc<OperatorState>,
    session: &Session,
    id: String,
    method: &str,
    params: Value,
    out: &Outbound,
) {
    let policy = MethodPolicy::for_role(session.role);
    match policy.authorize(method, session.scopes) {
        Ok(()) => {}
        Err(MethodDenied::UnknownMethod(m)) => {
            let known: Vec<&str> = policy.methods().map(|(m, _)| m).collect();
            out.res(ServerFrame::err(
                id,
                ErrorCode::UnknownMethod,
                format!("unknown method {m:?}; available: {}", known.join(", ")),
                false,
            ))
            .await;
            return;
        }
        Err(MethodDenied::MissingScope { method, scope }) => {
            out.res(ServerFrame::err_with(
                id,
                ErrorCode::Forbidden,
                format!("{method} needs the {scope:?} scope, which this device was not granted; the owner can re-pair it with more scopes"),
                false,
                Some(json!({ "scope": scope })),
            ))
            .await;
            return;
        }
    }
    if policy.required_scope(method) != Some("read") {
        let throttled = state
            .writes
            .lock()
            .map(|mut w| w.try_take(&session.device_id, now_ms()))
            .unwrap_or(Ok(()));
        if let Err(t) = throttled {
            out.res(ServerFrame::err_with(
                id,
                ErrorCode::RateLimited,
                format!(
                    "too many writes from this device; try again in {} ms",
                    t.retry_after.as_millis()
                ),
                true,
                Some(json!({ "retryAfterMs": t.retry_after.as_millis() as u64 })),
            ))
            .await;
            return;
        }
    }
    if method == "chat.send" {
        chat_send(id, params, out, state).await;
        return;
    }
    let answer = match method {
        "health" => health(state).await,
        "status" => status(state, session).await,
        "devices.self" => Ok(json!({
            "deviceId": session.device_id.to_string(),
            "role": session.role.as_str(),
            "scopes": session.scopes.names(),
        })),
        "config.get" => Ok(config_summary(state)),
        "channels.status" => channels_status(state).await,
        "devices.list" => devices_list(state).await,
        "devices.approve" | "devices.reject" | "devices.revoke" | "devices.rotate" => {
            devices_change(state, session, method, params).await
        }
        "approvals.list" => Ok(json!({ "approvals": state.approvals.list().await })),
        "approvals.resolve" => approvals_resolve(state, session, params).await,
        m if super::senders::handles(m) => {
            let answer = super::senders::call(state, m, params).await;
            if answer.is_ok() && m != "pairing.list" {
                tracing::info!(method = m, device = %session.device_id, "sender pairing changed by operator");
            }
            answer
        }
        other => Err((
            ErrorCode::UnknownMethod,
            format!("{other} is not available on this gateway"),
            None,
        )),
    };
    let frame = match answer {
        Ok(v) => ServerFrame::ok(id, v),
        Err((code, message, details)) => {
            let retryable = code == ErrorCode::Unavailable;
            ServerFrame::err_with(id, code, message, retryable, details)
        }
    };
    out.res(frame).await;
}

fn parse<T: DeserializeOwned>(
    method: &str,
    params: Value,
) -> Result<T, (ErrorCode, String, Option<Value>)> {
    serde_json::from_value(params).map_err(|e| {
        (
            ErrorCode::InvalidRequest,
            format!("bad {method} params: {e}"),
            None,
        )
    })
}

fn unavailable(e: impl std::fmt::Display) -> (ErrorCode, String, Option<Value>) {
    (ErrorCode::Unavailable, e.to_string(), None)
}

async fn channels_status(state: &OperatorState) -> Answer {
    let accounts = state.hub.status().await.map_err(unavailable)?;
    Ok(json!({
        "accounts": accounts,
        "bridges": state.hub.replica_count(),
        "atMs": now_ms(),
    }))
}

async fn health(state: &OperatorState) -> Answer {
    let (inbound, outbox, sessions) = state
        .store
        .call(|c| Ok((inbound_counts(c)?, outbox_counts(c)?, session_count(c)?)))
        .await
        .map_err(unavailable)?;
    Ok(json!({
        "ok": true,
        "sessions": sessions,
        "inbound": { "pending": inbound.0, "total": inbound.1 },
        "outbox": { "pending": outbox.0, "sent": outbox.1 },
        "bridges": state.hub.replica_count(),
    }))
}

async fn status(state: &OperatorState, session: &Session) -> Answer {
    let devices = state.devices.list(now_ms()).await.map_err(unavailable)?;
    let count = |pred: fn(&DeviceState) -> bool| devices.iter().filter(|d| pred(&d.state)).count();
    let sessions = state.store.call(session_count).await.map_err(unavailable)?;
    Ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": super::frames::PROTOCOL_VERSION,
        "uptimeMs": state.started.elapsed().as_millis() as u64,
        "agent": state.agent_id,
        "sessions": sessions,
        "bridges": state.hub.replica_count(),
        "devices": {
            "approved": count(|s| matches!(s, DeviceState::Approved { .. })),
            "pending": count(|s| matches!(s, DeviceState::Pending { .. })),
        },
        "you": { "deviceId": session.device_id.to_string(), "scopes": session.scopes.names() },
    }))
}

fn config_summary(state: &OperatorState) -> Value {
    let g = &state.gateway;
    json!({
        "bind": format!("{:?}", g.bind).to_lowercase(),
        "port": g.port,
        "authMode": state.auth.kind(),
        "trustedProxies": g.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "allowedOrigins": g.allowed_origins,
        "autoApproveLocalDevices": g.auto_approve_local_devices,
        "chatCompletions": g.chat_completions,
        "authRateLimit": {
            "maxFailures": g.auth_rate_limit.max_failures,
            "windowSeconds": g.auth_rate_limit.window.as_secs(),
            "lockoutSeconds": g.auth_rate_limit.lockout.as_secs(),
        },
    })
}

async fn devices_list(state: &OperatorState) -> Answer {
    let rows = state.devices.list(now_ms()).await.map_err(unavailable)?;
    let devices: Vec<Value> = rows
        .into_iter()
        .map(|row| {
            let (status, role, scopes, at) = match &row.state {
                DeviceState::Pending {
                    requested_role,
                    requested_scopes,
                    requested_at_ms,
                    ..
                } => (
                    "pending",
                    Some(requested_role.as_str()),
                    requested_scopes.names(),
                    *requested_at_ms,
                ),
                DeviceState::Approved {
                    role,
                    scopes,
                    issued_at_ms,
                    ..
                } => (
                    "approved",
                    Some(role.as_str()),
                    scopes.names(),
                    *issued_at_ms,
                ),
                DeviceState::Rejected { at_ms } => ("rejected", None, Vec::new(), *at_ms),
                DeviceState::Revoked { at_ms } => ("revoked", None, Vec::new(), *at_ms),
            };
            json!({
                "deviceId": row.device_id.to_string(),
                "status": status,
                "role": role,
                "scopes": scopes,
                "changedAtMs": at,
                "client": row.meta.client,
                "remote": row.meta.remote,
                "lastSeenMs": row.meta.last_seen_ms,
            })
        })
        .collect();
    Ok(json!({ "devices": devices }))
}

/// Tokens are never shown to the approver: an approved device receives its token at its
/// next connect. `devices.rotate` returns the new token only to the device itself.
async fn devices_change(
    state: &OperatorState,
    session: &Session,
    method: &str,
    params: Value,
) -> Answer {
    let p: DeviceParams = parse(method, params)?;
    let device_id: DeviceId = p
        .device_id
        .parse()
        .map_err(|e| (ErrorCode::InvalidRequest, format!("deviceId: {e}"), None))?;
    let scopes = match &p.scopes {
        None => None,
        Some(names) => Some(
            ScopeSet::parse_names(names)
                .map_err(|e| (ErrorCode::InvalidRequest, format!("scopes: {e}"), None))?,
        ),
    };
    let now = now_ms();
    let result = match method {
        "devices.approve" => state
            .devices
            .approve(&device_id, scopes, now)
            .await
            .map(|t| json!({ "deviceId": device_id.to_string(), "status": "approved", "role": t.role.as_str(), "scopes": t.scopes.names() })),
        "devices.reject" => state
            .devices
            .reject(&device_id, now)
            .await
            .map(|()| json!({ "deviceId": device_id.to_string(), "status": "rejected" })),
        "devices.revoke" => state
            .devices
            .revoke(&device_id, now)
            .await
            .map(|()| json!({ "deviceId": device_id.to_string(), "status": "revoked" })),
        _ => state
            .devices
            .rotate(&device_id, scopes, now)
            .await
            .map(|t| {
                let mut v = json!({ "deviceId": device_id.to_string(), "status": "approved", "role": t.role.as_str(), "scopes": t.scopes.names(), "generation": t.generation });
                if device_id == session.device_id {
                    v["deviceToken"] = json!(t.token());
                }
                v
            }),
    };
    result.map_err(|e| match e {
        DevicesError::Pairing(p) => {
            let code = match p {
                PairingError::UnknownDevice(_)
                | PairingError::NotPending(_)
                | PairingError::NotApproved(_) => ErrorCode::InvalidRequest,
                _ => ErrorCode::Forbidden,
            };
            (
                code,
                p.to_string(),
                Some(json!({ "deviceId": device_id.to_string() })),
            )
        }
        DevicesError::Store(s) => unavailable(s),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ResolveParams {
    id: String,
    decision: String,
}

async fn approvals_resolve(state: &OperatorState, session: &Session, params: Value) -> Answer {
    let p: ResolveParams = parse("approvals.resolve", params)?;
    let id = ApprovalId::parse(&p.id).ok_or_else(|| {
        (
            ErrorCode::InvalidRequest,
            format!("{:?} is not an approval id (apr_ and 10 characters)", p.id),
            None,
        )
    })?;
    let decision = Decision::parse(&p.decision).ok_or_else(|| {
        (
            ErrorCode::InvalidRequest,
            format!(
                "{:?} is not a decision; use allow-once, allow-always or deny",
                p.decision
            ),
            None,
        )
    })?;
    let row = state
        .approvals
        .resolve(&id, decision)
        .await
        .map_err(|e| match e {
            ApprovalsError::Book(b) => (
                ErrorCode::InvalidRequest,
                b.to_string(),
                Some(json!({ "id": id.as_str() })),
            ),
            ApprovalsError::Store(s) => unavailable(s),
        })?;
    tracing::info!(approval = %id, device = %session.device_id, state = row.state.name(), "approval resolved by operator");
    Ok(crate::approvals::service::view(&row, now_ms()))
}

async fn chat_send(id: String, params: Value, out: &Outbound, state: &Arc<OperatorState>) {
    let params: ChatSendParams = match parse("chat.send", params) {
        Ok(p) => p,
        Err((code, message, _)) => {
            out.res(ServerFrame::err(id, code, message, false)).await;
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
