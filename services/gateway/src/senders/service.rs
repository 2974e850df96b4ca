//! [`SenderAccess`]: the inbound decision end to end, and the owner's pairing methods.
//!
//! For each channel message: de-duplicate, classify the sender (owners, `allowFrom`,
//! paired senders — never the message's content), judge it ([`super::policy`]), pick its
//! session ([`crate::routing`]), and record the outcome in one transaction
//! ([`crate::store::ingress`]). Strangers under `pairing` go to the code book: a new request
//! is persisted together with the only delivery of its code, and made visible afterwards.
//! The book lives behind one lock, so decisions about one stranger never interleave.

use std::collections::HashMap;
use std::sync::Arc;

use pincer_runtime::config::validate::{ChannelAccessConfig, DmScope, SessionConfig};
use serde_json::{Value, json};
use tokio::sync::{Mutex, Notify};

use super::codes::{
    CodeError, PairedSender, PairingCode, RequestOutcome, RequestState, SenderBook, SenderKey,
    SenderRequest,
};
use super::commands::{
    APPROVE_USAGE, ApproveArgs, ChatCommand, NEW_SESSION_TEXT, StatusFacts, help_text,
};
use super::policy::{IgnoreReason, MessageFacts, SenderClass, Verdict, classify, judge};
use crate::approvals::{Approvals, ApprovalsError};
use crate::operator::events::EventBus;
use crate::routing::{ChatKind, Route, SessionKey};
use crate::store::db::now_ms;
use crate::store::inbound::Enqueued;
use crate::store::ingress::{self, Effect, IngressRecord, ReplyText};
use crate::store::senders as table;
use crate::store::{Store, StoreError};

/// A channel message as the bridge normalised it (already checked for shape).
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Channel.
    pub channel: String,
    /// Channel account.
    pub account_id: String,
    /// Unique per account.
    pub platform_message_id: String,
    /// The sender's stable id.
    pub sender_id: String,
    /// The chat.
    pub chat_id: String,
    /// DM or group.
    pub kind: ChatKind,
    /// Thread or topic, or empty.
    pub thread_id: String,
    /// The text.
    pub text: String,
    /// The bridge saw a platform mention of the bot or a reply to it.
    pub mentions_bot: bool,
}

