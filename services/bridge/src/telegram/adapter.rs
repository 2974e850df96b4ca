//! [`TelegramAdapter`]: one bot account as a [`ChannelAdapter`].
//!
//! Inbound: `getMe` once (the bot's id and username, for mention detection), then
//! `getUpdates` long polling with `allowed_updates: ["message"]`. Each message is handed out
//! with an ack handle; the `offset` moves past it only after the bridge acks it (see
//! [`super::offsets`]). Outbound: `sendMessage` in 4096-UTF-16-unit chunks of the model's
//! Markdown, each rendered as Telegram HTML (`parse_mode: HTML`; sent again as plain text
//! if Telegram refuses the markup), the first one replying to the original message;
//! `sendChatAction typing`.
//!
//! Webhook mode ([`TelegramSettings::webhook`]): instead of `getUpdates`, the adapter makes
//! sure `setWebhook` was called (once per process; again after a failure) and takes the
//! updates the [`super::WebhookServer`] received for this account from its
//! [`WebhookInbox`]; the HTTP request that carried an update is answered 200 only after the
//! gateway acked the message (see [`super::webhook`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use pincer_proto::v1::ChannelAccount;
use pincer_runtime::Secret;
use tokio::sync::{Mutex, OnceCell};

use super::client::{BotApi, RetryPolicy, TelegramError};
use super::normalize::{BotIdentity, Normalized, normalize};
use super::offsets::{Head, OffsetTracker};
use super::webhook::{Handed, WebhookInbox};
use super::wire::{
    ChatRef, GetUpdates, ReplyParameters, SendChatAction, SendMessage, SentMessage, SetWebhook,
    Update, User,
};
use crate::adapter::{
    AckHandle, AdapterError, ChannelAdapter, ChatTarget, InboundItem, OutboundText, PlatformError,
    SendFailure, SentRefs,
};
use crate::chunk::{LengthUnit, split_text};
use crate::format::{Markup, render};

/// The channel name on the wire.
pub const CHANNEL: &str = "telegram";
/// Telegram's message length limit, in UTF-16 code units.
pub const MESSAGE_LIMIT: usize = 4096;

/// How to reach and poll one bot.
#[derive(Debug, Clone)]
pub struct TelegramSettings {
    /// The account id the gateway knows this bot by (`default` for the single bot).
    pub account_id: String,
    /// The bot token (never logged, never sent to the gateway).
    pub bot_token: Secret,
    /// The Bot API root, e.g. `https://api.telegram.org`.
    pub api_base_url: reqwest::Url,
    /// `getUpdates` long-poll timeout.
    pub poll_timeout: Duration,
    /// How long to wait for the gateway's ack of a handed-out message before reading it
    /// from Telegram again.
    pub ack_timeout: Duration,
    /// Retries of Bot API calls.
    pub retry: RetryPolicy,
    /// Receive updates through a webhook instead of `getUpdates` long polling.
    pub webhook: Option<TelegramWebhook>,
}

/// Webhook mode for one bot account.
#[derive(Debug, Clone)]
pub struct TelegramWebhook {
    /// The full public URL of this account (`<channels.telegram.webhook.url>/<account id>`),
    /// given to Telegram in `setWebhook`.
    pub url: reqwest::Url,
    /// The secret Telegram sends back with every update (the same one the
    /// [`super::WebhookServer`] checks).
    pub secret_token: Secret,
    /// This account's inbox, from [`super::WebhookServer::inbox`].
    pub inbox: Arc<WebhookInbox>,
}

impl TelegramSettings {
    /// Settings with defaults for everything but the token and the API root.
    pub fn new(bot_token: Secret, api_base_url: reqwest::Url) -> Self {
        Self {
            account_id: "default".to_owned(),
            bot_token,
            api_base_url,
            poll_timeout: Duration::from_secs(30),
            ack_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            webhook: None,
        }
    }
}

