//! One channel message's outcome, recorded in one transaction: the inbound row (de-duplicated
//! on `(channel, account, platform_message_id)`), then what the access decision asked for —
//! a queued turn, a context entry in the transcript, or a reply without the model (a
//! pairing code with its request, a chat command's answer, a session reset). A redelivered
//! message changes nothing.

use rusqlite::{Connection, OptionalExtension, params};

use super::db::{StoreError, now_ms};
use super::inbound::Enqueued;
use super::outbox::{NewDelivery, insert_delivery};
use super::senders::save_request;
use super::transcript::{SessionPlace, append_entry, ensure_session, entry_count};
use crate::routing::{ChatKind, SessionKey};
use crate::senders::SenderClass;
use crate::senders::codes::SenderRequest;
use crate::senders::commands::{StatusFacts, status_text};

/// A channel message and what to do with it.
#[derive(Debug, Clone)]
pub struct IngressRecord {
    /// Channel.
    pub channel: String,
    /// Account.
    pub account_id: String,
    /// Unique per account.
    pub platform_message_id: String,
    /// The sender's stable id.
    pub sender_id: String,
    /// The chat.
    pub chat_id: String,
    /// DM or group.
    pub chat_kind: ChatKind,
    /// Thread or topic, or empty.
    pub thread_id: String,
    /// The text.
    pub text: String,
    /// The session before resets; the stored key adds the current epoch.
    pub base_key: SessionKey,
    /// The agent (for session rows).
    pub agent_id: String,
    /// Who sent it.
    pub sender_class: SenderClass,
    /// A note for the record (why it was not a turn), or empty.
    pub note: String,
    /// What to do.
    pub effect: Effect,
}

/// What a message leads to.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Queue a turn.
    Turn,
    /// Keep it for the record only.
    Ignore,
    /// Append `entry` to the session's transcript as context; no turn.
    Context {
        /// The transcript text (labelled with the sender).
        entry: String,
    },
    /// Answer in the chat without the model.
    Reply {
        /// The answer.
        text: ReplyText,
        /// A stranger's new pairing request, stored with its code's only delivery.
        pairing: Option<SenderRequest>,
        /// Start a new session first (`/new`, `/reset`).
        new_session: bool,
    },
}

/// A reply's text.
#[derive(Debug, Clone)]
pub enum ReplyText {
    /// As given.
    Fixed(String),
    /// The `/status` answer, which needs the session's length.
    Status(StatusFacts),
}

/// What was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// New or a redelivery.
    pub outcome: Enqueued,
    /// The session the message was stored under (empty for a redelivery).
    pub session_key: Option<SessionKey>,
}

/// The row id of an already stored message.
pub fn existing(
    conn: &Connection,
    channel: &str,
    account_id: &str,
    platform_message_id: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id FROM inbound WHERE channel = ?1 AND account_id = ?2 AND platform_message_id = ?3",
            params![channel, account_id, platform_message_id],
            |r| r.get(0),
        )
        .optional()?)
}

/// The number of resets of a session (0: never reset).
pub fn epoch(conn: &Connection, base: &SessionKey) -> Result<u32, StoreError> {
    let e: Option<i64> = conn
        .query_row(
            "SELECT epoch FROM session_epochs WHERE base_key = ?1",
            params![base.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    Ok(e.and_then(|e| u32::try_from(e).ok()).unwrap_or(0))
}

/// Records `rec` and its effect atomically, unless the message was stored before.
pub fn record(conn: &mut Connection, rec: &IngressRecord) -> Result<Recorded, StoreError> {
    let tx = conn.transaction()?;
    if let Some(id) = existing(&tx, &rec.channel, &rec.account_id, &rec.platform_message_id)? {
        return Ok(Recorded {
            outcome: Enqueued::Duplicate(id),
            session_key: None,
        });
    }
    let now = now_ms();
    let mut current = epoch(&tx, &rec.base_key)?;
    if let Effect::Reply {
        new_session: true, ..
    } = rec.effect
    {
        current = current.saturating_add(1);
        tx.execute(
            "INSERT INTO session_epochs (base_key, epoch, updated_at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT(base_key) DO UPDATE SET epoch = excluded.epoch, updated_at_ms = excluded.updated_at_ms",
            params![rec.base_key.as_str(), current, now],
        )?;
    }
    let session_key = rec.base_key.at_epoch(current);
    let (state, finished) = match &rec.effect {
        Effect::Turn => ("pending", None),
        Effect::Reply { pairing: None, .. } => ("done", Some(now)),
        Effect::Ignore | Effect::Context { .. } | Effect::Reply { .. } => ("ignored", Some(now)),
    };
    tx.execute(
        "INSERT INTO inbound (channel, account_id, platform_message_id, sender_id, chat_id, chat_kind,
            thread_id, text, session_key, state, note, received_at_ms, finished_at_ms, sender_class)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            rec.channel,
            rec.account_id,
            rec.platform_message_id,
            rec.sender_id,
            rec.chat_id,
            rec.chat_kind.as_str(),
            rec.thread_id,
            rec.text,
            session_key.as_str(),
            state,
            rec.note,
            now,
            finished,
            rec.sender_class.as_str()
        ],
    )?;
    let id = tx.last_insert_rowid();
    match &rec.effect {
        Effect::Turn | Effect::Ignore => {}
        Effect::Context { entry } => {
            ensure_session(
                &tx,
                SessionPlace {
                    session_key: &session_key,
                    channel: &rec.channel,
                    account_id: &rec.account_id,
                    chat_id: &rec.chat_id,
                    chat_kind: rec.chat_kind,
                    agent_id: &rec.agent_id,
                },
                now,
            )?;
            append_entry(
                &tx,
                &session_key,
                &format!("context-{id}"),
                "user",
                entry,
                now,
            )?;
        }
        Effect::Reply { text, pairing, .. } => {
            let text = match text {
                ReplyText::Fixed(t) => t.clone(),
                ReplyText::Status(facts) => status_text(
                    facts,
                    session_key.as_str(),
                    entry_count(&tx, session_key.as_str())?,
                ),
            };
            if let Some(request) = pairing {
                save_request(&tx, request)?;
            }
            let delivery = NewDelivery {
                channel: rec.channel.clone(),
                account_id: rec.account_id.clone(),
                chat_id: rec.chat_id.clone(),
                thread_id: rec.thread_id.clone(),
                reply_to: rec.platform_message_id.clone(),
                text,
            };
            insert_delivery(&tx, id, &delivery, now)?;
        }
    }
    tx.commit()?;
    Ok(Recorded {
        outcome: Enqueued::New(id),
        session_key: Some(session_key),
    })
}