/// Why an owner's pairing operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    /// The code book refused it.
    #[error(transparent)]
    Code(#[from] CodeError),
    /// The database failed; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`SenderAccess`] needs.
#[derive(Debug)]
pub struct SenderAccessSetup {
    /// The database.
    pub store: Store,
    /// Access rules per channel name.
    pub policies: HashMap<String, ChannelAccessConfig>,
    /// `session`.
    pub session: SessionConfig,
    /// The agent every session talks to.
    pub agent_id: String,
    /// Exec approvals (for `/approve`).
    pub approvals: Arc<Approvals>,
    /// Operator events.
    pub bus: EventBus,
    /// Woken when a turn is queued.
    pub inbound_ready: Arc<Notify>,
    /// Woken when a reply is queued.
    pub outbox_ready: Arc<Notify>,
}

/// Sender access for chat channels.
#[derive(Debug)]
pub struct SenderAccess {
    setup: SenderAccessSetup,
    book: Mutex<SenderBook>,
}

impl SenderAccess {
    /// Loads pending requests and paired senders from the database.
    pub async fn open(setup: SenderAccessSetup) -> Result<Self, StoreError> {
        let (requests, paired) = setup.store.call(|c| table::load(c)).await?;
        Ok(Self {
            book: Mutex::new(SenderBook::restore(requests, paired)),
            setup,
        })
    }

    /// Decides and records one channel message.
    pub async fn handle(&self, m: Incoming) -> Result<Enqueued, StoreError> {
        let s = &self.setup;
        let (ch, acct, pmid) = (
            m.channel.clone(),
            m.account_id.clone(),
            m.platform_message_id.clone(),
        );
        if let Some(id) = s
            .store
            .call(move |c| ingress::existing(c, &ch, &acct, &pmid))
            .await?
        {
            return Ok(Enqueued::Duplicate(id));
        }
        let now = now_ms();
        let mut book = self.book.lock().await;
        self.forget_stale(&mut book, now).await?;
        let policy = s.policies.get(&m.channel);
        let class = policy.map_or(SenderClass::Stranger, |p| {
            classify(p, |id| book.is_paired(&m.channel, id), &m.sender_id)
        });
        let facts = MessageFacts {
            kind: m.kind,
            sender_id: &m.sender_id,
            chat_id: &m.chat_id,
            text: &m.text,
            mentions_bot: m.mentions_bot,
        };
        let verdict = match policy {
            Some(p) => judge(p, class, &facts),
            None => Verdict::Ignore(IgnoreReason::UnknownChannel),
        };
        let base_key = SessionKey::route(
            &s.session,
            &Route {
                agent: &s.agent_id,
                channel: &m.channel,
                account: &m.account_id,
                kind: m.kind,
                sender_id: &m.sender_id,
                chat_id: &m.chat_id,
                thread_id: &m.thread_id,
                owner: class == SenderClass::Owner,
            },
        );
        let mut issued = None;
        let (effect, note) = match verdict {
            Verdict::Turn => (Effect::Turn, String::new()),
            Verdict::Context(reason) => (
                Effect::Context {
                    entry: format!(
                        "[{} user {}, not addressed to the assistant] {}",
                        m.channel, m.sender_id, m.text
                    ),
                },
                reason.as_str().to_owned(),
            ),
            Verdict::Ignore(reason) => (Effect::Ignore, reason.as_str().to_owned()),
            Verdict::Pairing => {
                let key = SenderKey {
                    channel: m.channel.clone(),
                    account_id: m.account_id.clone(),
                    sender_id: m.sender_id.clone(),
                };
                // The thread-local CSPRNG is dropped before the next await.
                let outcome = book.request(key, now, &mut rand::rng());
                match outcome {
                    RequestOutcome::Issue(request) => {
                        let text = pairing_code_text(&m.channel, &m.sender_id, &request.code);
                        issued = Some(request.clone());
                        (
                            Effect::Reply {
                                text: ReplyText::Fixed(text),
                                pairing: Some(request),
                                new_session: false,
                            },
                            IgnoreReason::PairingCodeSent.as_str().to_owned(),
                        )
                    }
                    RequestOutcome::AlreadyPending => ignore(IgnoreReason::PairingPending),
                    RequestOutcome::Rejected => ignore(IgnoreReason::PairingRejected),
                    RequestOutcome::Full => ignore(IgnoreReason::PairingFull),
                }
            }
            Verdict::Command(cmd) => {
                let note = format!("chat command {}", cmd.name());
                (self.command(cmd, class, &m).await, note)
            }
        };
        let queues_turn = matches!(effect, Effect::Turn);
        let replies = matches!(effect, Effect::Reply { .. });
        let record = IngressRecord {
            channel: m.channel.clone(),
            account_id: m.account_id.clone(),
            platform_message_id: m.platform_message_id.clone(),
            sender_id: m.sender_id.clone(),
            chat_id: m.chat_id.clone(),
            chat_kind: m.kind,
            thread_id: m.thread_id.clone(),
            text: m.text.clone(),
            base_key,
            agent_id: s.agent_id.clone(),
            sender_class: class,
            note: note.clone(),
            effect,
        };
        let recorded = s.store.call(move |c| ingress::record(c, &record)).await?;
        if let Enqueued::New(_) = recorded.outcome {
            if let Some(request) = issued {
                s.bus
                    .publish("sender.pair.requested", request_view(&request, now));
                tracing::info!(channel = %m.channel, account = %m.account_id, sender = %m.sender_id, "sender pairing requested; code sent");
                book.put_request(request);
            }
            if queues_turn {
                s.inbound_ready.notify_one();
            }
            if replies {
                s.outbox_ready.notify_one();
            }
            if !note.is_empty() && !queues_turn {
                tracing::info!(channel = %m.channel, sender = %m.sender_id, class = class.as_str(), note, "inbound message handled without a turn");
            }
        }
        Ok(recorded.outcome)
    }

    /// The answer to a permitted chat command.
    async fn command(&self, cmd: ChatCommand, class: SenderClass, m: &Incoming) -> Effect {
        let fixed = |text: String| Effect::Reply {
            text: ReplyText::Fixed(text),
            pairing: None,
            new_session: false,
        };
        match cmd {
            ChatCommand::Help => fixed(help_text(class, m.kind)),
            ChatCommand::New | ChatCommand::Reset => Effect::Reply {
                text: ReplyText::Fixed(NEW_SESSION_TEXT.to_owned()),
                pairing: None,
                new_session: true,
            },
            ChatCommand::Status => Effect::Reply {
                text: ReplyText::Status(StatusFacts {
                    class,
                    channel: m.channel.clone(),
                    sender_id: m.sender_id.clone(),
                    scope: match (m.kind, self.setup.session.dm_scope) {
                        (ChatKind::Group | ChatKind::Operator, _) => "group",
                        (ChatKind::Direct, DmScope::Main) => "main",
                        (ChatKind::Direct, DmScope::PerPeer) => "per-peer",
                        (ChatKind::Direct, DmScope::PerChannelPeer) => "per-channel-peer",
                    },
                    agent_id: self.setup.agent_id.clone(),
                }),
                pairing: None,
                new_session: false,
            },
            ChatCommand::Approve(ApproveArgs::Invalid) => fixed(APPROVE_USAGE.to_owned()),
            ChatCommand::Approve(ApproveArgs::Valid { id, decision }) => {
                let text = match self.setup.approvals.resolve(&id, decision).await {
                    Ok(row) => {
                        tracing::info!(approval = %id, channel = %m.channel, sender = %m.sender_id, state = row.state.name(), "approval resolved from chat");
                        format!("{id}: {}", row.state.name())
                    }
                    Err(ApprovalsError::Book(e)) => e.to_string(),
                    Err(ApprovalsError::Store(e)) => {
                        tracing::error!(approval = %id, error = %e, "cannot record the decision");
                        format!("{id}: the decision could not be recorded ({e}); try again")
                    }
                };
                fixed(text)
            }
        }
    }

    async fn forget_stale(&self, book: &mut SenderBook, now: i64) -> Result<(), StoreError> {
        for key in book.stale(now) {
            let k = key.clone();
            self.setup
                .store
                .call(move |c| table::delete_request(c, &k))
                .await?;
            book.remove_request(&key);
        }
        Ok(())
    }

    /// Waiting and rejected requests (with their codes) and paired senders.
    pub async fn list(&self) -> Result<Value, StoreError> {
        let now = now_ms();
        let mut book = self.book.lock().await;
        self.forget_stale(&mut book, now).await?;
        let requests: Vec<Value> = book
            .requests()
            .into_iter()
            .map(|r| request_view(r, now))
            .collect();
        let paired: Vec<Value> = book.paired().map(paired_view).collect();
        Ok(json!({ "requests": requests, "paired": paired }))
    }

    /// The owner approves `code` on `channel`: the sender is paired (allowed from now on).
    pub async fn approve(&self, channel: &str, code: &str) -> Result<PairedSender, PairingError> {
        let code = PairingCode::parse(code)?;
        let now = now_ms();
        let mut book = self.book.lock().await;
        let (key, paired) = book.approve(channel, &code, now)?;
        let (k, p) = (key.clone(), paired.clone());
        self.setup
            .store
            .call(move |c| table::pair(c, &k, &p))
            .await?;
        book.apply_approval(&key, paired.clone());
        drop(book);
        tracing::info!(channel, sender = %paired.sender_id, "sender paired by the owner");
        self.setup.bus.publish(
            "sender.pair.resolved",
            json!({ "channel": channel, "senderId": paired.sender_id, "accountId": paired.account_id, "decision": "approved" }),
        );
        Ok(paired)
    }

    /// The owner rejects `code` on `channel`: the sender gets nothing for the rest of the hour.
    pub async fn reject(&self, channel: &str, code: &str) -> Result<SenderRequest, PairingError> {
        let code = PairingCode::parse(code)?;
        let now = now_ms();
        let mut book = self.book.lock().await;
        let rejected = book.reject(channel, &code, now)?;
        let row = rejected.clone();
        self.setup
            .store
            .call(move |c| table::save_request(c, &row))
            .await?;
        book.put_request(rejected.clone());
        drop(book);
        tracing::info!(channel, sender = %rejected.key.sender_id, "sender pairing rejected by the owner");
        self.setup.bus.publish(
            "sender.pair.resolved",
            json!({ "channel": channel, "senderId": rejected.key.sender_id, "accountId": rejected.key.account_id, "decision": "rejected" }),
        );
        Ok(rejected)
    }

    /// The owner unpairs a sender; `allowFrom` in the config is not touched.
    pub async fn unpair(
        &self,
        channel: &str,
        sender_id: &str,
    ) -> Result<PairedSender, PairingError> {
        let mut book = self.book.lock().await;
        let paired = book.unpair(channel, sender_id)?;
        let (c, id) = (channel.to_owned(), sender_id.to_owned());
        self.setup
            .store
            .call(move |conn| table::unpair(conn, &c, &id))
            .await?;
        book.remove_paired(channel, sender_id);
        drop(book);
        tracing::info!(
            channel,
            sender = sender_id,
            "paired sender removed by the owner"
        );
        Ok(paired)
    }
}

fn ignore(reason: IgnoreReason) -> (Effect, String) {
    (Effect::Ignore, reason.as_str().to_owned())
}

/// The one message a stranger gets.
pub fn pairing_code_text(channel: &str, sender_id: &str, code: &PairingCode) -> String {
    format!(
        "This assistant only answers people its owner approved.\n\
         Your pairing code: {code} (valid for 1 hour; your {channel} id is {sender_id}).\n\
         Send the code to the owner; they approve you with:\n\
         pincer pairing approve {channel} {code}",
        code = code.as_str()
    )
}

fn request_view(r: &SenderRequest, now: i64) -> Value {
    let state = match r.state {
        _ if now >= r.expires_ms() => "expired",
        RequestState::Pending => "pending",
        RequestState::Rejected { .. } => "rejected",
    };
    json!({
        "channel": r.key.channel,
        "accountId": r.key.account_id,
        "senderId": r.key.sender_id,
        "code": r.code.as_str(),
        "state": state,
        "createdAtMs": r.created_ms,
        "expiresAtMs": r.expires_ms(),
    })
}

fn paired_view(p: &PairedSender) -> Value {
    json!({
        "channel": p.channel,
        "senderId": p.sender_id,
        "accountId": p.account_id,
        "approvedAtMs": p.approved_ms,
    })
}
