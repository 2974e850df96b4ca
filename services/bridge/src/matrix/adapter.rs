//! [`MatrixAdapter`]: one bot account as a [`ChannelAdapter`].
//!
//! Inbound: `whoami` once (and the bot's display name, for mention detection), then the
//! persisted sync token from the account data `org.pincer.sync`, then `/sync` long polling
//! with an inline filter (messages, encrypted events and members; lazy-loaded members; no
//! presence, account data or ephemeral events). Each sync is a batch: its messages are
//! handed out with ack handles, and only when every one of them is acked does the token
//! move to the batch's `next_batch` (and get persisted, so another replica continues from
//! there). A dropped handle or an ack timeout discards the batch, and the next sync starts
//! again from the old token, so the homeserver sends the unacked events again (the gateway
//! de-duplicates by event id). A first start without a token syncs once with `timeout=0`,
//! handles pending invites, skips the history and persists that token; so does a sync
//! whose stored token the homeserver refuses (4xx), after logging an error.
//!
//! Invites are decided by the [`InvitePolicy`] (join or reject, never anything else) while
//! a sync is processed. Encrypted rooms are not supported: an `m.room.encrypted` event is
//! skipped and logged once per room (the bot does not post a notice, so it never writes
//! into a room it cannot read).
//!
//! Limits: one sync carries at most 50 events per room (a larger burst is cut, with a
//! warning); the member count that tells direct from group chats is the current one; a
//! newly joined room may deliver the messages visible to the bot from before its join.
//!
//! Outbound: Markdown chunks of 16 000 chars, each rendered to a plain `body` and an HTML
//! `formatted_body` and sent with a deterministic transaction id (see
//! [`super::outbound`]); typing via `PUT /rooms/{room}/typing/{user}`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use pincer_proto::v1::{ChannelAccount, ChatKind};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::{Mutex, OnceCell};

use super::CHANNEL;
use super::client::{CALL_TIMEOUT, Credentials, MatrixClient};
use super::normalize::{BotIdentity, Normalized, RoomContext, member_name, normalize, our_invite};
use super::outbound::{message_content, txn_id};
use super::settings::{InviteDecision, InvitePolicy, MAX_SYNC_TIMEOUT, MatrixSettings};
use super::wire::{Event, JoinedRoom, SendAnswer, SyncResponse, UserIdAnswer};
use crate::adapter::{
    AckHandle, AckState, AckWatch, AdapterError, ChannelAdapter, ChatTarget, InboundItem,
    OutboundText, PlatformError, SendFailure, SentRefs,
};
use crate::chunk::{LengthUnit, split_text};

/// The longest chunk of a reply, in chars (events are limited to 64 KiB of JSON; the
/// HTML rendering roughly doubles the text).
pub const MESSAGE_LIMIT: usize = 16_000;
/// The account data type holding the sync token.
pub const SYNC_TOKEN_TYPE: &str = "org.pincer.sync";
/// How long before the lease's end every long poll must be over.
const LEASE_MARGIN: Duration = Duration::from_secs(1);
/// Extra HTTP time over the long-poll timeout before the request counts as hung.
const POLL_GRACE: Duration = Duration::from_secs(10);
/// How many of our own event ids are remembered (to recognise replies to the bot).
const SENT_MEMORY: usize = 1024;
/// The most timeline events per room in one sync.
const TIMELINE_LIMIT: u32 = 50;
/// How many rooms' member counts and names are cached before the cache is reset.
const ROOM_MEMORY: usize = 10_000;

/// The sync filter: what the bot needs and nothing else.
fn sync_filter(timeline_limit: u32) -> String {
    json!({
        "presence": { "types": [] },
        "account_data": { "types": [] },
        "room": {
            "timeline": {
                "types": ["m.room.message", "m.room.encrypted", "m.room.member"],
                "limit": timeline_limit,
            },
            "state": { "types": ["m.room.member"], "lazy_load_members": true },
            "ephemeral": { "types": [] },
            "account_data": { "types": [] },
            "include_leave": false,
        },
    })
    .to_string()
}

