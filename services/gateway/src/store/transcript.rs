//! Sessions and their append-only transcripts (UPDATE and DELETE are refused by triggers).

use rusqlite::{Connection, Transaction, params};

use super::db::StoreError;
use crate::routing::{ChatKind, SessionKey};

/// Who said a transcript entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The person.
    User,
    /// The assistant.
    Assistant,
}

/// One transcript entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Who.
    pub role: Role,
    /// What.
    pub text: String,
    /// When.
    pub created_at_ms: i64,
}

/// Where a session lives, recorded with its first entry.
#[derive(Debug, Clone, Copy)]
pub(super) struct SessionPlace<'a> {
    pub session_key: &'a SessionKey,
    pub channel: &'a str,
    pub account_id: &'a str,
    pub chat_id: &'a str,
    pub chat_kind: ChatKind,
    pub agent_id: &'a str,
}

pub(super) fn ensure_session(
    tx: &Transaction<'_>,
    at: SessionPlace<'_>,
    now: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO sessions (session_key, channel, account_id, chat_id, chat_kind, agent_id, created_at_ms, updated_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
         ON CONFLICT(session_key) DO UPDATE SET updated_at_ms = excluded.updated_at_ms",
        params![at.session_key.as_str(), at.channel, at.account_id, at.chat_id, at.chat_kind.as_str(), at.agent_id, now],
    )?;
    Ok(())
}

/// Number of transcript entries of a session.
pub fn entry_count(conn: &Connection, session: &str) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM transcript WHERE session_key = ?1",
        params![session],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(super) fn append_entry(
    tx: &Transaction<'_>,
    session: &SessionKey,
    turn_id: &str,
    role: &str,
    text: &str,
    now: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO transcript (session_key, turn_id, role, text, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![session.as_str(), turn_id, role, text, now],
    )?;
    Ok(())
}

/// The last `limit` entries of a session, oldest first.
pub fn history(conn: &mut Connection, session: &str, limit: u32) -> Result<Vec<Entry>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT role, text, created_at_ms FROM
           (SELECT id, role, text, created_at_ms FROM transcript WHERE session_key = ?1 ORDER BY id DESC LIMIT ?2)
         ORDER BY id",
    )?;
    let rows = stmt.query_map(params![session, limit], |r| {
        let role: String = r.get(0)?;
        Ok(Entry {
            role: if role == "assistant" {
                Role::Assistant
            } else {
                Role::User
            },
            text: r.get(1)?,
            created_at_ms: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Number of sessions.
pub fn session_count(conn: &mut Connection) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}