/// A Telegram bot account.
#[derive(Debug)]
pub struct TelegramAdapter {
    api: BotApi,
    account: ChannelAccount,
    poll_timeout: Duration,
    ack_timeout: Duration,
    identity: OnceCell<BotIdentity>,
    poll: Mutex<PollState>,
    webhook: Option<WebhookMode>,
}

#[derive(Debug)]
struct WebhookMode {
    settings: TelegramWebhook,
    /// Set once `setWebhook` succeeded in this process.
    registered: OnceCell<()>,
}

#[derive(Debug, Default)]
struct PollState {
    tracker: OffsetTracker,
    /// The offset Telegram last saw from us (what it has confirmed).
    told_telegram: i64,
}

/// Most updates per `getUpdates` (the Bot API maximum).
const BATCH: u32 = 100;
/// Extra HTTP time over the long-poll timeout before the request counts as hung.
const POLL_GRACE: Duration = Duration::from_secs(10);
/// How long before the lease's end every long poll must be over (Telegram ends a poll at
/// its `timeout`; the margin covers the request's transit and scheduling).
pub(crate) const LEASE_MARGIN: Duration = Duration::from_secs(1);

/// The `getUpdates` timeout to use so the poll ends [`LEASE_MARGIN`] before `lease_until`:
/// the configured timeout, shortened to whole seconds of what is left (0: a short poll).
/// `None` when not even a short poll fits.
pub(crate) fn poll_timeout_within(
    configured: Duration,
    lease_until: Instant,
    now: Instant,
) -> Option<Duration> {
    let left = lease_until
        .checked_duration_since(now)?
        .checked_sub(LEASE_MARGIN)?;
    if left.is_zero() {
        return None;
    }
    Some(configured.min(Duration::from_secs(left.as_secs())))
}

impl TelegramAdapter {
    /// An adapter for one bot. Does no I/O (`getMe` runs on the first poll).
    pub fn new(settings: TelegramSettings) -> Result<Self, TelegramError> {
        Ok(Self {
            api: BotApi::new(&settings.api_base_url, settings.bot_token, settings.retry)?,
            account: ChannelAccount {
                channel: CHANNEL.to_owned(),
                account_id: settings.account_id,
            },
            poll_timeout: settings.poll_timeout,
            ack_timeout: settings.ack_timeout,
            identity: OnceCell::new(),
            poll: Mutex::new(PollState::default()),
            webhook: settings.webhook.map(|settings| WebhookMode {
                settings,
                registered: OnceCell::new(),
            }),
        })
    }

    async fn identity(&self) -> Result<&BotIdentity, TelegramError> {
        self.identity
            .get_or_try_init(|| async {
                let me: User = self.api.call("getMe", &serde_json::json!({})).await?;
                let identity = BotIdentity {
                    id: me.id,
                    username: me.username.unwrap_or_default(),
                };
                tracing::info!(bot_id = identity.id, username = %identity.username, "Telegram bot identified");
                Ok(identity)
            })
            .await
    }

    async fn get_updates(
        &self,
        state: &mut PollState,
        timeout: Duration,
        limit: u32,
    ) -> Result<Vec<Update>, TelegramError> {
        let offset = state.tracker.offset();
        let request = GetUpdates {
            offset,
            limit,
            timeout: timeout.as_secs(),
            allowed_updates: &["message"],
        };
        let updates = self
            .api
            .call_once("getUpdates", &request, timeout + POLL_GRACE)
            .await?;
        state.told_telegram = offset;
        Ok(updates)
    }