/// The `/sync` timeout so the poll ends [`LEASE_MARGIN`] before `lease_until`: the
/// configured timeout, shortened to whole seconds of what is left (0: a short poll).
/// `None` when not even a short poll fits.
fn poll_timeout_within(
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

/// A Matrix bot account.
#[derive(Debug)]
pub struct MatrixAdapter {
    client: MatrixClient,
    account: ChannelAccount,
    configured_user: Option<String>,
    invites: InvitePolicy,
    sync_timeout: Duration,
    ack_timeout: Duration,
    identity: OnceCell<BotIdentity>,
    sync: Mutex<SyncState>,
    rooms: std::sync::Mutex<RoomCache>,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Read the persisted token yet?
    loaded: bool,
    /// The token to sync from: everything before it was acked (or skipped).
    since: Option<String>,
    /// The token last stored in the account data.
    persisted: Option<String>,
    /// The batch being handed out.
    batch: Option<Batch>,
}

#[derive(Debug)]
struct Batch {
    next_batch: String,
    ready: VecDeque<InboundItem>,
    watches: Vec<AckWatch>,
    /// Did the sync carry anything (so its token is worth persisting)?
    eventful: bool,
}

/// What the adapter learnt about rooms.
#[derive(Debug, Default)]
struct RoomCache {
    joined_members: HashMap<String, u64>,
    names: HashMap<String, HashMap<String, String>>,
    sent: VecDeque<String>,
    sent_set: HashSet<String>,
    warned_encrypted: HashSet<String>,
}

impl RoomCache {
    fn remember_sent(&mut self, event_id: &str) {
        if !self.sent_set.insert(event_id.to_owned()) {
            return;
        }
        self.sent.push_back(event_id.to_owned());
        while self.sent.len() > SENT_MEMORY {
            if let Some(old) = self.sent.pop_front() {
                self.sent_set.remove(&old);
            }
        }
    }

    fn learn(&mut self, room_id: &str, room: &JoinedRoom) {
        if self.joined_members.len() > ROOM_MEMORY || self.names.len() > ROOM_MEMORY {
            self.joined_members.clear();
            self.names.clear();
        }
        if let Some(count) = room.summary.joined_member_count {
            self.joined_members.insert(room_id.to_owned(), count);
        }
        for event in room.state.events.iter().chain(&room.timeline.events) {
            if let Some((user, name)) = member_name(event) {
                let names = self.names.entry(room_id.to_owned()).or_default();
                match name {
                    Some(name) => names.insert(user.to_owned(), name.to_owned()),
                    None => names.remove(user),
                };
            }
        }
    }
}

/// Where the acks of a batch stand.
enum BatchState {
    AllAcked,
    Dropped,
    Pending,
}

fn batch_state(watches: &mut [AckWatch]) -> BatchState {
    let mut pending = false;
    for watch in watches {
        match watch.state() {
            AckState::Acked => {}
            AckState::Dropped => return BatchState::Dropped,
            AckState::Pending => pending = true,
        }
    }
    if pending {
        BatchState::Pending
    } else {
        BatchState::AllAcked
    }
}

impl MatrixAdapter {
    /// An adapter for one bot account. Validates the settings; does no I/O (login and
    /// `whoami` run on first use).
    pub fn new(settings: MatrixSettings) -> Result<Self, PlatformError> {
        settings.validate()?;
        let client = MatrixClient::new(
            &settings.homeserver,
            Credentials {
                access_token: settings.access_token,
                user_id: settings.user_id.clone(),
                password: settings.password,
                device_id: settings.device_id,
            },
        )?;
        Ok(Self {
            client,
            account: ChannelAccount {
                channel: CHANNEL.to_owned(),
                account_id: settings.account_id,
            },
            configured_user: settings.user_id,
            invites: settings.invites,
            sync_timeout: settings.sync_timeout.min(MAX_SYNC_TIMEOUT),
            ack_timeout: settings.ack_timeout,
            identity: OnceCell::new(),
            sync: Mutex::new(SyncState::default()),
            rooms: std::sync::Mutex::new(RoomCache::default()),
        })
    }

    /// The bot's identity (`whoami`, then its display name), fetched once.
    pub async fn identity(&self) -> Result<&BotIdentity, PlatformError> {
        self.identity
            .get_or_try_init(|| async {
                let me: UserIdAnswer = self
                    .client
                    .call(Method::GET, &["account", "whoami"], &[], None, CALL_TIMEOUT)
                    .await?;
                if let Some(configured) = &self.configured_user
                    && *configured != me.user_id
                {
                    return Err(PlatformError::operator(
                        CHANNEL,
                        format!(
                            "the access token belongs to {} but user_id {configured} is configured",
                            me.user_id
                        ),
                    ));
                }
                let profile: Option<Value> = self
                    .client
                    .call_optional(
                        Method::GET,
                        &["profile", &me.user_id, "displayname"],
                        CALL_TIMEOUT,
                    )
                    .await
                    .unwrap_or_else(|e| {
                        tracing::debug!(error = %e, "cannot read the bot's display name");
                        None
                    });
                let display_name = profile
                    .as_ref()
                    .and_then(|p| p.get("displayname"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                tracing::info!(user_id = %me.user_id, "Matrix bot identified");
                Ok(BotIdentity {
                    user_id: me.user_id,
                    display_name,
                })
            })
            .await
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, RoomCache> {
        // A panic while holding this lock cannot leave the cache inconsistent in a way
        // that matters (it is only a cache), so a poisoned lock is used as is.
        self.rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn load_since(&self, bot: &BotIdentity) -> Result<Option<String>, PlatformError> {
        let stored: Option<Value> = self
            .client
            .call_optional(
                Method::GET,
                &["user", &bot.user_id, "account_data", SYNC_TOKEN_TYPE],
                CALL_TIMEOUT,
            )
            .await?;
        Ok(stored
            .as_ref()
            .and_then(|s| s.get("since"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned))
    }

    async fn persist(&self, state: &mut SyncState, bot: &BotIdentity) -> Result<(), PlatformError> {
        let Some(since) = state.since.clone() else {
            return Ok(());
        };
        if state.persisted.as_deref() == Some(since.as_str()) {
            return Ok(());
        }
        let _: Value = self
            .client
            .call(
                Method::PUT,
                &["user", &bot.user_id, "account_data", SYNC_TOKEN_TYPE],
                &[],
                Some(&json!({ "since": since })),
                CALL_TIMEOUT,
            )
            .await?;
        state.persisted = Some(since);
        Ok(())
    }

    /// Moves the token past a fully acked batch, persisting it when the batch carried
    /// anything (a failed write is retried with the next batch or on flush).
    async fn commit(
        &self,
        state: &mut SyncState,
        bot: &BotIdentity,
        next_batch: String,
        eventful: bool,
    ) {
        state.since = Some(next_batch);
        if eventful && let Err(e) = self.persist(state, bot).await {
            tracing::warn!(error = %e, "cannot store the Matrix sync token; will retry");
        }
    }

    async fn sync_once(
        &self,
        since: Option<&str>,
        timeout: Duration,
        request_timeout: Duration,
        timeline_limit: u32,
    ) -> Result<SyncResponse, PlatformError> {
        let mut query = vec![
            ("filter", sync_filter(timeline_limit)),
            ("timeout", timeout.as_millis().to_string()),
        ];
        if let Some(since) = since {
            query.push(("since", since.to_owned()));
        }
        self.client
            .call(Method::GET, &["sync"], &query, None, request_timeout)
            .await
    }

    async fn next_inbound_inner(&self, lease_until: Instant) -> Result<InboundItem, AdapterError> {
        let bot = self.identity().await?;
        let mut state = self.sync.lock().await;
        if !state.loaded {
            state.since = self.load_since(bot).await?;
            state.persisted = state.since.clone();
            state.loaded = true;
        }
        loop {
            if let Some(batch) = &mut state.batch {
                if let Some(item) = batch.ready.pop_front() {
                    return Ok(item);
                }
                match batch_state(&mut batch.watches) {
                    BatchState::AllAcked => {
                        let done = state.batch.take();
                        if let Some(batch) = done {
                            self.commit(&mut state, bot, batch.next_batch, batch.eventful)
                                .await;
                        }
                    }
                    BatchState::Dropped => {
                        tracing::debug!(
                            "a Matrix message was not acknowledged; syncing again from the confirmed token"
                        );
                        state.batch = None;
                    }
                    BatchState::Pending => {
                        let pending = batch
                            .watches
                            .iter_mut()
                            .position(|w| w.state() == AckState::Pending)
                            .and_then(|i| batch.watches.get_mut(i));
                        if let Some(watch) = pending
                            && tokio::time::timeout(self.ack_timeout, watch.settled())
                                .await
                                .is_err()
                        {
                            tracing::warn!(
                                waited_s = self.ack_timeout.as_secs(),
                                "the gateway did not acknowledge Matrix messages in time; reading them again"
                            );
                            state.batch = None;
                        }
                    }
                }
                continue;
            }
            let now = Instant::now();
            let first_start = state.since.is_none();
            let fits = poll_timeout_within(self.sync_timeout, lease_until, now).ok_or(
                AdapterError::LeaseEnding {
                    margin_ms: LEASE_MARGIN.as_millis() as u64,
                },
            )?;
            // The first sync only takes the current position: no long poll.
            let timeout = if first_start { Duration::ZERO } else { fits };
            let request_timeout = (timeout + POLL_GRACE)
                .min(lease_until.saturating_duration_since(now))
                .max(Duration::from_secs(1));
            let since = state.since.clone();
            let synced = self
                .sync_once(
                    since.as_deref(),
                    timeout,
                    request_timeout,
                    if first_start { 1 } else { TIMELINE_LIMIT },
                )
                .await;
            let response = match synced {
                Ok(response) => response,
                Err(e) if !first_start && !e.retryable && !e.needs_operator => {
                    // The homeserver no longer knows the token (a reset, an expired
                    // position): start again from now, like a first start.
                    tracing::error!(error = %e, "the homeserver refused the stored Matrix sync token; continuing from now, messages since then may be missed");
                    state.since = None;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let batch = self.process(response, bot, first_start).await?;
            if first_start {
                tracing::info!("first Matrix sync: skipping the history before now");
                self.commit(&mut state, bot, batch.next_batch, true).await;
                continue;
            }
            if batch.ready.is_empty() {
                self.commit(&mut state, bot, batch.next_batch, batch.eventful)
                    .await;
                if timeout.is_zero() {
                    // Without long polling an empty answer comes back at once: do not spin.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                continue;
            }
            state.batch = Some(batch);
        }
    }

    /// Handles a sync's invites and turns its messages into a batch (history skipped on
    /// the first start).
    async fn process(
        &self,
        response: SyncResponse,
        bot: &BotIdentity,
        skip_history: bool,
    ) -> Result<Batch, PlatformError> {
        let mut eventful = !response.rooms.invite.is_empty();
        for (room_id, invite) in &response.rooms.invite {
            self.handle_invite(room_id, &invite.invite_state.events, bot)
                .await?;
        }
        let mut batch = Batch {
            next_batch: response.next_batch,
            ready: VecDeque::new(),
            watches: Vec::new(),
            eventful: false,
        };
        for (room_id, room) in &response.rooms.join {
            eventful |= !room.timeline.events.is_empty();
            self.cache().learn(room_id, room);
            if skip_history {
                continue;
            }
            if room.timeline.limited {
                tracing::warn!(
                    room_id,
                    limit = TIMELINE_LIMIT,
                    "more Matrix events arrived in a room than one sync carries; older ones were skipped"
                );
            }
            let needs_kind = room
                .timeline
                .events
                .iter()
                .any(|e| e.kind == "m.room.message" && e.sender != bot.user_id);
            let chat_kind = if needs_kind {
                self.chat_kind(room_id).await
            } else {
                ChatKind::Group
            };
            for event in &room.timeline.events {
                self.handle_event(room_id, event, chat_kind, bot, &mut batch)
                    .await;
            }
        }
        batch.eventful = eventful;
        Ok(batch)
    }

    async fn handle_event(
        &self,
        room_id: &str,
        event: &Event,
        chat_kind: ChatKind,
        bot: &BotIdentity,
        batch: &mut Batch,
    ) {
        if event.sender == bot.user_id && !event.event_id.is_empty() {
            self.cache().remember_sent(&event.event_id);
        }
        let sender_name = self
            .cache()
            .names
            .get(room_id)
            .and_then(|names| names.get(&event.sender))
            .cloned();
        let room = RoomContext {
            room_id,
            chat_kind,
            sender_name: sender_name.as_deref(),
        };
        match normalize(event, room, bot, &self.account) {
            Normalized::Message {
                mut message,
                in_reply_to,
            } => {
                if !message.mentions_bot
                    && let Some(replied) = in_reply_to
                {
                    message.mentions_bot = self.is_ours(room_id, &replied, bot).await;
                }
                let (ack, watch) = AckHandle::new();
                batch.ready.push_back(InboundItem {
                    message: *message,
                    ack,
                });
                batch.watches.push(watch);
            }
            Normalized::Encrypted => {
                let first_time = self.cache().warned_encrypted.insert(room_id.to_owned());
                if first_time {
                    tracing::warn!(
                        room_id,
                        "encrypted Matrix rooms are not supported; the bot cannot read this room's messages"
                    );
                }
            }
            Normalized::Skip(reason) => {
                tracing::debug!(room_id, event_id = %event.event_id, reason, "skipping Matrix event");
            }
        }
    }

    /// Direct when the room has exactly two joined members (the bot and the sender).
    async fn chat_kind(&self, room_id: &str) -> ChatKind {
        let cached = self.cache().joined_members.get(room_id).copied();
        let count = match cached {
            Some(count) => Some(count),
            None => {
                let members: Result<Value, _> = self
                    .client
                    .call(
                        Method::GET,
                        &["rooms", room_id, "joined_members"],
                        &[],
                        None,
                        CALL_TIMEOUT,
                    )
                    .await;
                match members {
                    Ok(members) => {
                        let count = members
                            .get("joined")
                            .and_then(Value::as_object)
                            .map(|m| m.len() as u64);
                        if let Some(count) = count {
                            self.cache()
                                .joined_members
                                .insert(room_id.to_owned(), count);
                        }
                        count
                    }
                    Err(e) => {
                        tracing::debug!(room_id, error = %e, "cannot count the room's members; treating it as a group");
                        None
                    }
                }
            }
        };
        if count == Some(2) {
            ChatKind::Direct
        } else {
            ChatKind::Group
        }
    }

    /// Whether `event_id` was sent by the bot (cache, then a lookup).
    async fn is_ours(&self, room_id: &str, event_id: &str, bot: &BotIdentity) -> bool {
        if self.cache().sent_set.contains(event_id) {
            return true;
        }
        let event: Result<Option<Event>, _> = self
            .client
            .call_optional(
                Method::GET,
                &["rooms", room_id, "event", event_id],
                CALL_TIMEOUT,
            )
            .await;
        match event {
            Ok(Some(event)) => {
                let ours = event.sender == bot.user_id;
                if ours {
                    self.cache().remember_sent(event_id);
                }
                ours
            }
            Ok(None) => false,
            Err(e) => {
                tracing::debug!(room_id, event_id, error = %e, "cannot look up the replied-to event");
                false
            }
        }
    }

    async fn handle_invite(
        &self,
        room_id: &str,
        invite_state: &[Event],
        bot: &BotIdentity,
    ) -> Result<(), PlatformError> {
        let (inviter, is_direct) = our_invite(invite_state, &bot.user_id).unwrap_or(("", false));
        let decision = self.invites.decide(room_id, inviter, is_direct);
        let action = match decision {
            InviteDecision::Join => "join",
            InviteDecision::Reject => "leave",
        };
        tracing::info!(room_id, inviter, is_direct, action, "Matrix room invite");
        let outcome: Result<Value, PlatformError> = self
            .client
            .call(
                Method::POST,
                &["rooms", room_id, action],
                &[],
                Some(&json!({})),
                CALL_TIMEOUT,
            )
            .await;
        match outcome {
            Ok(_) => Ok(()),
            Err(e) if e.retryable => Err(e),
            Err(e) => {
                // The invite was withdrawn or the room is gone: nothing left to decide.
                tracing::warn!(room_id, action, error = %e, "cannot act on a Matrix invite");
                Ok(())
            }
        }
    }

    async fn send_inner(&self, out: OutboundText) -> Result<SentRefs, SendFailure> {
        let fail = |error: AdapterError| SendFailure {
            sent: Vec::new(),
            error,
        };
        check_id(
            &out.chat_id,
            '!',
            "chat_id",
            "use a Matrix room id (!room:server)",
        )
        .map_err(fail)?;
        let thread = out.thread_id.as_deref().filter(|t| !t.is_empty());
        if let Some(thread) = thread {
            check_id(thread, '$', "thread_id", "use the thread root's event id").map_err(fail)?;
        }
        let reply_to = out.reply_to.as_deref().filter(|r| r.starts_with('$'));
        if out.text.trim().is_empty() {
            return Err(fail(bad_target(
                "text",
                &out.text,
                "Matrix messages must not be empty",
            )));
        }
        let mut sent = Vec::new();
        let chunks = split_text(&out.text, MESSAGE_LIMIT, LengthUnit::Chars);
        for (index, chunk) in chunks.iter().enumerate().skip(out.skip_chunks) {
            let timeout = match out.lease_until {
                None => CALL_TIMEOUT,
                Some(until) => {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(SendFailure {
                            sent,
                            error: PlatformError::transient(
                                CHANNEL,
                                format!("the lease ended before chunk {index} was sent"),
                            )
                            .into(),
                        });
                    }
                    left.min(CALL_TIMEOUT)
                }
            };
            let txn = txn_id(&out.chat_id, thread, reply_to, index, &out.text, chunk);
            let content = message_content(chunk, index, reply_to, thread);
            let answer: Result<SendAnswer, _> = self
                .client
                .call(
                    Method::PUT,
                    &["rooms", &out.chat_id, "send", "m.room.message", &txn],
                    &[],
                    Some(&content),
                    timeout,
                )
                .await;
            match answer {
                Ok(answer) => {
                    self.cache().remember_sent(&answer.event_id);
                    sent.push(answer.event_id);
                }
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
        check_id(
            &target.chat_id,
            '!',
            "chat_id",
            "use a Matrix room id (!room:server)",
        )?;
        let bot = self.identity().await?;
        let _: Value = self
            .client
            .call(
                Method::PUT,
                &["rooms", &target.chat_id, "typing", &bot.user_id],
                &[],
                Some(&json!({ "typing": true, "timeout": 30_000 })),
                Duration::from_secs(10),
            )
            .await?;
        Ok(())
    }

    async fn flush_inner(&self) -> Result<(), AdapterError> {
        let Some(bot) = self.identity.get() else {
            return Ok(());
        };
        let mut state = self.sync.lock().await;
        if let Some(batch) = &mut state.batch
            && batch.ready.is_empty()
            && matches!(batch_state(&mut batch.watches), BatchState::AllAcked)
            && let Some(batch) = state.batch.take()
        {
            state.since = Some(batch.next_batch);
        }
        self.persist(&mut state, bot).await?;
        Ok(())
    }
}

impl ChannelAdapter for MatrixAdapter {
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
        value: value.chars().take(100).collect(),
        reason,
    }
}

/// A room (`!`) or event (`$`) id: the sigil, then something, no whitespace.
fn check_id(
    id: &str,
    sigil: char,
    field: &'static str,
    reason: &'static str,
) -> Result<(), AdapterError> {
    let valid = id.len() > 1
        && id.len() <= 255
        && id.starts_with(sigil)
        && !id.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(())
    } else {
        Err(bad_target(field, id, reason))
    }
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
        assert_eq!(poll_timeout_within(thirty, at(60_000), now), Some(thirty));
        assert_eq!(
            poll_timeout_within(thirty, at(1_500), now),
            Some(Duration::ZERO)
        );
        assert_eq!(poll_timeout_within(thirty, at(1_000), now), None);
        assert_eq!(poll_timeout_within(thirty, now, at(10)), None);
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id("!r:x", '!', "chat_id", "").is_ok());
        assert!(check_id("#alias:x", '!', "chat_id", "").is_err());
        assert!(check_id("!", '!', "chat_id", "").is_err());
        assert!(check_id("!a b:x", '!', "chat_id", "").is_err());
        assert!(check_id("$e", '$', "thread_id", "").is_ok());
    }

    #[test]
    fn sent_ids_are_bounded() {
        let mut cache = RoomCache::default();
        for i in 0..(SENT_MEMORY + 10) {
            cache.remember_sent(&format!("$e{i}"));
        }
        assert_eq!(cache.sent.len(), SENT_MEMORY);
        assert_eq!(cache.sent_set.len(), SENT_MEMORY);
        assert!(!cache.sent_set.contains("$e0"));
        assert!(cache.sent_set.contains(&format!("$e{}", SENT_MEMORY + 9)));
    }

    #[test]
    fn batches_settle_on_all_acks() {
        let (a, mut wa) = AckHandle::new();
        let (b, wb) = AckHandle::new();
        let mut watches = vec![AckWatch::acked(), wb];
        assert!(matches!(batch_state(&mut watches), BatchState::Pending));
        b.ack();
        assert!(matches!(batch_state(&mut watches), BatchState::AllAcked));
        drop(a);
        assert_eq!(wa.state(), AckState::Dropped);
        let mut watches = vec![wa];
        assert!(matches!(batch_state(&mut watches), BatchState::Dropped));
    }

    #[test]
    fn the_filter_is_json() {
        let filter: Value = serde_json::from_str(&sync_filter(50)).unwrap_or_default();
        assert_eq!(filter["room"]["state"]["lazy_load_members"], true);
        assert_eq!(filter["room"]["timeline"]["limit"], 50);
    }
}
