//! The `devices` table: the pairing store's durable copy. Every change of a device's state
//! is written here before it takes effect for clients; the gateway restores the pairing
//! store from it at start. Only token *hashes* are stored.

use rusqlite::{Connection, params};

use super::db::StoreError;
use crate::access::device_token::TokenHash;
use crate::access::pairing::{DeviceState, Refusal};
use crate::access::{DeviceId, Role, ScopeSet};

/// What the owner sees about a device besides its state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceMeta {
    /// Client id and mode of the latest connect (`pincer-cli/cli`).
    pub client: String,
    /// Client address of the latest connect.
    pub remote: String,
    /// When the device last connected or asked (unix ms).
    pub last_seen_ms: Option<i64>,
}

/// One row: state and metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    /// The device.
    pub device_id: DeviceId,
    /// Where it stands.
    pub state: DeviceState,
    /// What it told us.
    pub meta: DeviceMeta,
}

/// Writes `state` for `device_id` (insert or replace the state columns; metadata kept).
pub fn save_state(
    conn: &Connection,
    device_id: &DeviceId,
    state: &DeviceState,
) -> Result<(), StoreError> {
    let (kind, role, scopes, hash, generation, at_ms, refused) = match state {
        DeviceState::Pending {
            requested_role,
            requested_scopes,
            requested_at_ms,
            refused_before,
        } => (
            "pending",
            Some(requested_role.as_str()),
            Some(requested_scopes.to_string()),
            None,
            None,
            *requested_at_ms,
            *refused_before,
        ),
        DeviceState::Approved {
            role,
            scopes,
            token_hash,
            token_generation,
            issued_at_ms,
        } => (
            "approved",
            Some(role.as_str()),
            Some(scopes.to_string()),
            Some(token_hash.as_bytes().to_vec()),
            Some(*token_generation),
            *issued_at_ms,
            None,
        ),
        DeviceState::Rejected { at_ms } => ("rejected", None, None, None, None, *at_ms, None),
        DeviceState::Revoked { at_ms } => ("revoked", None, None, None, None, *at_ms, None),
    };
    let (refused_state, refused_at) = match refused {
        Some(Refusal::Rejected { at_ms }) => (Some("rejected"), Some(at_ms)),
        Some(Refusal::Revoked { at_ms }) => (Some("revoked"), Some(at_ms)),
        None => (None, None),
    };
    conn.execute(
        "INSERT INTO devices (device_id, state, role, scopes, token_hash, token_generation, at_ms, refused_state, refused_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT(device_id) DO UPDATE SET state = excluded.state, role = excluded.role,
            scopes = excluded.scopes, token_hash = excluded.token_hash,
            token_generation = excluded.token_generation, at_ms = excluded.at_ms,
            refused_state = excluded.refused_state, refused_at_ms = excluded.refused_at_ms",
        params![
            device_id.to_string(),
            kind,
            role,
            scopes,
            hash,
            generation,
            at_ms,
            refused_state,
            refused_at
        ],
    )?;
    Ok(())
}

/// Removes a device whose pending request expired without an earlier refusal.
pub fn delete(conn: &Connection, device_id: &DeviceId) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM devices WHERE device_id = ?1",
        params![device_id.to_string()],
    )?;
    Ok(())
}

/// Records what a device said about itself and where it connected from.
pub fn touch(
    conn: &mut Connection,
    device_id: &DeviceId,
    client: &str,
    remote: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE devices SET client = ?2, remote = ?3, last_seen_ms = ?4 WHERE device_id = ?1",
        params![device_id.to_string(), client, remote, now_ms],
    )?;
    Ok(())
}

/// Every device, ordered by id.
pub fn load(conn: &mut Connection) -> Result<Vec<DeviceRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT device_id, state, role, scopes, token_hash, token_generation, at_ms,
                refused_state, refused_at_ms, client, remote, last_seen_ms
         FROM devices ORDER BY device_id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(RawRow {
            device_id: r.get(0)?,
            state: r.get(1)?,
            role: r.get(2)?,
            scopes: r.get(3)?,
            token_hash: r.get(4)?,
            token_generation: r.get(5)?,
            at_ms: r.get(6)?,
            refused_state: r.get(7)?,
            refused_at_ms: r.get(8)?,
            meta: DeviceMeta {
                client: r.get(9)?,
                remote: r.get(10)?,
                last_seen_ms: r.get(11)?,
            },
        })
    })?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row?.parse()?);
    }
    Ok(out)
}

struct RawRow {
    device_id: String,
    state: String,
    role: Option<String>,
    scopes: Option<String>,
    token_hash: Option<Vec<u8>>,
    token_generation: Option<u32>,
    at_ms: i64,
    refused_state: Option<String>,
    refused_at_ms: Option<i64>,
    meta: DeviceMeta,
}

impl RawRow {
    fn parse(self) -> Result<DeviceRow, StoreError> {
        let bad = |problem: &str| StoreError::Malformed {
            table: "devices",
            key: self.device_id.clone(),
            problem: problem.to_owned(),
        };
        let device_id: DeviceId = self.device_id.parse().map_err(|_| bad("device id"))?;
        let role = || -> Result<Role, StoreError> {
            self.role
                .as_deref()
                .and_then(|r| r.parse().ok())
                .ok_or_else(|| bad("role"))
        };
        let scopes = || -> Result<ScopeSet, StoreError> {
            self.scopes
                .as_deref()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("scopes"))
        };
        let state = match self.state.as_str() {
            "pending" => DeviceState::Pending {
                requested_role: role()?,
                requested_scopes: scopes()?,
                requested_at_ms: self.at_ms,
                refused_before: match (self.refused_state.as_deref(), self.refused_at_ms) {
                    (None, _) => None,
                    (Some("rejected"), Some(at_ms)) => Some(Refusal::Rejected { at_ms }),
                    (Some("revoked"), Some(at_ms)) => Some(Refusal::Revoked { at_ms }),
                    _ => return Err(bad("refusal")),
                },
            },
            "approved" => {
                let hash: [u8; 32] = self
                    .token_hash
                    .as_deref()
                    .and_then(|h| h.try_into().ok())
                    .ok_or_else(|| bad("token hash"))?;
                DeviceState::Approved {
                    role: role()?,
                    scopes: scopes()?,
                    token_hash: TokenHash::from_bytes(hash),
                    token_generation: self.token_generation.ok_or_else(|| bad("generation"))?,
                    issued_at_ms: self.at_ms,
                }
            }
            "rejected" => DeviceState::Rejected { at_ms: self.at_ms },
            "revoked" => DeviceState::Revoked { at_ms: self.at_ms },
            _ => return Err(bad("state")),
        };
        Ok(DeviceRow {
            device_id,
            state,
            meta: self.meta,
        })
    }
}
