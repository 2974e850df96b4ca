//! Live turn updates for operator clients: a registry of broadcast channels keyed by the
//! inbound message that started the turn. Subscribing before the message is queued means
//! no update is missed.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::broadcast;

/// One update of a running turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnUpdate {
    /// Streamed reply text.
    Delta(String),
    /// The model called a tool.
    ToolCall {
        /// Tool name.
        tool: String,
        /// Arguments (JSON).
        arguments: String,
    },
    /// A tool finished.
    ToolResult {
        /// Tool name.
        tool: String,
        /// Success.
        ok: bool,
        /// Output shown to the model.
        content: String,
    },
    /// The turn is done.
    Final {
        /// Reply text.
        text: String,
    },
    /// The turn failed.
    Failed {
        /// Why.
        message: String,
    },
}

/// Registry of live turns.
#[derive(Default)]
pub struct TurnEvents {
    channels: Mutex<HashMap<String, broadcast::Sender<TurnUpdate>>>,
}

impl TurnEvents {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<TurnUpdate>>> {
        self.channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Subscribes to the turn of message `key` (call before queueing it).
    pub fn subscribe(&self, key: &str) -> broadcast::Receiver<TurnUpdate> {
        self.lock()
            .entry(key.to_owned())
            .or_insert_with(|| broadcast::channel(1024).0)
            .subscribe()
    }

    /// Publishes an update (dropped when nobody listens).
    pub fn publish(&self, key: &str, update: TurnUpdate) {
        let done = matches!(update, TurnUpdate::Final { .. } | TurnUpdate::Failed { .. });
        let mut map = self.lock();
        if let Some(tx) = map.get(key) {
            let _ = tx.send(update);
        }
        if done {
            map.remove(key);
        }
    }

    /// Forgets a subscription nobody needs any more.
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }
}

/// The registry key of a message.
pub fn event_key(channel: &str, account: &str, platform_message_id: &str) -> String {
    format!("{channel}\u{1f}{account}\u{1f}{platform_message_id}")
}
