//! Account leases granted by the gateway (pure; time is passed in).
//!
//! The gateway assigns each account to one replica at a time with a fencing token and an
//! expiry, and renews it by sending the assignment again. The bridge polls an account only
//! while it holds a live lease, stamps inbound messages with the lease's token, and refuses
//! deliveries whose token is not the current one (they were meant for an older or newer
//! holder of the account).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use pincer_proto::v1::{ChannelAccount, LeaseAssignment};

/// `(channel, account_id)`: a hashable account key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountKey {
    /// e.g. `telegram`.
    pub channel: String,
    /// e.g. `default`.
    pub account_id: String,
}

impl AccountKey {
    /// The key of a wire account (missing account: empty strings, which match nothing).
    pub fn of(account: Option<&ChannelAccount>) -> Self {
        account.map_or_else(
            || Self {
                channel: String::new(),
                account_id: String::new(),
            },
            |a| Self {
                channel: a.channel.clone(),
                account_id: a.account_id.clone(),
            },
        )
    }
}

impl fmt::Display for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.channel, self.account_id)
    }
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    fencing_token: u64,
    expires_at: Instant,
}

/// What an assignment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assigned {
    /// The account was not leased before (or its lease had expired): start serving it.
    Started,
    /// The lease was extended (same or newer token).
    Renewed,
    /// Ignored: already expired, or older than the lease held.
    Ignored,
}

/// Why a delivery is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No live lease for the account.
    #[error(
        "this bridge replica holds no live lease for {account}; the gateway should route it to the current holder"
    )]
    NoLease {
        /// The account.
        account: AccountKey,
    },
    /// The delivery carries another token than the current lease.
    #[error(
        "stale lease for {account}: the delivery carries fencing token {presented}, the current lease has {current}"
    )]
    StaleLease {
        /// The account.
        account: AccountKey,
        /// The token on the delivery.
        presented: u64,
        /// The token of the lease held.
        current: u64,
    },
}

/// The leases this replica holds.
#[derive(Debug, Default)]
pub struct LeaseTable {
    leases: HashMap<AccountKey, Lease>,
}

/// The lease table shared by the session (which applies assignments), the pollers (which
/// end each long poll before the lease does) and the delivery workers (which check the
/// fencing token again right before each send).
#[derive(Debug, Clone, Default)]
pub struct SharedLeases(Arc<Mutex<LeaseTable>>);

impl SharedLeases {
    /// Locks the table (plain data updated in single steps: a poisoned lock is still usable).
    pub fn lock(&self) -> MutexGuard<'_, LeaseTable> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl LeaseTable {
    /// Drops every lease (the gateway stream ended: nothing may be sent or polled until the
    /// next session's assignments).
    pub fn clear(&mut self) {
        self.leases.clear();
    }

    /// When the live lease on `account` runs out.
    pub fn expiry(&self, account: &AccountKey, now: Instant) -> Option<Instant> {
        self.leases
            .get(account)
            .map(|l| l.expires_at)
            .filter(|at| *at > now)
    }

    /// Applies an assignment received at `now` (`now_ms`: the wall clock, unix ms).
    pub fn assign(&mut self, assignment: &LeaseAssignment, now: Instant, now_ms: i64) -> Assigned {
        let key = AccountKey::of(assignment.account.as_ref());
        let remaining_ms = assignment.expires_at_ms.saturating_sub(now_ms);
        let Ok(remaining_ms) = u64::try_from(remaining_ms) else {
            return Assigned::Ignored;
        };
        if remaining_ms == 0 {
            return Assigned::Ignored;
        }
        let lease = Lease {
            fencing_token: assignment.fencing_token,
            expires_at: now + Duration::from_millis(remaining_ms),
        };
        match self.leases.get_mut(&key) {
            Some(held) if held.expires_at > now => {
                if assignment.fencing_token < held.fencing_token {
                    return Assigned::Ignored;
                }
                *held = lease;
                Assigned::Renewed
            }
            _ => {
                self.leases.insert(key, lease);
                Assigned::Started
            }
        }
    }

    /// The fencing token of the live lease for `account`, if any.
    pub fn live(&self, account: &AccountKey, now: Instant) -> Option<u64> {
        self.leases
            .get(account)
            .filter(|l| l.expires_at > now)
            .map(|l| l.fencing_token)
    }

    /// Checks a delivery's fencing token.
    pub fn check(&self, account: &AccountKey, presented: u64, now: Instant) -> Result<(), Refusal> {
        match self.live(account, now) {
            None => Err(Refusal::NoLease {
                account: account.clone(),
            }),
            Some(current) if current != presented => Err(Refusal::StaleLease {
                account: account.clone(),
                presented,
                current,
            }),
            Some(_) => Ok(()),
        }
    }

    /// Removes and returns the accounts whose lease has expired by `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<AccountKey> {
        let expired: Vec<AccountKey> = self
            .leases
            .iter()
            .filter(|(_, l)| l.expires_at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &expired {
            self.leases.remove(key);
        }
        expired
    }

    /// When the next lease expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.leases.values().map(|l| l.expires_at).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(token: u64, expires_at_ms: i64) -> LeaseAssignment {
        LeaseAssignment {
            account: Some(ChannelAccount {
                channel: "telegram".into(),
                account_id: "default".into(),
            }),
            fencing_token: token,
            expires_at_ms,
        }
    }

    fn key() -> AccountKey {
        AccountKey::of(assignment(0, 0).account.as_ref())
    }

    #[test]
    fn leases_start_renew_and_expire() {
        let mut t = LeaseTable::default();
        let t0 = Instant::now();
        assert_eq!(
            t.assign(&assignment(3, 1_030_000), t0, 1_000_000),
            Assigned::Started
        );
        assert_eq!(t.live(&key(), t0), Some(3));
        let t10 = t0 + Duration::from_secs(10);
        assert_eq!(
            t.assign(&assignment(3, 1_040_000), t10, 1_010_000),
            Assigned::Renewed
        );
        assert_eq!(t.next_expiry(), Some(t10 + Duration::from_secs(30)));
        assert_eq!(
            t.assign(&assignment(2, 1_090_000), t10, 1_010_000),
            Assigned::Ignored
        );
        let late = t10 + Duration::from_secs(31);
        assert_eq!(t.live(&key(), late), None);
        assert_eq!(t.expire(late), vec![key()]);
        assert_eq!(t.next_expiry(), None);
        assert_eq!(
            t.assign(&assignment(4, 5), late, 10),
            Assigned::Ignored,
            "already expired"
        );
    }

    #[test]
    fn deliveries_need_the_current_token() {
        let mut t = LeaseTable::default();
        let now = Instant::now();
        assert!(matches!(
            t.check(&key(), 1, now),
            Err(Refusal::NoLease { .. })
        ));
        t.assign(&assignment(7, 60_000), now, 0);
        assert_eq!(t.check(&key(), 7, now), Ok(()));
        let err = t.check(&key(), 6, now).unwrap_err();
        assert!(err.to_string().contains("stale lease"));
        assert!(matches!(
            err,
            Refusal::StaleLease {
                presented: 6,
                current: 7,
                ..
            }
        ));
    }
}
