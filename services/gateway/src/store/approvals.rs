//! The `approvals` table: the approval book's durable copy. Every change is written here
//! before it takes effect; the gateway restores the book from it at start.

use rusqlite::{Connection, params};

use super::db::StoreError;
use crate::approvals::binding::Binding;
use crate::approvals::book::{Approval, ApprovalId, ApprovalState, Requester};

/// Inserts or replaces `a`.
pub fn save(conn: &Connection, a: &Approval) -> Result<(), StoreError> {
    let malformed = |problem: String| StoreError::Malformed {
        table: "approvals",
        key: a.id.to_string(),
        problem,
    };
    let binding = serde_json::to_string(&a.binding).map_err(|e| malformed(e.to_string()))?;
    let state = serde_json::to_string(&a.state).map_err(|e| malformed(e.to_string()))?;
    conn.execute(
        "INSERT OR REPLACE INTO approvals (id, agent_id, session_key, turn_id, binding, reason, created_ms, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            a.id.as_str(),
            a.requester.agent_id,
            a.requester.session_key,
            a.requester.turn_id,
            binding,
            a.reason,
            a.created_ms,
            state
        ],
    )?;
    Ok(())
}

/// Deletes `id`.
pub fn delete(conn: &Connection, id: &ApprovalId) -> Result<(), StoreError> {
    conn.execute("DELETE FROM approvals WHERE id = ?1", params![id.as_str()])?;
    Ok(())
}

/// Every row.
pub fn load(conn: &Connection) -> Result<Vec<Approval>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, agent_id, session_key, turn_id, binding, reason, created_ms, state FROM approvals",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, i64>(6)?,
            r.get::<_, String>(7)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, agent_id, session_key, turn_id, binding, reason, created_ms, state) = row?;
        let malformed = |problem: String| StoreError::Malformed {
            table: "approvals",
            key: id.clone(),
            problem,
        };
        let parsed_id = ApprovalId::parse(&id).ok_or_else(|| malformed("bad id".into()))?;
        let binding: Binding =
            serde_json::from_str(&binding).map_err(|e| malformed(format!("binding: {e}")))?;
        let state: ApprovalState =
            serde_json::from_str(&state).map_err(|e| malformed(format!("state: {e}")))?;
        out.push(Approval {
            id: parsed_id,
            requester: Requester {
                agent_id,
                session_key,
                turn_id,
            },
            binding,
            reason,
            created_ms,
            state,
        });
    }
    Ok(out)
}
