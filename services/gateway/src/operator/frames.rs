//! WebSocket frames (protocol version [`PROTOCOL_VERSION`], see `docs/protocol.md`):
//! `{type:"req",id,method,params}` from clients; `{type:"res",id,ok,payload|error}` and
//! `{type:"event",event,payload,seq}` from the gateway.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version this gateway speaks.
pub const PROTOCOL_VERSION: u32 = 2;

/// A client frame.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientFrame {
    /// A request.
    Req {
        /// Chosen by the client; echoed in the response.
        id: String,
        /// The method.
        method: String,
        /// Its parameters.
        #[serde(default)]
        params: Value,
    },
}

/// A gateway frame.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerFrame {
    /// The answer to a request.
    Res {
        /// The request's id.
        id: String,
        /// Whether it succeeded.
        ok: bool,
        /// The result.
        #[serde(skip_serializing_if = "Option::is_none")]
        payload: Option<Value>,
        /// The error.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<ErrorBody>,
    },
    /// Something happened.
    Event {
        /// Its name.
        event: String,
        /// Its data.
        payload: Value,
        /// 1, 2, 3, … per connection.
        seq: u64,
    },
}

/// A structured error.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorBody {
    /// Machine-readable.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
    /// Whether the same request may succeed later.
    pub retryable: bool,
    /// Machine-readable specifics (`retryAfterMs`, `deviceId`, `scope`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// Error codes.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed frame or parameters.
    InvalidRequest,
    /// Authentication failed (credential, device signature or device token).
    Unauthorized,
    /// The device is not paired yet; the owner must approve it.
    PairingRequired,
    /// Authenticated, but the method needs a scope the connection does not hold.
    Forbidden,
    /// Too many failed attempts or writes; see `details.retryAfterMs`.
    RateLimited,
    /// No such method.
    UnknownMethod,
    /// A request before `connect`, or no `connect` in time.
    NotConnected,
    /// The protocol versions do not overlap.
    UnsupportedProtocol,
    /// The gateway cannot serve the request now.
    Unavailable,
}

impl ServerFrame {
    /// A success.
    pub fn ok(id: String, payload: Value) -> Self {
        Self::Res {
            id,
            ok: true,
            payload: Some(payload),
            error: None,
        }
    }

    /// A failure without details.
    pub fn err(id: String, code: ErrorCode, message: impl Into<String>, retryable: bool) -> Self {
        Self::err_with(id, code, message, retryable, None)
    }

    /// A failure.
    pub fn err_with(
        id: String,
        code: ErrorCode,
        message: impl Into<String>,
        retryable: bool,
        details: Option<Value>,
    ) -> Self {
        Self::Res {
            id,
            ok: false,
            payload: None,
            error: Some(ErrorBody {
                code,
                message: message.into(),
                retryable,
                details,
            }),
        }
    }
}

/// `connect` parameters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectParams {
    /// Oldest protocol the client speaks.
    pub min_protocol: u32,
    /// Newest protocol the client speaks.
    pub max_protocol: u32,
    /// Who the client is.
    pub client: ClientInfo,
    /// `operator` or `node`.
    pub role: String,
    /// Scopes asked for; only a request: the device's approval decides.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The credential.
    #[serde(default)]
    pub auth: ConnectAuth,
    /// The device's answer to `connect.challenge`.
    pub device: DeviceProof,
}

/// The credential: the gateway's token or password, or a device token from pairing.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectAuth {
    /// `gateway.auth.mode: "token"`.
    #[serde(default)]
    pub token: Option<String>,
    /// `gateway.auth.mode: "password"`.
    #[serde(default)]
    pub password: Option<String>,
    /// A device token issued at pairing.
    #[serde(default)]
    pub device_token: Option<String>,
}

/// Who the client is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientInfo {
    /// Short name, e.g. `pincer-cli`.
    pub id: String,
    /// Its version.
    #[serde(default)]
    pub version: String,
    /// `cli`, `ui`, `node` or `probe`.
    pub mode: String,
}

/// The signed answer to the connection's challenge.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceProof {
    /// hex(sha256(public key)).
    pub id: String,
    /// Raw Ed25519 public key, base64url without padding.
    pub public_key: String,
    /// Signature over the `v1|…` payload, base64url without padding.
    pub signature: String,
    /// When the client signed (unix ms).
    pub signed_at: u64,
    /// The challenge's nonce, as received.
    pub nonce: String,
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
    /// Repeating a key returns the first run instead of starting another.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// Parameters of `devices.approve|reject|revoke|rotate`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceParams {
    /// The device.
    pub device_id: String,
    /// approve: scopes to grant (default: all requested); rotate: scopes of the new token
    /// (default: all approved).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

/// Parses `data` as the gateway parses client input: the frame, then, by method, its
/// parameters and (for `connect`) every typed field. Never panics; used by the fuzz target
/// (`fuzz/fuzz_targets/frames.rs`) and by a property test on arbitrary bytes.
pub fn parse_untrusted(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(ClientFrame::Req { method, params, .. }) = serde_json::from_str::<ClientFrame>(text)
    else {
        return false;
    };
    match method.as_str() {
        "connect" => serde_json::from_value::<ConnectParams>(params)
            .ok()
            .is_some_and(|p| super::handshake::parse_connect(&p).is_ok()),
        "chat.send" => serde_json::from_value::<ChatSendParams>(params).is_ok(),
        m if m.starts_with("devices.") => serde_json::from_value::<DeviceParams>(params)
            .ok()
            .is_some_and(|p| {
                p.device_id.parse::<crate::access::DeviceId>().is_ok()
                    && p.scopes
                        .is_none_or(|s| crate::access::ScopeSet::parse_names(&s).is_ok())
            }),
        _ => true,
    }
}
