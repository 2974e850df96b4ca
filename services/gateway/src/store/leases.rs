//! Channel-account leases: at most one bridge replica serves an account at a time. A new
//! holder gets a higher fencing token; deliveries carry the token and a bridge refuses
//! tokens that are not its current lease, so a stale replica cannot send.

use rusqlite::{Connection, OptionalExtension, params};

use super::db::StoreError;

/// A granted lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Monotonic per account.
    pub fencing_token: u64,
    /// Until when.
    pub expires_at_ms: i64,
}

/// Grants or renews the lease on `(channel, account)` to `holder` unless another holder's
/// lease is still live. Returns `None` when someone else holds it.
pub fn acquire(
    conn: &mut Connection,
    channel: &str,
    account: &str,
    holder: &str,
    now: i64,
    ttl_ms: i64,
) -> Result<Option<Lease>, StoreError> {
    let tx = conn.transaction()?;
    let current: Option<(i64, String, i64)> = tx
        .query_row(
            "SELECT fencing_token, holder, expires_at_ms FROM leases WHERE channel = ?1 AND account_id = ?2",
            params![channel, account],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let expires = now.saturating_add(ttl_ms);
    let token = match current {
        Some((_, ref h, exp)) if h != holder && exp > now => return Ok(None),
        Some((token, ref h, _)) if h == holder => token,
        Some((token, _, _)) => token + 1,
        None => 1,
    };
    tx.execute(
        "INSERT INTO leases (channel, account_id, fencing_token, holder, expires_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(channel, account_id) DO UPDATE SET fencing_token = excluded.fencing_token,
            holder = excluded.holder, expires_at_ms = excluded.expires_at_ms",
        params![channel, account, token, holder, expires],
    )?;
    tx.commit()?;
    Ok(Some(Lease {
        fencing_token: u64::try_from(token).unwrap_or(0),
        expires_at_ms: expires,
    }))
}

/// Ends `holder`'s lease on an account (when its stream closes), so another replica can
/// take over at once.
pub fn release(
    conn: &mut Connection,
    channel: &str,
    account: &str,
    holder: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE leases SET expires_at_ms = 0 WHERE channel = ?1 AND account_id = ?2 AND holder = ?3",
        params![channel, account, holder],
    )?;
    Ok(())
}

/// One row of the lease table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// Channel.
    pub channel: String,
    /// Account.
    pub account_id: String,
    /// The replica that holds (or last held) it.
    pub holder: String,
    /// Its token.
    pub fencing_token: u64,
    /// Until when (0 after a release).
    pub expires_at_ms: i64,
}

/// Every account that was ever leased, by channel and account.
pub fn list(conn: &mut Connection) -> Result<Vec<LeaseRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT channel, account_id, holder, fencing_token, expires_at_ms FROM leases ORDER BY channel, account_id",
    )?;
    let rows = stmt.query_map([], |r| {
        let token: i64 = r.get(3)?;
        Ok(LeaseRow {
            channel: r.get(0)?,
            account_id: r.get(1)?,
            holder: r.get(2)?,
            fencing_token: u64::try_from(token).unwrap_or(0),
            expires_at_ms: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[tokio::test]
    async fn one_holder_at_a_time_and_tokens_increase() {
        let store = Store::open_in_memory().unwrap();
        store
            .call(|c| {
                let a = acquire(c, "telegram", "default", "r1", 1000, 100)?.unwrap();
                assert_eq!(a.fencing_token, 1);
                assert_eq!(acquire(c, "telegram", "default", "r2", 1050, 100)?, None);
                let renewed = acquire(c, "telegram", "default", "r1", 1060, 100)?.unwrap();
                assert_eq!(renewed.fencing_token, 1);
                let taken = acquire(c, "telegram", "default", "r2", 1200, 100)?.unwrap();
                assert_eq!(
                    taken.fencing_token, 2,
                    "expired lease moves with a higher token"
                );
                release(c, "telegram", "default", "r2")?;
                let back = acquire(c, "telegram", "default", "r1", 1201, 100)?.unwrap();
                assert_eq!(back.fencing_token, 3);
                let rows = list(c)?;
                assert_eq!(rows.len(), 1);
                assert_eq!((rows[0].holder.as_str(), rows[0].fencing_token), ("r1", 3));
                Ok(())
            })
            .await
            .unwrap();
    }
}