    /// Calls `setWebhook` unless it already succeeded in this process.
    async fn register_webhook(
        &self,
        hook: &WebhookMode,
        lease_until: Instant,
    ) -> Result<(), TelegramError> {
        hook.registered
            .get_or_try_init(|| async {
                let request = SetWebhook {
                    url: hook.settings.url.as_str(),
                    secret_token: hook.settings.secret_token.expose(),
                    allowed_updates: &["message"],
                };
                let _: bool = self
                    .api
                    .call_until("setWebhook", &request, Some(lease_until))
                    .await?;
                tracing::info!(account = %self.account.account_id, "Telegram webhook registered");
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// Webhook mode: the next update the webhook server received for this account.
    async fn next_webhook(
        &self,
        hook: &WebhookMode,
        lease_until: Instant,
    ) -> Result<InboundItem, AdapterError> {
        let inbox = &hook.settings.inbox;
        inbox.record_lease(lease_until, self.ack_timeout);
        let lease_ending = || AdapterError::LeaseEnding {
            margin_ms: LEASE_MARGIN.as_millis() as u64,
        };
        let stop_at = lease_until
            .checked_sub(LEASE_MARGIN)
            .filter(|at| *at > Instant::now())
            .ok_or_else(lease_ending)?;
        let bot = self.identity().await?;
        self.register_webhook(hook, lease_until).await?;
        loop {
            let delivery = tokio::select! {
                delivery = inbox.recv() => delivery,
                () = tokio::time::sleep_until(stop_at.into()) => return Err(lease_ending()),
            };
            let Some(delivery) = delivery else {
                return Err(PlatformError::transient(
                    CHANNEL,
                    "the webhook inbox was closed; is the webhook server running?",
                )
                .into());
            };
            let update_id = delivery.update.update_id;
            match normalize(&delivery.update, bot, &self.account) {
                Normalized::Message(message) => {
                    let (ack, watch) = AckHandle::new();
                    if delivery.outcome.send(Handed::Message(watch)).is_err() {
                        // The request gave up already (503); Telegram delivers it again.
                        tracing::debug!(
                            update_id,
                            "webhook request gone before its update was taken"
                        );
                        continue;
                    }
                    return Ok(InboundItem {
                        message: *message,
                        ack,
                    });
                }
                Normalized::Skip(reason) => {
                    tracing::debug!(update_id, reason, "skipping Telegram update");
                    // A request that already gave up is retried by Telegram and skipped again.
                    let _ = delivery.outcome.send(Handed::Skipped);
                }
            }
        }
    }

    async fn next_inbound_inner(&self, lease_until: Instant) -> Result<InboundItem, AdapterError> {
        if let Some(hook) = &self.webhook {
            return self.next_webhook(hook, lease_until).await;
        }
        let bot = self.identity().await?;
        let mut state = self.poll.lock().await;
        loop {
            match state.tracker.settle() {
                Head::Rewound => {
                    tracing::debug!(
                        offset = state.tracker.offset(),
                        "a message was not acknowledged; reading again from the confirmed offset"
                    );
                }
                Head::Waiting | Head::Empty => {}
            }
            if let Some(item) = state.tracker.pop_ready() {
                return Ok(item);
            }
            if let Some(watch) = state.tracker.head_watch() {
                // Everything polled is handed out; wait for the gateway before polling on.
                if tokio::time::timeout(self.ack_timeout, watch.settled())
                    .await
                    .is_err()
                {
                    tracing::warn!(
                        waited_s = self.ack_timeout.as_secs(),
                        outstanding = state.tracker.outstanding(),
                        "the gateway did not acknowledge inbound messages in time; reading them again"
                    );
                    state.tracker.rewind();
                }
                continue;
            }
            let timeout = poll_timeout_within(self.poll_timeout, lease_until, Instant::now())
                .ok_or(AdapterError::LeaseEnding {
                    margin_ms: LEASE_MARGIN.as_millis() as u64,
                })?;
            let updates = match self.get_updates(&mut state, timeout, BATCH).await {
                Err(TelegramError::Conflict { description, .. })
                    if description.to_ascii_lowercase().contains("webhook") =>
                {
                    // A webhook left over from webhook mode (or another tool) blocks
                    // getUpdates; this config polls, so the webhook goes.
                    tracing::warn!(
                        account = %self.account.account_id,
                        "a webhook is set for this bot but channels.telegram.webhook is not \
                         configured; deleting it to poll"
                    );
                    let request = serde_json::json!({ "drop_pending_updates": false });
                    let _: bool = self.api.call("deleteWebhook", &request).await?;
                    continue;
                }
                other => other?,
            };
            if updates.is_empty() && timeout.is_zero() {
                // Without long polling an empty answer comes back at once: do not spin.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            for update in updates {
                match normalize(&update, bot, &self.account) {
                    Normalized::Message(message) => {
                        let (ack, watch) = AckHandle::new();
                        let item = InboundItem {
                            message: *message,
                            ack,
                        };
                        state.tracker.push(update.update_id, Some((item, watch)));
                    }
                    Normalized::Skip(reason) => {
                        tracing::debug!(
                            update_id = update.update_id,
                            reason,
                            "skipping Telegram update"
                        );
                        state.tracker.push(update.update_id, None);
                    }
                }
            }
        }
    }

    async fn send_inner(&self, out: OutboundText) -> Result<SentRefs, SendFailure> {
        let fail = |error: AdapterError| SendFailure {
            sent: Vec::new(),
            error,
        };
        let chat = chat_ref(&out.chat_id).map_err(fail)?;
        let thread = thread_id(out.thread_id.as_deref()).map_err(fail)?;
        if out.text.trim().is_empty() {
            return Err(fail(bad_target(
                "text",
                &out.text,
                "Telegram cannot send an empty message",
            )));
        }
        let reply_to = out
            .reply_to
            .as_deref()
            .and_then(|r| reply_message_id(r, &out.chat_id));
        let mut sent = Vec::new();
        let chunks = split_text(&out.text, MESSAGE_LIMIT, LengthUnit::Utf16);
        for (index, chunk) in chunks.iter().enumerate().skip(out.skip_chunks) {
            let html = render(chunk, Markup::TelegramHtml);
            let mut request = SendMessage {
                chat_id: &chat,
                message_thread_id: thread,
                text: &html,
                parse_mode: Some("HTML"),
                reply_parameters: reply_to.filter(|_| index == 0).map(|message_id| {
                    ReplyParameters {
                        message_id,
                        allow_sending_without_reply: true,
                    }
                }),
            };
            let mut sent_message = self
                .api
                .call_until::<SentMessage>("sendMessage", &request, out.lease_until)
                .await;
            if matches!(&sent_message, Err(e) if e.is_entity_error()) {
                // Our markup is well-formed, but Telegram's parser is stricter in corners
                // (nesting rules): say it plainly rather than not at all.
                tracing::debug!(
                    "Telegram refused the HTML markup; sending the chunk as plain text"
                );
                let plain = render(chunk, Markup::Plain);
                request.text = &plain;
                request.parse_mode = None;
                sent_message = self
                    .api
                    .call_until::<SentMessage>("sendMessage", &request, out.lease_until)
                    .await;
            }
            match sent_message {
                Ok(m) => sent.push(format!("{}:{}", m.chat.id, m.message_id)),
                Err(e) => {
                    return Err(SendFailure {
                        sent,
                        error: e.into(),
                    });
                }
            }
        }
        Ok(SentRefs {
            platform_message_ids: sent,
        })
    }

    async fn typing_inner(&self, target: ChatTarget) -> Result<(), AdapterError> {
        let chat = chat_ref(&target.chat_id)?;
        let request = SendChatAction {
            chat_id: &chat,
            message_thread_id: thread_id(target.thread_id.as_deref())?,
            action: "typing",
        };
        let _: bool = self
            .api
            .call_once("sendChatAction", &request, Duration::from_secs(10))
            .await?;
        Ok(())
    }

    async fn flush_inner(&self) -> Result<(), AdapterError> {
        if self.webhook.is_some() {
            // Webhook requests are answered when the gateway acks; nothing is pending here.
            return Ok(());
        }
        let mut state = self.poll.lock().await;
        state.tracker.settle();
        if state.tracker.offset() > state.told_telegram {
            // A non-blocking getUpdates with the new offset confirms everything below it;
            // the update it may return stays unconfirmed and is delivered to the next poller.
            self.get_updates(&mut state, Duration::ZERO, 1).await?;
        }
        Ok(())
    }
}

impl ChannelAdapter for TelegramAdapter {
    fn account(&self) -> ChannelAccount {
        self.account.clone()
    }

    fn next_inbound(
        &self,
        lease_until: Instant,
    ) -> BoxFuture<'_, Result<InboundItem, AdapterError>> {
        self.next_inbound_inner(lease_until).boxed()
    }

    fn send(&self, text: OutboundText) -> BoxFuture<'_, Result<SentRefs, SendFailure>> {
        self.send_inner(text).boxed()
    }

    fn typing(&self, target: ChatTarget) -> BoxFuture<'_, Result<(), AdapterError>> {
        self.typing_inner(target).boxed()
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), AdapterError>> {
        self.flush_inner().boxed()
    }
}

