//! The operator HTTP surface. `/healthz` and `/readyz` reveal nothing but liveness and
//! readiness; `/ws` is the operator protocol; `/v1/*` the OpenAI-compatible API when
//! enabled. Every other request first resolves its client (peer address, forwarding
//! headers, `gateway.trustedProxies`; fail closed) and checks a browser `Origin`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pincer_identity::Challenges;
use pincer_runtime::config::gateway::GatewayConfig;

use super::auth::OperatorAuth;
use super::devices::Devices;
use super::events::EventBus;
use super::handshake::ClientContext;
use super::ws::{self, MAX_FRAME_BYTES};
use crate::access::{
    AuthFailureLimiter, DeviceId, KeyedBuckets, check_origin, resolve_client_addr,
};
use crate::bridge_link::BridgeHub;
use crate::store::Store;
use crate::turn_events::TurnEvents;

/// Everything operator requests share.
pub struct OperatorState {
    /// The database.
    pub store: Store,
    /// Connected bridges.
    pub hub: Arc<BridgeHub>,
    /// Turn updates for `chat` events.
    pub events: Arc<TurnEvents>,
    /// The gateway credential.
    pub auth: OperatorAuth,
    /// The agent operator messages go to.
    pub agent_id: String,
    /// The validated `gateway` section.
    pub gateway: GatewayConfig,
    /// Paired devices.
    pub devices: Arc<Devices>,
    /// Exec approvals.
    pub approvals: Arc<crate::approvals::Approvals>,
    /// Sender access: pairing requests and paired senders.
    pub senders: Arc<crate::senders::SenderAccess>,
    /// Gateway events and kicks.
    pub bus: EventBus,
    /// Outstanding connect challenges and used nonces.
    pub challenges: Mutex<Challenges>,
    /// Failed-auth lockouts per client address and credential class.
    pub limiter: Mutex<AuthFailureLimiter>,
    /// Write budgets per device.
    pub writes: Mutex<KeyedBuckets<DeviceId>>,
    /// Write budgets per client address (HTTP API).
    pub http_writes: Mutex<KeyedBuckets<std::net::IpAddr>>,
    /// Same-host devices are approved at once (`gateway.devices.autoApproveLocal`).
    pub auto_approve_local: bool,
    /// When the gateway started.
    pub started: Instant,
}

/// The router.
pub fn router(state: Arc<OperatorState>) -> Router {
    let compat = if state.gateway.chat_completions {
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

/// A request refused before authentication: unknown client address or a browser origin
/// that is not allowed.
#[derive(Debug)]
pub struct Refused {
    status: StatusCode,
    message: String,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (self.status, self.message).into_response()
    }
}

/// Who is asking, or why the request is refused.
pub fn client_context(
    state: &OperatorState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<ClientContext, Refused> {
    let addr = resolve_client_addr(peer.ip(), headers, &state.gateway.trusted_proxies).map_err(
        |e| {
            tracing::warn!(peer = %peer.ip(), error = %e, "cannot determine the client address; refused");
            Refused {
                status: StatusCode::BAD_REQUEST,
                message: format!("{e}\n"),
            }
        },
    )?;
    let origin = headers
        .get(axum::http::header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok());
    check_origin(origin, host, &state.gateway.allowed_origins).map_err(|e| {
        tracing::warn!(ip = %addr.ip, error = %e, "browser origin refused");
        Refused {
            status: StatusCode::FORBIDDEN,
            message: format!("{e}\n"),
        }
    })?;
    Ok(ClientContext {
        addr,
        browser: origin.is_some(),
    })
}

async fn upgrade(
    State(state): State<Arc<OperatorState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let ctx = match client_context(&state, peer, &headers) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    upgrade
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| ws::serve(socket, state, ctx))
}
