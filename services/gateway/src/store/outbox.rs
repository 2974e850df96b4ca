//! The outbox: replies waiting for a bridge's receipt. A delivery is created in the same
//! transaction that completes its inbound message (one per message), carries a stable
//! `delivery_id` the bridge uses to de-duplicate, and is retried with backoff until sent or
//! out of attempts.

use rusqlite::{Connection, Transaction, params};

use super::db::StoreError;

/// Attempts before a delivery is given up as failed.
pub const MAX_ATTEMPTS: i64 = 12;

/// A reply to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// Channel.
    pub channel: String,
    /// Account.
    pub account_id: String,
    /// Chat.
    pub chat_id: String,
    /// Thread or empty.
    pub thread_id: String,
    /// Platform message id replied to, or empty.
    pub reply_to: String,
    /// Text.
    pub text: String,
}

/// A delivery that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    /// Stable id.
    pub delivery_id: String,
    /// What to send.
    pub delivery: NewDelivery,
    /// Attempts so far.
    pub attempts: i64,
}

pub(super) fn insert_delivery(
    tx: &Transaction<'_>,
    inbound_id: i64,
    d: &NewDelivery,
    now: i64,
) -> Result<(), StoreError> {
    let delivery_id = format!("dlv-{}", uuid::Uuid::new_v4().simple());
    tx.execute(
        "INSERT INTO outbox (delivery_id, inbound_id, channel, account_id, chat_id, thread_id, reply_to, text,
            state, next_attempt_at_ms, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9, ?9)",
        params![delivery_id, inbound_id, d.channel, d.account_id, d.chat_id, d.thread_id, d.reply_to, d.text, now],
    )?;
    Ok(())
}

/// Pending deliveries due at `now`, oldest first.
pub fn due(conn: &mut Connection, now: i64, limit: u32) -> Result<Vec<DueDelivery>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT delivery_id, channel, account_id, chat_id, thread_id, reply_to, text, attempts
         FROM outbox WHERE state = 'pending' AND next_attempt_at_ms <= ?1 ORDER BY created_at_ms, delivery_id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now, limit], |r| {
        Ok(DueDelivery {
            delivery_id: r.get(0)?,
            delivery: NewDelivery {
                channel: r.get(1)?,
                account_id: r.get(2)?,
                chat_id: r.get(3)?,
                thread_id: r.get(4)?,
                reply_to: r.get(5)?,
                text: r.get(6)?,
            },
            attempts: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Postpones a pending delivery until `next_at` without counting an attempt (no bridge yet).
pub fn postpone(conn: &mut Connection, delivery_id: &str, next_at: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE outbox SET next_attempt_at_ms = ?2 WHERE delivery_id = ?1 AND state = 'pending'",
        params![delivery_id, next_at],
    )?;
    Ok(())
}

/// Records a successful send.
pub fn mark_sent(
    conn: &mut Connection,
    delivery_id: &str,
    platform_ids: &[String],
    now: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE outbox SET state = 'sent', sent_at_ms = ?2, platform_ids = ?3, attempts = attempts + 1
         WHERE delivery_id = ?1 AND state = 'pending'",
        params![delivery_id, now, platform_ids.join(",")],
    )?;
    Ok(())
}

/// Records a failed attempt: retried at `next_at` while attempts remain and the failure is
/// retryable, otherwise marked failed.
pub fn mark_attempt_failed(
    conn: &mut Connection,
    delivery_id: &str,
    error: &str,
    retryable: bool,
    next_at: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at_ms = ?3,
            state = CASE WHEN ?4 AND attempts + 1 < ?5 THEN 'pending' ELSE 'failed' END
         WHERE delivery_id = ?1 AND state = 'pending'",
        params![delivery_id, error, next_at, retryable, MAX_ATTEMPTS],
    )?;
    Ok(())
}

/// Counts of pending and sent deliveries.
pub fn counts(conn: &mut Connection) -> Result<(u64, u64), StoreError> {
    let count = |state: &str| -> Result<u64, StoreError> {
        let n: i64 = conn.query_row(
            "SELECT count(*) FROM outbox WHERE state = ?1",
            params![state],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    };
    Ok((count("pending")?, count("sent")?))
}
