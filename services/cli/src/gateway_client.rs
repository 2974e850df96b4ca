//! A small client for the gateway's operator WebSocket API: connect with the token, send
//! requests, receive responses and events.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

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
    fn to_json(&self) -> Value {
        match self {
            Self::Token(t) => json!({ "token": t.expose() }),
            Self::Password(p) => json!({ "password": p.expose() }),
            Self::None => json!({}),
        }
    }

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
    /// Connects to `url` (e.g. `ws://127.0.0.1:18789/ws`) and authenticates.
    pub async fn connect(url: &str, auth: &ClientAuth) -> Result<Self, ClientError> {
        let (socket, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .map_err(|source| ClientError::Connect {
                url: url.to_owned(),
                source,
            })?;
        let mut client = Self { socket, next_id: 0 };
        let params = json!({
            "auth": auth.to_json(),
            "client": { "id": "pincer-cli", "version": env!("CARGO_PKG_VERSION") },
            "minProtocol": 1,
            "maxProtocol": 1,
        });
        client
            .request("connect", params, Duration::from_secs(15))
            .await?;
        Ok(client)
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
