//! The channel-adapter contract every chat platform implements (Telegram today; Matrix, IRC,
//! e-mail later).
//!
//! - **Inbound** is a sequence of [`InboundItem`]s from [`ChannelAdapter::next_inbound`],
//!   each a normalised [`InboundMessage`] plus an [`AckHandle`]. The bridge calls
//!   [`AckHandle::ack`] only after the gateway has durably stored the message; an adapter
//!   confirms a message to its platform only after that. Dropping a handle without acking
//!   means "not stored": the adapter must deliver the message again later.
//! - **Outbound** is [`ChannelAdapter::send`] with an [`OutboundText`]; the adapter splits it
//!   into platform-sized chunks (see [`crate::chunk`]) and reports one platform id per chunk.
//! - **Typing** is best effort.
//!
//! The trait is object safe (boxed futures) so one bridge can hold adapters of different
//! platforms as `Arc<dyn ChannelAdapter>`.

use std::time::Duration;

use futures::future::BoxFuture;
use pincer_proto::v1::{ChannelAccount, InboundMessage};
use tokio::sync::oneshot;

use crate::telegram::TelegramError;

/// One inbound message and the handle that confirms it.
#[derive(Debug)]
pub struct InboundItem {
    /// The normalised message (its `fencing_token` is filled in by the bridge).
    pub message: InboundMessage,
    /// Ack once the gateway has stored the message; drop to have it delivered again.
    pub ack: AckHandle,
}

/// Confirms one inbound message to the adapter. Dropping it unacknowledged is a negative
/// acknowledgement.
#[derive(Debug)]
pub struct AckHandle {
    tx: oneshot::Sender<()>,
}

/// The adapter's side of an [`AckHandle`].
#[derive(Debug)]
pub struct AckWatch {
    rx: oneshot::Receiver<()>,
    // A oneshot reports `Closed` once its value was taken, so the outcome is remembered.
    outcome: Option<AckState>,
}

/// What became of an [`AckHandle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckState {
    /// Not decided yet.
    Pending,
    /// [`AckHandle::ack`] was called.
    Acked,
    /// The handle was dropped without an ack.
    Dropped,
}

impl AckHandle {
    /// A new handle and its watch.
    pub fn new() -> (Self, AckWatch) {
        let (tx, rx) = oneshot::channel();
        (Self { tx }, AckWatch { rx, outcome: None })
    }

    /// Confirms the message.
    pub fn ack(self) {
        // The adapter may have given up waiting (it will redeliver); nothing to do then.
        let _ = self.tx.send(());
    }
}

impl AckWatch {
    /// An already-acknowledged watch (for updates the adapter skips but must still confirm).
    pub fn acked() -> Self {
        let (handle, watch) = AckHandle::new();
        handle.ack();
        watch
    }

    /// The current state, without waiting.
    pub fn state(&mut self) -> AckState {
        if let Some(outcome) = self.outcome {
            return outcome;
        }
        let state = match self.rx.try_recv() {
            Ok(()) => AckState::Acked,
            Err(oneshot::error::TryRecvError::Empty) => return AckState::Pending,
            Err(oneshot::error::TryRecvError::Closed) => AckState::Dropped,
        };
        self.outcome = Some(state);
        state
    }

    /// Waits until the handle is acked or dropped. Cancel-safe.
    pub async fn settled(&mut self) -> AckState {
        if let Some(outcome) = self.outcome {
            return outcome;
        }
        let state = match (&mut self.rx).await {
            Ok(()) => AckState::Acked,
            Err(_) => AckState::Dropped,
        };
        self.outcome = Some(state);
        state
    }
}

/// A text message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundText {
    /// The platform chat id.
    pub chat_id: String,
    /// A thread / topic within the chat, if any.
    pub thread_id: Option<String>,
    /// The full text (chunked by the adapter).
    pub text: String,
    /// The `platform_message_id` to reply to with the first chunk.
    pub reply_to: Option<String>,
    /// Chunks already sent by an earlier, partly failed attempt: skip them.
    pub skip_chunks: usize,
    /// When the lease this send runs under ends (`None`: not fenced). No platform request
    /// may start after it, retries included.
    pub lease_until: Option<std::time::Instant>,
}

/// Where a typing indicator goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTarget {
    /// The platform chat id.
    pub chat_id: String,
    /// A thread / topic within the chat, if any.
    pub thread_id: Option<String>,
}

/// What a successful send produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SentRefs {
    /// Platform ids of the sent messages, one per chunk, in order.
    pub platform_message_ids: Vec<String>,
}

