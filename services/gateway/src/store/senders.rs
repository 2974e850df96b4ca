//! The `sender_requests` and `paired_senders` tables: the sender pairing book's durable
//! copy. Every change is written here before it takes effect; the gateway restores the
//! book from it at start, so pending codes and paired senders survive a restart.

use rusqlite::{Connection, params};

use super::db::StoreError;
use crate::senders::codes::{PairedSender, PairingCode, RequestState, SenderKey, SenderRequest};

/// Inserts or replaces a request.
pub fn save_request(conn: &Connection, r: &SenderRequest) -> Result<(), StoreError> {
    let (state, rejected_at) = match r.state {
        RequestState::Pending => ("pending", None),
        RequestState::Rejected { at_ms } => ("rejected", Some(at_ms)),
    };
    conn.execute(
        "INSERT OR REPLACE INTO sender_requests
            (channel, account_id, sender_id, code, created_at_ms, state, rejected_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            r.key.channel,
            r.key.account_id,
            r.key.sender_id,
            r.code.as_str(),
            r.created_ms,
            state,
            rejected_at
        ],
    )?;
    Ok(())
}

/// Deletes a request.
pub fn delete_request(conn: &Connection, key: &SenderKey) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM sender_requests WHERE channel = ?1 AND account_id = ?2 AND sender_id = ?3",
        params![key.channel, key.account_id, key.sender_id],
    )?;
    Ok(())
}

/// Pairs a sender and drops their request, atomically.
pub fn pair(conn: &mut Connection, key: &SenderKey, p: &PairedSender) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    delete_request(&tx, key)?;
    tx.execute(
        "INSERT OR REPLACE INTO paired_senders (channel, sender_id, account_id, approved_at_ms)
         VALUES (?1, ?2, ?3, ?4)",
        params![p.channel, p.sender_id, p.account_id, p.approved_ms],
    )?;
    tx.commit()?;
    Ok(())
}

/// Unpairs a sender.
pub fn unpair(conn: &Connection, channel: &str, sender_id: &str) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM paired_senders WHERE channel = ?1 AND sender_id = ?2",
        params![channel, sender_id],
    )?;
    Ok(())
}

/// Every request and paired sender.
pub fn load(conn: &Connection) -> Result<(Vec<SenderRequest>, Vec<PairedSender>), StoreError> {
    let mut stmt = conn.prepare(
        "SELECT channel, account_id, sender_id, code, created_at_ms, state, rejected_at_ms
         FROM sender_requests",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, Option<i64>>(6)?,
        ))
    })?;
    let mut requests = Vec::new();
    for row in rows {
        let (channel, account_id, sender_id, code, created_ms, state, rejected_at) = row?;
        let malformed = |problem: &str| StoreError::Malformed {
            table: "sender_requests",
            key: format!("{channel}/{account_id}/{sender_id}"),
            problem: problem.to_owned(),
        };
        let code = PairingCode::parse(&code).map_err(|_| malformed("bad code"))?;
        let state = match (state.as_str(), rejected_at) {
            ("pending", _) => RequestState::Pending,
            ("rejected", Some(at_ms)) => RequestState::Rejected { at_ms },
            _ => return Err(malformed("bad state")),
        };
        requests.push(SenderRequest {
            key: SenderKey {
                channel,
                account_id,
                sender_id,
            },
            code,
            created_ms,
            state,
        });
    }
    let mut stmt =
        conn.prepare("SELECT channel, sender_id, account_id, approved_at_ms FROM paired_senders")?;
    let paired = stmt
        .query_map([], |r| {
            Ok(PairedSender {
                channel: r.get(0)?,
                sender_id: r.get(1)?,
                account_id: r.get(2)?,
                approved_ms: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((requests, paired))
}
