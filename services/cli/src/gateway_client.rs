//! A small client for the gateway's operator WebSocket API (protocol 2, `docs/protocol.md`):
//! answer `connect.challenge` with a device signature and a credential, then send requests
//! and receive responses and events.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use pincer_identity::{
    ClientId, ClientMode, ConnectClaims, ConnectToken, Nonce, Role, ScopeSet, sign,
};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::device::DeviceIdentity;

/// The protocol version this client speaks.
pub const PROTOCOL_VERSION: u32 = 2;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect.
    #[error("cannot connect to the gateway at {url}: {source}; is `pincer up` running?")]
    Connect {
        /// URL.
        url: String,
        /// Why.
        source: tokio_tungstenite::tungstenite::Error,
    },
    /// The gateway refused a request.
    #[error("gateway refused {method}: {code}: {message}")]
    Refused {
        /// Method.
        method: String,
        /// Error code.
        code: String,
        /// Message.
        message: String,
    },
    /// The connection broke.
    #[error("gateway connection closed: {0}")]
    Closed(String),
    /// No answer in time.
    #[error("no answer from the gateway within {0:?}")]
    Timeout(Duration),
    /// This device waits for the owner's approval.
    #[error("{message}")]
    PairingRequired {
        /// This device.
        device_id: String,
        /// The gateway's message (says what to run).
        message: String,
    },
    /// The gateway's challenge or this device's claims were unusable.
    #[error("connect handshake failed: {0}")]
    Handshake(String),
    /// The device token could not be saved.
    #[error("cannot save the device token: {0}")]
    SaveToken(String),
}

/// What `connect` learned.
#[derive(Debug, Clone)]
pub struct Hello {
    /// Negotiated protocol version.
    pub protocol: u64,
    /// The gateway's version.
    pub server_version: String,
    /// This device.
    pub device_id: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// From opening the socket to `hello-ok`.
    pub latency: Duration,
}

/// The gateway-level credential a client presents.
#[derive(Clone)]
pub enum ClientAuth {
    /// `gateway.auth.mode: "token"`.
    Token(pincer_runtime::Secret),
    /// `gateway.auth.mode: "password"`.
    Password(pincer_runtime::Secret),
    /// `gateway.auth.mode: "none"`.
    None,
}

impl ClientAuth {
    /// What the config says to present; the password comes from `PINCER_GATEWAY_PASSWORD`.
    pub fn from_config(config: &pincer_runtime::Config) -> Result<Self, crate::CliError> {
        use pincer_runtime::config::validate::GatewayAuth;
        match &config.gateway.auth {
            GatewayAuth::Token(r) => r
                .resolve(&pincer_runtime::ProcessSecrets)
                .map(Self::Token)
                .map_err(|source| crate::CliError::Secret {
                    what: "gateway.auth.token".into(),
                    source,
                }),
            GatewayAuth::Password(_) => pincer_runtime::SecretRef::env("PINCER_GATEWAY_PASSWORD")
                .resolve(&pincer_runtime::ProcessSecrets)
                .map(Self::Password)
                .map_err(|source| crate::CliError::Secret {
                    what: "the gateway password".into(),
                    source,
                }),
            GatewayAuth::None => Ok(Self::None),
        }
    }
}

/// A frame received from the gateway.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// A response.
    Res {
        /// Request id.
        id: String,
        /// The payload (Ok) or the error object (Err).
        result: Result<Value, Value>,
    },
    /// An event.
    Event {
        /// Name.
        event: String,
        /// Payload.
        payload: Value,
    },
}

/// An authenticated connection.
pub struct GatewayClient {
    socket: Socket,
    next_id: u64,
}

impl GatewayClient {
    /// Connects to `url` (e.g. `ws://127.0.0.1:18789/ws`) as an operator asking for every
    /// operator scope, and authenticates. A device token from pairing is used when there is
    /// one; if the gateway no longer accepts it, the gateway credential is tried once (and a
    /// fresh device token kept).
    pub async fn connect(
        url: &str,
        auth: &ClientAuth,
        identity: &mut DeviceIdentity,
        mode: ClientMode,
    ) -> Result<(Self, Hello), ClientError> {
        if identity.token().is_some() {
            match Self::attempt(url, auth, identity, mode, true).await {
                Err(ClientError::Refused { code, .. }) if code == "unauthorized" => {
                    identity.forget_token();
                }
                other => return other,
            }
        }
        Self::attempt(url, auth, identity, mode, false).await
    }

