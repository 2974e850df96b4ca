//! The operator HTTP surface. Health routes reveal nothing but liveness/readiness; every
//! other route requires the gateway token.

use std::sync::Arc;

use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::auth::OperatorAuth;
use super::ws::{self, MAX_FRAME_BYTES};
use crate::bridge_link::BridgeHub;
use crate::store::Store;
use crate::turn_events::TurnEvents;

/// Shared state of the operator API.
pub struct OperatorState {
    /// The store.
    pub store: Store,
    /// Bridges.
    pub hub: Arc<BridgeHub>,
    /// Live turn updates.
    pub events: Arc<TurnEvents>,
    /// How operator clients authenticate.
    pub auth: OperatorAuth,
    /// The agent that operator sessions talk to.
    pub agent_id: String,
    /// Serve the OpenAI-compatible endpoints.
    pub chat_completions: bool,
}

/// The router.
pub fn router(state: Arc<OperatorState>) -> Router {
    let compat = if state.chat_completions {
        super::openai_compat::routes()
    } else {
        Router::new()
    };
    Router::new()
        .merge(compat)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/ws", get(upgrade))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<OperatorState>>) -> Response {
    match state.store.schema_version().await {
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response(),
    }
}

async fn upgrade(State(state): State<Arc<OperatorState>>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| ws::serve(socket, state))
}