fn bad_target(field: &'static str, value: &str, reason: &'static str) -> AdapterError {
    AdapterError::BadTarget {
        channel: CHANNEL,
        field,
        value: value.to_owned(),
        reason,
    }
}

/// A numeric chat id, or `@username` for public chats.
fn chat_ref(chat_id: &str) -> Result<ChatRef, AdapterError> {
    if let Ok(id) = chat_id.parse::<i64>() {
        return Ok(ChatRef::Id(id));
    }
    if chat_id.len() > 1 && chat_id.starts_with('@') {
        return Ok(ChatRef::Name(chat_id.to_owned()));
    }
    Err(bad_target(
        "chat_id",
        chat_id,
        "use a numeric Telegram chat id or @username",
    ))
}

fn thread_id(thread: Option<&str>) -> Result<Option<i64>, AdapterError> {
    match thread {
        None | Some("") => Ok(None),
        Some(t) => t.parse().map(Some).map_err(|_| {
            bad_target(
                "thread_id",
                t,
                "use the numeric message_thread_id of a forum topic",
            )
        }),
    }
}

/// The message id of `<chat_id>:<message_id>` when it belongs to `chat_id`.
fn reply_message_id(platform_message_id: &str, chat_id: &str) -> Option<i64> {
    let (chat, message) = platform_message_id.rsplit_once(':')?;
    if chat != chat_id {
        tracing::debug!(
            platform_message_id,
            chat_id,
            "reply target is in another chat; sending without reply"
        );
        return None;
    }
    message.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_polls_end_before_the_lease() {
        let now = Instant::now();
        let thirty = Duration::from_secs(30);
        let at = |ms: u64| now + Duration::from_millis(ms);
        assert_eq!(
            poll_timeout_within(thirty, at(4_900), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            poll_timeout_within(Duration::from_secs(2), at(60_000), now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            poll_timeout_within(thirty, at(1_500), now),
            Some(Duration::ZERO),
            "a short poll still fits"
        );
        assert_eq!(poll_timeout_within(thirty, at(1_000), now), None);
        assert_eq!(poll_timeout_within(thirty, at(300), now), None);
        assert_eq!(
            poll_timeout_within(thirty, now, at(10)),
            None,
            "already over"
        );
    }

    #[test]
    fn targets_are_parsed() {
        assert_eq!(chat_ref("-100123").unwrap(), ChatRef::Id(-100_123));
        assert_eq!(
            chat_ref("@channel").unwrap(),
            ChatRef::Name("@channel".into())
        );
        assert!(chat_ref("alice").is_err());
        assert_eq!(thread_id(Some("")).unwrap(), None);
        assert_eq!(thread_id(Some("17")).unwrap(), Some(17));
        assert!(thread_id(Some("x")).is_err());
        assert_eq!(reply_message_id("42:7", "42"), Some(7));
        assert_eq!(reply_message_id("-100:7", "-100"), Some(7));
        assert_eq!(reply_message_id("43:7", "42"), None);
        assert_eq!(reply_message_id("garbage", "42"), None);
    }
}
