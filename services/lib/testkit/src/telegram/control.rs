//! `/_fake/*`: the control API for tests and demos that run the fake as a separate process.
//!
//! | Route | What |
//! |---|---|
//! | `GET /_fake/health` | `{"ok":true}` |
//! | `POST /_fake/messages` | body: an [`InjectMessage`] as JSON → `{"update_id":N}` |
//! | `GET /_fake/sent` | JSON array of [`SentMessage`] |
//! | `GET /_fake/actions` | JSON array of [`ChatAction`] |
//! | `POST /_fake/fail` | body: `{"method":"sendMessage","failure":{"kind":"too_many_requests","retry_after_secs":3}}` |

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::fake::Shared;
use super::types::{ChatAction, FakeFailure, InjectMessage, SentMessage};
use crate::server::lock;

pub(crate) async fn health() -> Json<Value> {
    Json(json!({ "ok": true }))
}

pub(crate) async fn inject(
    State(shared): State<Arc<Shared>>,
    Json(message): Json<InjectMessage>,
) -> (StatusCode, Json<Value>) {
    match shared.inject(message) {
        Ok(update_id) => (StatusCode::OK, Json(json!({ "update_id": update_id }))),
        Err(error) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": error.to_string() })),
        ),
    }
}

pub(crate) async fn sent(State(shared): State<Arc<Shared>>) -> Json<Vec<SentMessage>> {
    Json(lock(&shared.inner).bot.sent.clone())
}

pub(crate) async fn actions(State(shared): State<Arc<Shared>>) -> Json<Vec<ChatAction>> {
    Json(lock(&shared.inner).bot.actions.clone())
}

#[derive(Deserialize)]
pub(crate) struct FailRequest {
    method: String,
    failure: FakeFailure,
}

pub(crate) async fn fail(
    State(shared): State<Arc<Shared>>,
    Json(request): Json<FailRequest>,
) -> Json<Value> {
    lock(&shared.inner)
        .bot
        .fail_next(&request.method, request.failure);
    Json(json!({ "ok": true }))
}
