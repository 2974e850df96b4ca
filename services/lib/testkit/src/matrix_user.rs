//! [`MatrixUser`]: a person on the test Synapse, speaking the client-server API with plain
//! HTTP calls (create rooms, join, send, read), for tests that play the human side.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::synapse::{Registered, Synapse};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum MatrixUserError {
    /// The server could not be reached or answered something that is not JSON.
    #[error("{path}: {source}")]
    Http {
        /// The API path.
        path: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The server refused the call.
    #[error("{path}: {status} {body}")]
    Refused {
        /// The API path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The error body.
        body: Value,
    },
    /// Registration failed.
    #[error(transparent)]
    Register(#[from] crate::synapse::SynapseError),
}

/// A registered user and their access token.
#[derive(Debug, Clone)]
pub struct MatrixUser {
    /// The HTTP client.
    pub http: reqwest::Client,
    /// `<homeserver>/_matrix/client/v3`.
    pub api: String,
    /// The access token.
    pub token: String,
    /// The full user id.
    pub user_id: String,
}

/// Percent-encodes one URL path segment (room, event and user ids contain `!`, `:`, `$`).
pub fn encode_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl MatrixUser {
    /// Registers `name` on `server` (not an admin).
    pub async fn register(
        server: &Synapse,
        name: &str,
        password: &str,
    ) -> Result<Self, MatrixUserError> {
        let Registered {
            user_id,
            access_token,
        } = server.register(name, password, false).await?;
        Ok(Self {
            http: reqwest::Client::new(),
            api: format!("{}/_matrix/client/v3", server.url()),
            token: access_token,
            user_id,
        })
    }

    /// One authenticated call; a non-2xx answer is an error carrying the body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, MatrixUserError> {
        let http = |source| MatrixUserError::Http {
            path: path.to_owned(),
            source,
        };
        let mut request = self
            .http
            .request(method, format!("{}/{path}", self.api))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(http)?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(answer)
        } else {
            Err(MatrixUserError::Refused {
                path: path.to_owned(),
                status: status.as_u16(),
                body: answer,
            })
        }
    }

    /// Creates a room inviting `invite`: a direct chat (`is_direct`, trusted private
    /// preset) or a private room. Returns the room id.
    pub async fn create_room(
        &self,
        invite: &[&str],
        is_direct: bool,
    ) -> Result<String, MatrixUserError> {
        let preset = if is_direct {
            "trusted_private_chat"
        } else {
            "private_chat"
        };
        let body = json!({ "preset": preset, "is_direct": is_direct, "invite": invite });
        let answer = self
            .call(reqwest::Method::POST, "createRoom", Some(body))
            .await?;
        Ok(answer["room_id"].as_str().unwrap_or_default().to_owned())
    }

    /// Joins `room`.
    pub async fn join(&self, room: &str) -> Result<(), MatrixUserError> {
        let path = format!("rooms/{}/join", encode_segment(room));
        self.call(reqwest::Method::POST, &path, Some(json!({})))
            .await
            .map(|_| ())
    }

    /// Sends an `m.room.message` with `content`; returns its event id.
    pub async fn send(&self, room: &str, content: Value) -> Result<String, MatrixUserError> {
        static TXN: AtomicUsize = AtomicUsize::new(0);
        let txn = format!("human{}", TXN.fetch_add(1, Ordering::Relaxed));
        let path = format!("rooms/{}/send/m.room.message/{txn}", encode_segment(room));
        let answer = self
            .call(reqwest::Method::PUT, &path, Some(content))
            .await?;
        Ok(answer["event_id"].as_str().unwrap_or_default().to_owned())
    }

    /// Sends a plain `m.text`; returns its event id.
    pub async fn say(&self, room: &str, text: &str) -> Result<String, MatrixUserError> {
        self.send(room, json!({ "msgtype": "m.text", "body": text }))
            .await
    }

    /// The room's messages (the last 100), oldest first.
    pub async fn messages(&self, room: &str) -> Result<Vec<Value>, MatrixUserError> {
        let path = format!(
            "rooms/{}/messages?dir=b&limit=100&filter=%7B%22types%22%3A%5B%22m.room.message%22%5D%7D",
            encode_segment(room)
        );
        let answer = self.call(reqwest::Method::GET, &path, None).await?;
        let mut events = answer["chunk"].as_array().cloned().unwrap_or_default();
        events.reverse();
        Ok(events)
    }

    /// `user`'s membership in `room` (`join`, `invite`, `leave`…), if any.
    pub async fn membership(&self, room: &str, user: &str) -> Option<String> {
        let path = format!(
            "rooms/{}/state/m.room.member/{}",
            encode_segment(room),
            encode_segment(user)
        );
        let answer = self.call(reqwest::Method::GET, &path, None).await.ok()?;
        answer["membership"].as_str().map(str::to_owned)
    }
}