/// A send that failed, possibly after some chunks went out.
#[derive(Debug, thiserror::Error)]
#[error("{error} (after {} chunk(s) were sent)", sent.len())]
pub struct SendFailure {
    /// Platform ids of the chunks that were sent before the failure.
    pub sent: Vec<String>,
    /// Why the next chunk failed.
    #[source]
    pub error: AdapterError,
}

/// Why an adapter call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The Telegram Bot API call failed.
    #[error(transparent)]
    Telegram(#[from] TelegramError),
    /// A call to another platform (IRC, e-mail, Matrix) failed.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// The lease ends too soon to start another poll; the caller waits for its renewal.
    #[error(
        "the account's lease ends in less than {margin_ms} ms; not polling until it is renewed"
    )]
    LeaseEnding {
        /// The safety margin kept before the lease's end.
        margin_ms: u64,
    },
    /// The gateway asked for something this platform cannot address.
    #[error("{field} {value:?} is not valid for {channel}: {reason}")]
    BadTarget {
        /// The channel.
        channel: &'static str,
        /// Which field.
        field: &'static str,
        /// The offending value (never a secret).
        value: String,
        /// Why.
        reason: &'static str,
    },
}

/// Why a call to a platform other than Telegram failed. The message never contains a
/// secret (password, access token).
#[derive(Debug, thiserror::Error)]
#[error("{channel}: {message}")]
pub struct PlatformError {
    /// The channel, e.g. `irc`.
    pub channel: &'static str,
    /// What failed, for logs and receipts.
    pub message: String,
    /// Trying again later may succeed.
    pub retryable: bool,
    /// Retrying will not help until an operator acts (wrong password, banned).
    pub needs_operator: bool,
    /// How long the platform asked us to wait, if it did.
    pub retry_after: Option<Duration>,
}

impl PlatformError {
    /// A transient failure (network, server busy): retried with backoff.
    pub fn transient(channel: &'static str, message: impl Into<String>) -> Self {
        Self {
            channel,
            message: message.into(),
            retryable: true,
            needs_operator: false,
            retry_after: None,
        }
    }

    /// A failure retrying cannot fix (a bad request).
    pub fn permanent(channel: &'static str, message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            ..Self::transient(channel, message)
        }
    }

    /// A failure only the operator can fix (credentials refused): retried slowly, logged
    /// at error level.
    pub fn operator(channel: &'static str, message: impl Into<String>) -> Self {
        Self {
            needs_operator: true,
            ..Self::transient(channel, message)
        }
    }

    /// The same failure, with the wait the platform asked for.
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }
}

impl AdapterError {
    /// True when trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Telegram(e) => e.is_retryable(),
            Self::Platform(e) => e.retryable,
            Self::LeaseEnding { .. } => true,
            Self::BadTarget { .. } => false,
        }
    }

    /// True when retrying will not help until an operator acts (wrong token, another
    /// process polling the same bot); such errors are logged at error level.
    pub fn needs_operator(&self) -> bool {
        match self {
            Self::Telegram(e) => e.needs_operator(),
            Self::Platform(e) => e.needs_operator,
            Self::LeaseEnding { .. } | Self::BadTarget { .. } => false,
        }
    }

    /// How long the platform asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Telegram(e) => e.retry_after(),
            Self::Platform(e) => e.retry_after,
            Self::LeaseEnding { .. } => Some(Duration::from_millis(200)),
            Self::BadTarget { .. } => None,
        }
    }
}

/// A chat platform account, as the bridge drives it.
pub trait ChannelAdapter: Send + Sync + 'static {
    /// The account this adapter serves.
    fn account(&self) -> ChannelAccount;

    /// Waits for the next inbound message. Cancel-safe: dropping the future loses nothing,
    /// unconfirmed messages are delivered again. Errors are transient unless the adapter
    /// says otherwise; the caller backs off and calls again.
    ///
    /// `lease_until` is when this replica's lease on the account ends: a request that the
    /// platform may still be serving after it (a long poll) must not be started, so that a
    /// frozen or cut-off replica can never overlap with the account's next holder.
    fn next_inbound(
        &self,
        lease_until: std::time::Instant,
    ) -> BoxFuture<'_, Result<InboundItem, AdapterError>>;

    /// Sends a text (chunked to the platform limit).
    fn send(&self, text: OutboundText) -> BoxFuture<'_, Result<SentRefs, SendFailure>>;

    /// Shows a typing indicator in a chat.
    fn typing(&self, target: ChatTarget) -> BoxFuture<'_, Result<(), AdapterError>>;

    /// Confirms to the platform everything acknowledged so far (before shutting down), so
    /// the next process does not receive it again. Best effort.
    fn flush(&self) -> BoxFuture<'_, Result<(), AdapterError>>;
}
