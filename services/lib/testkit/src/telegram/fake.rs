//! [`FakeTelegram`]: the server, its shared state and the test-side API.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::sync::{oneshot, watch};

use super::state::BotState;
use super::types::{
    ChatAction, FakeFailure, FakeTelegramOptions, InjectMessage, SentMessage, WebhookAttempt,
    WebhookSetting,
};
use super::{api, control, webhook};
use crate::TestkitError;
use crate::server::{ServerHandle, lock, unix_now};

/// The `getUpdates` request currently waiting for updates.
pub(crate) struct ActivePoll {
    pub(crate) id: u64,
    /// Fired when a newer `getUpdates` (or `setWebhook`) terminates this one.
    pub(crate) terminate: oneshot::Sender<&'static str>,
}

pub(crate) struct Inner {
    pub(crate) bot: BotState,
    pub(crate) poll: Option<ActivePoll>,
    pub(crate) next_poll_id: u64,
    /// Where webhook POSTs go over plain HTTP (see [`FakeTelegram::deliver_webhooks_via`]).
    pub(crate) webhook_via: Option<SocketAddr>,
    /// Every webhook POST, oldest first.
    pub(crate) webhook_attempts: Vec<WebhookAttempt>,
}

/// State shared by the API handlers, the control API and [`FakeTelegram`].
pub(crate) struct Shared {
    pub(crate) inner: Mutex<Inner>,
    /// Bumped whenever an update is queued (or the webhook changes), to wake long polls
    /// and the webhook delivery.
    pub(crate) updates: watch::Sender<u64>,
    /// Bumped whenever the bot sends a message, to wake `wait_for_sent`.
    pub(crate) sent: watch::Sender<usize>,
    /// Bumped after every webhook POST, to wake `wait_for_webhook_attempts`.
    pub(crate) attempts: watch::Sender<usize>,
    pub(crate) stop: watch::Receiver<bool>,
    /// `getUpdates` calls answered 409 because another `getUpdates` overlapped them.
    pub(crate) conflicts: std::sync::atomic::AtomicUsize,
}

impl Shared {
    pub(crate) fn inject(&self, message: InjectMessage) -> Result<i64, TestkitError> {
        let update_id = {
            let mut inner = lock(&self.inner);
            inner.bot.inject(message, unix_now())?
        };
        self.updates.send_modify(|version| *version += 1);
        // Filtered out by allowed_updates: Telegram never delivers it; report id 0.
        Ok(update_id.unwrap_or(0))
    }
}

/// A fake Telegram Bot API on loopback. Dropping it stops the server.
///
/// ```no_run
/// # async fn demo() -> Result<(), pincer_testkit::TestkitError> {
/// use pincer_testkit::{FakeTelegram, FakeTelegramOptions, InjectMessage};
/// let fake = FakeTelegram::start(FakeTelegramOptions::default()).await?;
/// fake.inject_message(InjectMessage::private(42, "hello"))?;
/// // point the bridge at fake.base_url(); then:
/// let replies = fake.wait_for_sent(1, std::time::Duration::from_secs(5)).await?;
/// # let _ = replies; Ok(()) }
/// ```
pub struct FakeTelegram {
    shared: Arc<Shared>,
    server: ServerHandle,
    token: String,
}

