//! The Bot API routes: `/bot<TOKEN>/<method>` over GET or POST.
//!
//! `getUpdates` long polling follows the Bot API server: a request with `timeout > 0` and
//! nothing to return waits for an update; a newer `getUpdates` terminates the waiting one
//! with 409 `Conflict: terminated by other getUpdates request; ...`, `setWebhook`
//! terminates it with 409 `Conflict: terminated by setWebhook request`, and while a
//! webhook is set every `getUpdates` fails with 409.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::error::ApiError;
use super::fake::{ActivePoll, Shared};
use super::params::Params;
use super::params::UpdatesQuery;
use crate::server::{lock, unix_now};

const TERMINATED_BY_GET_UPDATES: &str = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";
const TERMINATED_BY_SET_WEBHOOK: &str = "Conflict: terminated by setWebhook request";
const WEBHOOK_ACTIVE: &str = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";

pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = bot.strip_prefix("bot") else {
        return error_response(&ApiError::new(404, "Not Found"));
    };
    let method = method.to_ascii_lowercase();
    let outcome = async {
        {
            let mut inner = lock(&shared.inner);
            if token != inner.bot.options().token {
                return Err(ApiError::new(401, "Unauthorized"));
            }
            if let Some(failure) = inner.bot.take_failure(&method) {
                return Err(failure);
            }
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok());
        let params = Params::parse(query.as_deref(), content_type, &body)?;
        dispatch(&shared, &method, &params).await
    }
    .await;
    match outcome {
        Ok(body) => (
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response(),
        Err(error) => error_response(&error),
    }
}

/// Runs one method; returns the whole success body (`{"ok":true,"result":...}`).
async fn dispatch(shared: &Shared, method: &str, params: &Params) -> Result<Value, ApiError> {
    let ok = |result: Value| json!({ "ok": true, "result": result });
    match method {
        "getupdates" => get_updates(shared, params).await.map(ok),
        "getme" => Ok(ok(lock(&shared.inner).bot.get_me())),
        "sendmessage" => {
            let message = lock(&shared.inner).bot.send_message(params, unix_now())?;
            shared.sent.send_modify(|count| *count += 1);
            Ok(ok(message))
        }
        "sendchataction" => lock(&shared.inner).bot.send_chat_action(params).map(ok),
        "setwebhook" => {
            let mut inner = lock(&shared.inner);
            let body = inner.bot.set_webhook(params)?;
            if inner.bot.webhook.is_some()
                && let Some(poll) = inner.poll.take()
            {
                // The poller may have just finished on its own; then nobody listens.
                let _unheard = poll.terminate.send(TERMINATED_BY_SET_WEBHOOK);
            }
            drop(inner);
            // Wake the webhook delivery.
            shared.updates.send_modify(|version| *version += 1);
            Ok(body)
        }
        "deletewebhook" => Ok(lock(&shared.inner).bot.delete_webhook(params)),
        "getwebhookinfo" => Ok(ok(lock(&shared.inner).bot.webhook_info())),
        _ => Err(ApiError::new(404, "Not Found")),
    }
}

async fn get_updates(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
    let query = UpdatesQuery::parse(params)?;
    let (poll_id, mut terminated, mut updates) = {
        let mut inner = lock(&shared.inner);
        if inner.bot.webhook.is_some() {
            return Err(ApiError::new(409, WEBHOOK_ACTIVE));
        }
        if let Some(older) = inner.poll.take() {
            let _unheard = older.terminate.send(TERMINATED_BY_GET_UPDATES);
        }
        let batch = inner.bot.take_updates(&query);
        if !batch.is_empty() || query.timeout_secs == 0 {
            return Ok(Value::Array(batch));
        }
        inner.next_poll_id += 1;
        let id = inner.next_poll_id;
        let (terminate, terminated) = oneshot::channel();
        inner.poll = Some(ActivePoll { id, terminate });
        (id, terminated, shared.updates.subscribe())
    };
    let deadline = tokio::time::sleep(Duration::from_secs(query.timeout_secs));
    tokio::pin!(deadline);
    let mut stop = shared.stop.clone();
    // Later calls re-read the queue without re-applying the offset or allowed_updates.
    let recheck = UpdatesQuery {
        allowed_updates: None,
        ..query
    };
    let result = loop {
        tokio::select! {
            reason = &mut terminated => {
                // A dropped sender means the fake is shutting down: answer empty.
                break reason.map_or(Ok(Vec::new()), |reason| {
                    if reason == TERMINATED_BY_GET_UPDATES {
                        shared.conflicts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Err(ApiError::new(409, reason))
                });
            }
            () = &mut deadline => break Ok(Vec::new()),
            _ = stop.wait_for(|stop| *stop) => break Ok(Vec::new()),
            changed = updates.changed() => {
                if changed.is_err() {
                    break Ok(Vec::new());
                }
                let batch = lock(&shared.inner).bot.take_updates(&recheck);
                if !batch.is_empty() {
                    break Ok(batch);
                }
            }
        }
    };
    let mut inner = lock(&shared.inner);
    if inner.poll.as_ref().is_some_and(|poll| poll.id == poll_id) {
        inner.poll = None;
    }
    result.map(Value::Array)
}

fn error_response(error: &ApiError) -> Response {
    let status = StatusCode::from_u16(error.code).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        error.body().to_string(),
    )
        .into_response();
    if let Some(retry_after) = error.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    }
    response
}
