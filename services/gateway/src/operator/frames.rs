//! WebSocket frames: `{type:"req",id,method,params}` from clients;
//! `{type:"res",id,ok,payload|error}` and `{type:"event",event,payload,seq}` from the gateway.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version this gateway speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// A frame from a client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientFrame {
    /// A request.
    Req {
        /// Echoed in the response.
        id: String,
        /// Method name.
        method: String,
        /// Parameters.
        #[serde(default)]
        params: Value,
    },
}

/// A frame to a client.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerFrame {
    /// A response.
    Res {
        /// The request id.
        id: String,
        /// Success.
        ok: bool,
        /// Result, when ok.
        #[serde(skip_serializing_if = "Option::is_none")]
        payload: Option<Value>,
        /// Error, when not ok.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<ErrorBody>,
    },
    /// An event.
    Event {
        /// Event name.
        event: String,
        /// Data.
        payload: Value,
        /// Per-connection sequence number, starting at 1.
        seq: u64,
    },
}

/// A structured error.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// Stable code.
    pub code: ErrorCode,
    /// Human-readable message.
    pub message: String,
    /// Whether retrying the same request may succeed.
    pub retryable: bool,
}

/// Error codes.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Bad frame or parameters.
    InvalidRequest,
    /// Authentication failed.
    Unauthorized,
    /// No such method.
    UnknownMethod,
    /// `connect` must come first.
    NotConnected,
    /// Server-side failure.
    Unavailable,
}

impl ServerFrame {
    /// A success response.
    pub fn ok(id: String, payload: Value) -> Self {
        Self::Res {
            id,
            ok: true,
            payload: Some(payload),
            error: None,
        }
    }

    /// An error response.
    pub fn err(id: String, code: ErrorCode, message: impl Into<String>, retryable: bool) -> Self {
        Self::Res {
            id,
            ok: false,
            payload: None,
            error: Some(ErrorBody {
                code,
                message: message.into(),
                retryable,
            }),
        }
    }
}

/// `connect` parameters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectParams {
    /// Credentials (may be omitted when the gateway's auth mode is `none`).
    #[serde(default)]
    pub auth: ConnectAuth,
    /// The client.
    #[serde(default)]
    pub client: Option<ClientInfo>,
    /// Lowest protocol the client speaks.
    #[serde(default = "one")]
    pub min_protocol: u32,
    /// Highest protocol the client speaks.
    #[serde(default = "one")]
    pub max_protocol: u32,
}

fn one() -> u32 {
    1
}

/// `connect.auth`: the gateway token or password, whichever `gateway.auth.mode` asks for.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectAuth {
    /// The gateway token.
    #[serde(default)]
    pub token: Option<String>,
    /// The gateway password.
    #[serde(default)]
    pub password: Option<String>,
}

/// `connect.client`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientInfo {
    /// Client name.
    #[serde(default)]
    pub id: String,
    /// Client version.
    #[serde(default)]
    pub version: String,
}

/// `chat.send` parameters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChatSendParams {
    /// The message.
    pub text: String,
    /// Operator session name (default `main`).
    #[serde(default)]
    pub session: Option<String>,
    /// Makes retries safe: the same key is processed once.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}