impl FakeTelegram {
    /// Starts the fake on `127.0.0.1:0`.
    pub async fn start(options: FakeTelegramOptions) -> Result<Self, TestkitError> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), options).await
    }

    /// Starts the fake on a chosen address (the binary uses this).
    pub async fn start_on(
        addr: SocketAddr,
        options: FakeTelegramOptions,
    ) -> Result<Self, TestkitError> {
        let token = options.token.clone();
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                bot: BotState::new(options),
                poll: None,
                next_poll_id: 0,
                webhook_via: None,
                webhook_attempts: Vec::new(),
            }),
            updates: watch::channel(0).0,
            sent: watch::channel(0).0,
            attempts: watch::channel(0).0,
            stop: stop_rx,
            conflicts: std::sync::atomic::AtomicUsize::new(0),
        });
        let router = Router::new()
            .route("/_fake/health", get(control::health))
            .route("/_fake/messages", post(control::inject))
            .route("/_fake/sent", get(control::sent))
            .route("/_fake/actions", get(control::actions))
            .route("/_fake/fail", post(control::fail))
            .route("/{bot}/{method}", get(api::handle).post(api::handle))
            .with_state(Arc::clone(&shared));
        let server = ServerHandle::serve(addr, router, stop, "telegram").await?;
        // Ends when the server stops (the `stop` watch).
        tokio::spawn(webhook::deliver(Arc::clone(&shared)));
        Ok(Self {
            shared,
            server,
            token,
        })
    }

    /// `http://IP:PORT`, the Bot API server root (clients call `{base_url}/bot{token}/getMe`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// `{base_url}/bot{token}`, the prefix of every method URL.
    pub fn bot_url(&self) -> String {
        format!("{}/bot{}", self.base_url(), self.token)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Queues a user message as an `Update`; returns its `update_id` (0 when the bot's
    /// `allowed_updates` exclude messages, as Telegram would then never deliver it).
    pub fn inject_message(&self, message: InjectMessage) -> Result<i64, TestkitError> {
        self.shared.inject(message)
    }

    /// How many `getUpdates` long polls were ended with 409 Conflict because a newer
    /// `getUpdates` for the token arrived while they waited: two pollers overlapped.
    pub fn get_updates_conflicts(&self) -> usize {
        self.shared
            .conflicts
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Messages the bot sent, oldest first.
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        lock(&self.shared.inner).bot.sent.clone()
    }

    /// Waits until the bot has sent at least `count` messages; returns all sent so far.
    pub async fn wait_for_sent(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<SentMessage>, TestkitError> {
        let mut sent = self.shared.sent.subscribe();
        let reached = tokio::time::timeout(timeout, sent.wait_for(|sent| *sent >= count)).await;
        let messages = self.sent_messages();
        match reached {
            Ok(Ok(_)) => Ok(messages),
            _ => Err(TestkitError::WaitTimeout {
                wanted: count,
                got: messages.len(),
                waited: timeout,
            }),
        }
    }

    /// `sendChatAction` calls, oldest first.
    pub fn chat_actions(&self) -> Vec<ChatAction> {
        lock(&self.shared.inner).bot.actions.clone()
    }

    /// The highest `offset` the bot has confirmed with `getUpdates` (0 before any).
    pub fn confirmed_offset(&self) -> i64 {
        lock(&self.shared.inner).bot.confirmed_offset()
    }

    /// Updates queued and not yet confirmed.
    pub fn pending_update_count(&self) -> usize {
        lock(&self.shared.inner).bot.pending_update_count()
    }

    /// The webhook URL set with `setWebhook`, if any.
    pub fn webhook_url(&self) -> Option<String> {
        lock(&self.shared.inner)
            .bot
            .webhook
            .as_ref()
            .map(|hook| hook.url.clone())
    }

    /// The webhook set with `setWebhook`, with its secret token and `allowed_updates`.
    pub fn webhook(&self) -> Option<WebhookSetting> {
        lock(&self.shared.inner).bot.webhook.clone()
    }

    /// Delivers webhook POSTs over plain HTTP to `addr`, keeping the webhook URL's path
    /// (a stand-in for the TLS-terminating proxy in front of the real endpoint). `None`
    /// stops delivering. Without it the webhook is only recorded, as `https://` cannot be
    /// served here.
    pub fn deliver_webhooks_via(&self, addr: Option<SocketAddr>) {
        lock(&self.shared.inner).webhook_via = addr;
        self.shared.updates.send_modify(|version| *version += 1);
    }

    /// Every webhook POST so far (each with its HTTP status), oldest first.
    pub fn webhook_attempts(&self) -> Vec<WebhookAttempt> {
        lock(&self.shared.inner).webhook_attempts.clone()
    }

    /// How many updates the webhook accepted (answered 2xx).
    pub fn webhook_deliveries(&self) -> usize {
        lock(&self.shared.inner)
            .webhook_attempts
            .iter()
            .filter(|attempt| {
                attempt
                    .status
                    .is_some_and(|code| (200..300).contains(&code))
            })
            .count()
    }

    /// Waits until `check` holds for the webhook attempts so far; returns them.
    pub async fn wait_for_webhook_attempts(
        &self,
        check: impl Fn(&[WebhookAttempt]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<WebhookAttempt>, TestkitError> {
        let mut attempts = self.shared.attempts.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            loop {
                attempts.borrow_and_update();
                let now = self.webhook_attempts();
                if check(&now) {
                    return now;
                }
                if attempts.changed().await.is_err() {
                    // The sender lives in `shared`, which `self` holds: cannot happen.
                    std::future::pending::<()>().await;
                }
            }
        })
        .await;
        waited.map_err(|_| {
            let got = self.webhook_attempts().len();
            TestkitError::WaitTimeout {
                wanted: got + 1,
                got,
                waited: timeout,
            }
        })
    }

    /// Makes the next call of `method` (case-insensitive, e.g. `sendMessage`) fail.
    /// Several failures for one method are returned in order.
    pub fn fail_next(&self, method: &str, failure: FakeFailure) {
        lock(&self.shared.inner).bot.fail_next(method, failure);
    }

    /// Failures queued with [`Self::fail_next`] for `method` that no call has hit yet.
    pub fn failures_left(&self, method: &str) -> usize {
        lock(&self.shared.inner).bot.failures_left(method)
    }

    /// Stops the server; pending long polls return an empty result first.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
