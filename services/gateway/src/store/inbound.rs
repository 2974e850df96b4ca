//! The durable inbound queue. A message is stored (and de-duplicated on
//! `(channel, account, platform_message_id)`) before the bridge may acknowledge it upstream;
//! it stays `pending` until its turn completes, so a crash at any point re-runs it.

use rusqlite::{Connection, OptionalExtension, params};

use super::db::{StoreError, now_ms};
use super::outbox::{NewDelivery, insert_delivery};
use super::transcript::{SessionPlace, append_entry, ensure_session};
use crate::routing::{ChatKind, SessionKey};
use crate::senders::SenderClass;

/// A message to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInbound {
    /// Channel name (`telegram`, `operator`).
    pub channel: String,
    /// Account on the channel.
    pub account_id: String,
    /// Unique per account.
    pub platform_message_id: String,
    /// The sender's stable id.
    pub sender_id: String,
    /// The chat.
    pub chat_id: String,
    /// DM, group or operator.
    pub chat_kind: ChatKind,
    /// Thread/topic id or empty.
    pub thread_id: String,
    /// The text.
    pub text: String,
    /// The session it belongs to.
    pub session_key: SessionKey,
    /// Who sent it, as the gateway decided.
    pub sender_class: SenderClass,
    /// What to do with it.
    pub disposition: Disposition,
}

/// Whether a stored message starts a turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Run a turn.
    Process,
    /// Keep it for the record but do nothing (access policy), with the reason.
    Ignore(String),
}

/// The result of storing a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Newly stored with this id.
    New(i64),
    /// Already stored earlier (a redelivery) under this id.
    Duplicate(i64),
}

impl Enqueued {
    /// The row id.
    pub fn id(self) -> i64 {
        match self {
            Self::New(id) | Self::Duplicate(id) => id,
        }
    }
}

/// A message waiting for its turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingInbound {
    /// Row id.
    pub id: i64,
    /// Channel name.
    pub channel: String,
    /// Account.
    pub account_id: String,
    /// Platform message id.
    pub platform_message_id: String,
    /// Sender id.
    pub sender_id: String,
    /// Chat id.
    pub chat_id: String,
    /// Chat kind.
    pub chat_kind: ChatKind,
    /// Thread id.
    pub thread_id: String,
    /// Text.
    pub text: String,
    /// Session.
    pub session_key: SessionKey,
    /// Who sent it, as the gateway decided when it arrived.
    pub sender_class: SenderClass,
}

/// Stores a message unless it is already stored.
pub fn enqueue(conn: &mut Connection, msg: &NewInbound) -> Result<Enqueued, StoreError> {
    let tx = conn.transaction()?;
    let existing: Option<i64> = tx
        .query_row(
            "SELECT id FROM inbound WHERE channel = ?1 AND account_id = ?2 AND platform_message_id = ?3",
            params![msg.channel, msg.account_id, msg.platform_message_id],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = existing {
        return Ok(Enqueued::Duplicate(id));
    }
    let (state, note) = match &msg.disposition {
        Disposition::Process => ("pending", ""),
        Disposition::Ignore(note) => ("ignored", note.as_str()),
    };
    tx.execute(
        "INSERT INTO inbound (channel, account_id, platform_message_id, sender_id, chat_id, chat_kind,
            thread_id, text, session_key, state, note, received_at_ms, sender_class)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            msg.channel,
            msg.account_id,
            msg.platform_message_id,
            msg.sender_id,
            msg.chat_id,
            msg.chat_kind.as_str(),
            msg.thread_id,
            msg.text,
            msg.session_key.as_str(),
            state,
            note,
            now_ms(),
            msg.sender_class.as_str()
        ],
    )?;
    let id = tx.last_insert_rowid();
    tx.commit()?;
    Ok(Enqueued::New(id))
}

/// Pending messages, oldest first.
pub fn pending(conn: &mut Connection, limit: u32) -> Result<Vec<PendingInbound>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, channel, account_id, platform_message_id, sender_id, chat_id, chat_kind,
                thread_id, text, session_key, sender_class
         FROM inbound WHERE state = 'pending' ORDER BY id LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![limit], |r| {
        let kind: String = r.get(6)?;
        let key: String = r.get(9)?;
        let class: String = r.get(10)?;
        Ok(PendingInbound {
            id: r.get(0)?,
            channel: r.get(1)?,
            account_id: r.get(2)?,
            platform_message_id: r.get(3)?,
            sender_id: r.get(4)?,
            chat_id: r.get(5)?,
            chat_kind: ChatKind::parse(&kind).unwrap_or(ChatKind::Direct),
            thread_id: r.get(7)?,
            text: r.get(8)?,
            session_key: SessionKey::from_stored(key),
            // An unreadable class fails closed: the least trusted.
            sender_class: SenderClass::parse(&class).unwrap_or(SenderClass::Stranger),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// True while the message still waits for its turn (not done or ignored).
pub fn is_pending(conn: &mut Connection, id: i64) -> Result<bool, StoreError> {
    let state: Option<String> = conn
        .query_row(
            "SELECT state FROM inbound WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(state.as_deref() == Some("pending"))
}

/// How a completed turn is recorded.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The turn.
    pub turn_id: String,
    /// The agent that ran it.
    pub agent_id: String,
    /// The reply text (empty: no reply).
    pub reply: String,
    /// Where to deliver the reply, for channel messages.
    pub delivery: Option<NewDelivery>,
}

/// Records a finished turn atomically: session row, the user message and the reply in the
/// transcript, the outbox entry, and the inbound row marked done. Re-running a completed
/// message is a no-op, so a reply is queued at most once per inbound message.
pub fn complete(
    conn: &mut Connection,
    msg: &PendingInbound,
    done: &Completion,
) -> Result<bool, StoreError> {
    let tx = conn.transaction()?;
    let state: Option<String> = tx
        .query_row(
            "SELECT state FROM inbound WHERE id = ?1",
            params![msg.id],
            |r| r.get(0),
        )
        .optional()?;
    if state.as_deref() != Some("pending") {
        return Ok(false);
    }
    let now = now_ms();
    ensure_session(
        &tx,
        SessionPlace {
            session_key: &msg.session_key,
            channel: &msg.channel,
            account_id: &msg.account_id,
            chat_id: &msg.chat_id,
            chat_kind: msg.chat_kind,
            agent_id: &done.agent_id,
        },
        now,
    )?;
    append_entry(&tx, &msg.session_key, &done.turn_id, "user", &msg.text, now)?;
    if !done.reply.is_empty() {
        append_entry(
            &tx,
            &msg.session_key,
            &done.turn_id,
            "assistant",
            &done.reply,
            now,
        )?;
    }
    if let Some(delivery) = &done.delivery {
        insert_delivery(&tx, msg.id, delivery, now)?;
    }
    tx.execute(
        "UPDATE inbound SET state = 'done', finished_at_ms = ?2 WHERE id = ?1",
        params![msg.id, now],
    )?;
    tx.commit()?;
    Ok(true)
}

/// Counts by state, for health output.
pub fn counts(conn: &mut Connection) -> Result<(u64, u64), StoreError> {
    let pending: i64 = conn.query_row(
        "SELECT count(*) FROM inbound WHERE state = 'pending'",
        [],
        |r| r.get(0),
    )?;
    let total: i64 = conn.query_row("SELECT count(*) FROM inbound", [], |r| r.get(0))?;
    Ok((
        u64::try_from(pending).unwrap_or(0),
        u64::try_from(total).unwrap_or(0),
    ))
}