    async fn attempt(
        url: &str,
        auth: &ClientAuth,
        identity: &mut DeviceIdentity,
        mode: ClientMode,
        use_device_token: bool,
    ) -> Result<(Self, Hello), ClientError> {
        let started = Instant::now();
        let (socket, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .map_err(|source| ClientError::Connect {
                url: url.to_owned(),
                source,
            })?;
        let mut client = Self { socket, next_id: 0 };
        let wait = Duration::from_secs(10);
        let nonce = loop {
            match tokio::time::timeout(wait, client.next())
                .await
                .map_err(|_| ClientError::Timeout(wait))??
            {
                Incoming::Event { event, payload } if event == "connect.challenge" => {
                    break payload
                        .get("nonce")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .parse::<Nonce>()
                        .map_err(|e| ClientError::Handshake(format!("challenge nonce: {e}")))?;
                }
                _ => continue,
            }
        };
        let scopes = ScopeSet::ALL;
        let (auth_json, signed_token) = match (use_device_token, identity.token(), auth) {
            (true, Some(t), _) => (json!({ "deviceToken": t }), t.to_owned()),
            (_, _, ClientAuth::Token(t)) => (json!({ "token": t.expose() }), t.expose().to_owned()),
            (_, _, ClientAuth::Password(p)) => (json!({ "password": p.expose() }), String::new()),
            (_, _, ClientAuth::None) => (json!({}), String::new()),
        };
        let token = if signed_token.is_empty() {
            ConnectToken::none()
        } else {
            ConnectToken::new(signed_token).map_err(|e| ClientError::Handshake(e.to_string()))?
        };
        let signed_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let claims = ConnectClaims {
            device_id: identity.device_id(),
            client_id: ClientId::new("pincer-cli")
                .map_err(|e| ClientError::Handshake(e.to_string()))?,
            client_mode: mode,
            role: Role::Operator,
            scopes,
            signed_at_ms,
            token,
            nonce,
        };
        let signed = sign(identity.key(), &claims);
        let params = json!({
            "minProtocol": PROTOCOL_VERSION,
            "maxProtocol": PROTOCOL_VERSION,
            "client": { "id": "pincer-cli", "version": env!("CARGO_PKG_VERSION"), "mode": mode.as_str() },
            "role": "operator",
            "scopes": scopes.names(),
            "auth": auth_json,
            "device": {
                "id": identity.device_id().to_string(),
                "publicKey": signed.public_key,
                "signature": signed.signature,
                "signedAt": signed_at_ms,
                "nonce": nonce.to_string(),
            },
        });
        let hello = match client.request("connect", params, wait).await {
            Ok(h) => h,
            Err(ClientError::Refused { code, message, .. }) if code == "pairing_required" => {
                return Err(ClientError::PairingRequired {
                    device_id: identity.device_id().to_string(),
                    message,
                });
            }
            Err(e) => return Err(e),
        };
        if let Some(token) = hello
            .get("auth")
            .and_then(|a| a.get("deviceToken"))
            .and_then(Value::as_str)
        {
            identity
                .store_token(token)
                .map_err(|e| ClientError::SaveToken(e.to_string()))?;
        }
        let info = Hello {
            protocol: hello.get("protocol").and_then(Value::as_u64).unwrap_or(0),
            server_version: hello
                .pointer("/server/version")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            device_id: identity.device_id().to_string(),
            scopes: hello
                .pointer("/device/scopes")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            latency: started.elapsed(),
        };
        Ok((client, info))
    }

    /// Sends a request and waits for its response (events received meanwhile are dropped).
    pub async fn request(
        &mut self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let id = self.send(method, params).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(remaining, self.next())
                .await
                .map_err(|_| ClientError::Timeout(timeout))??
            {
                Incoming::Res { id: rid, result } if rid == id => return refused(method, result),
                _ => continue,
            }
        }
    }

    /// Sends a request without waiting; returns its id.
    pub async fn send(&mut self, method: &str, params: Value) -> Result<String, ClientError> {
        self.next_id += 1;
        let id = format!("cli-{}", self.next_id);
        let frame = json!({ "type": "req", "id": id, "method": method, "params": params });
        self.socket
            .send(Message::Text(frame.to_string().into()))
            .await
            .map_err(|e| ClientError::Closed(e.to_string()))?;
        Ok(id)
    }

    /// The next response or event.
    pub async fn next(&mut self) -> Result<Incoming, ClientError> {
        loop {
            let message = self
                .socket
                .next()
                .await
                .ok_or_else(|| ClientError::Closed("end of stream".into()))?;
            let text = match message.map_err(|e| ClientError::Closed(e.to_string()))? {
                Message::Text(t) => t.to_string(),
                Message::Close(frame) => {
                    return Err(ClientError::Closed(
                        frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    ));
                }
                _ => continue,
            };
            let Ok(value) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            match value.get("type").and_then(Value::as_str) {
                Some("res") => {
                    let id = value
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let ok = value.get("ok").and_then(Value::as_bool).unwrap_or(false);
                    let result = if ok {
                        Ok(value.get("payload").cloned().unwrap_or(Value::Null))
                    } else {
                        Err(value.get("error").cloned().unwrap_or(Value::Null))
                    };
                    return Ok(Incoming::Res { id, result });
                }
                Some("event") => {
                    let event = value
                        .get("event")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    return Ok(Incoming::Event {
                        event,
                        payload: value.get("payload").cloned().unwrap_or(Value::Null),
                    });
                }
                _ => continue,
            }
        }
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

fn refused(method: &str, result: Result<Value, Value>) -> Result<Value, ClientError> {
    result.map_err(|err| ClientError::Refused {
        method: method.to_owned(),
        code: err
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned(),
        message: err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    })
}
