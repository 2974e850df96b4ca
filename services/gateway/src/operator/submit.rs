//! Queueing an operator message (WebSocket `chat.send`, HTTP `/v1/chat/completions`): it is
//! stored in the durable inbound queue like any channel message, after subscribing to its
//! turn's updates so none is missed.

use tokio::sync::broadcast;

use super::http::OperatorState;
use crate::routing::{ChatKind, SessionKey};
use crate::senders::SenderClass;
use crate::store::StoreError;
use crate::store::inbound::{Disposition, Enqueued, NewInbound, enqueue};
use crate::turn_events::{TurnUpdate, event_key};

/// Most bytes in one operator message.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// A queued message.
pub struct Submission {
    /// The run id (the idempotency key).
    pub run_id: String,
    /// Whether the message was new.
    pub status: SubmitStatus,
    /// Updates of its turn (only meaningful when `Accepted`).
    pub updates: broadcast::Receiver<TurnUpdate>,
}

/// New or seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitStatus {
    /// Queued now.
    Accepted,
    /// Queued earlier under the same idempotency key; not run again.
    Duplicate,
}

impl SubmitStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
        }
    }
}

/// Why a message was not queued.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Empty or too long.
    #[error("text must be 1 byte to 64 KiB")]
    Text,
    /// Bad session name.
    #[error("session must be 1-64 of [A-Za-z0-9_-]")]
    Session,
    /// Bad idempotency key.
    #[error("idempotencyKey must be 1 to 128 bytes")]
    Key,
    /// The store failed.
    #[error("cannot queue the message: {0}")]
    Store(#[from] StoreError),
}

/// Whether `name` is a valid operator session name.
pub fn valid_session_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Queues `text` in operator session `session`.
pub async fn submit(
    state: &OperatorState,
    session: &str,
    text: String,
    idempotency_key: Option<String>,
) -> Result<Submission, SubmitError> {
    if text.trim().is_empty() || text.len() > MAX_TEXT_BYTES {
        return Err(SubmitError::Text);
    }
    if !valid_session_name(session) {
        return Err(SubmitError::Session);
    }
    let run_id = match idempotency_key {
        Some(k) if !k.is_empty() && k.len() <= 128 => k,
        Some(_) => return Err(SubmitError::Key),
        None => uuid::Uuid::new_v4().to_string(),
    };
    let key = event_key("operator", "local", &run_id);
    let updates = state.events.subscribe(&key);
    let msg = NewInbound {
        channel: "operator".to_owned(),
        account_id: "local".to_owned(),
        platform_message_id: run_id.clone(),
        sender_id: "operator".to_owned(),
        chat_id: session.to_owned(),
        chat_kind: ChatKind::Operator,
        thread_id: String::new(),
        text,
        session_key: SessionKey::operator(&state.agent_id, session),
        sender_class: SenderClass::Owner,
        disposition: Disposition::Process,
    };
    match state.store.call(move |c| enqueue(c, &msg)).await {
        Ok(Enqueued::New(_)) => {
            state.hub.inbound_ready.notify_one();
            Ok(Submission {
                run_id,
                status: SubmitStatus::Accepted,
                updates,
            })
        }
        Ok(Enqueued::Duplicate(_)) => {
            state.events.forget(&key);
            Ok(Submission {
                run_id,
                status: SubmitStatus::Duplicate,
                updates,
            })
        }
        Err(e) => {
            state.events.forget(&key);
            Err(e.into())
        }
    }
}
