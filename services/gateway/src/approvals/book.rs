//! The approval book, pure: open requests, the owner's decisions, and which decision covers
//! which exec call. Nothing here reads a clock or the database: callers pass `now` and
//! persist each returned row before [`ApprovalBook::put`] makes it visible.
//!
//! Rules (SECURITY.md, "Tools"):
//! - an approval covers exactly one [`Binding`] (argv or shell line, cwd, env, resolved
//!   executables) of one agent; `allow-once` also only in the session that asked;
//! - `allow-once` is used up by the first call it covers; `allow-always` covers every
//!   identical call of that agent until the owner denies it (revokes);
//! - a request, and an unused `allow-once`, expire [`APPROVAL_TTL_MS`] after the request;
//! - only the owner's resolve changes a decision; nothing a caller sends can.

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::binding::{Binding, BindingHash};

/// How long a request (and an unused allow-once) stays valid: 30 min.
pub const APPROVAL_TTL_MS: i64 = 30 * 60 * 1000;
/// Most open requests per agent; beyond that new requests are refused until the owner
/// answers or they expire.
pub const MAX_PENDING_PER_AGENT: usize = 32;
/// Resolved, used or expired entries are forgotten this long after the request (allow-always
/// entries are kept).
pub const RETAIN_MS: i64 = 24 * 60 * 60 * 1000;
const ID_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
const ID_LEN: usize = 10;

/// An approval's id: `apr_` and 10 characters (no 0/o/1/l).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ApprovalId(String);

impl ApprovalId {
    /// A fresh random id.
    pub fn random() -> Self {
        let mut rng = rand::rng();
        let tail: String = (0..ID_LEN)
            .map(|_| char::from(ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())]))
            .collect();
        Self(format!("apr_{tail}"))
    }

    /// Parses an id as typed by the owner.
    pub fn parse(raw: &str) -> Option<Self> {
        let tail = raw.strip_prefix("apr_")?;
        (tail.len() == ID_LEN && tail.bytes().all(|b| ID_ALPHABET.contains(&b)))
            .then(|| Self(raw.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ApprovalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The owner's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Run this call once.
    AllowOnce,
    /// Run this exact call whenever the agent asks again.
    AllowAlways,
    /// Do not run it (on an allow-always entry: revoke it).
    Deny,
}

impl Decision {
    /// From `allow-once`, `allow-always` or `deny`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "allow-once" => Some(Self::AllowOnce),
            "allow-always" => Some(Self::AllowAlways),
            "deny" => Some(Self::Deny),
            _ => None,
        }
    }
}

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum ApprovalState {
    /// Waiting for the owner.
    Pending,
    /// Approved once, not used yet.
    AllowedOnce {
        /// When the owner decided.
        at_ms: i64,
    },
    /// Approved once and used.
    Used {
        /// When it was used.
        at_ms: i64,
    },
    /// Approved for every identical call.
    AllowedAlways {
        /// When the owner decided.
        at_ms: i64,
    },
    /// Refused (or an allow-always revoked).
    Denied {
        /// When the owner decided.
        at_ms: i64,
    },
}

impl ApprovalState {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::AllowedOnce { .. } => "allowed-once",
            Self::Used { .. } => "used",
            Self::AllowedAlways { .. } => "allowed-always",
            Self::Denied { .. } => "denied",
        }
    }
}

/// Who asked, from the verified grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Requester {
    /// The agent.
    pub agent_id: String,
    /// The session.
    pub session_key: String,
    /// The turn.
    pub turn_id: String,
}

/// One request and its decision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Approval {
    /// Its id.
    pub id: ApprovalId,
    /// Who asked.
    pub requester: Requester,
    /// What it covers.
    pub binding: Binding,
    /// Why the executor asked.
    pub reason: String,
    /// When it was requested (unix ms).
    pub created_ms: i64,
    /// Where it stands.
    pub state: ApprovalState,
}

impl Approval {
    /// When a pending request or an unused allow-once stops counting.
    pub fn expires_ms(&self) -> i64 {
        self.created_ms.saturating_add(APPROVAL_TTL_MS)
    }

    /// The state as seen at `now` (`expired` is derived, never stored).
    pub fn state_name(&self, now_ms: i64) -> &'static str {
        match self.state {
            ApprovalState::Pending | ApprovalState::AllowedOnce { .. }
                if now_ms >= self.expires_ms() =>
            {
                "expired"
            }
            s => s.name(),
        }
    }

    fn live(&self, now_ms: i64) -> bool {
        now_ms < self.expires_ms()
    }
}

/// What an exec call finds in the book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// An allow-always entry covers it.
    Always(ApprovalId),
    /// An unused allow-once covers it; persist the returned row (now `Used`), then put it.
    Once(Box<Approval>),
    /// The same call is already waiting for the owner.
    Pending(ApprovalId),
    /// Nothing covers it; open a request.
    Nothing,
}

/// What a waiter learns about its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Still waiting.
    Pending,
    /// Approved once: persist the returned row (now `Used`), then put it.
    Once(Box<Approval>),
    /// Approved always.
    Always,
    /// Refused.
    Denied,
    /// Expired, used by another call, or unknown.
    Gone,
}

/// Why a request or a resolve was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    /// Too many open requests.
    #[error(
        "agent {agent_id:?} already has {MAX_PENDING_PER_AGENT} approval requests waiting; answer or let them expire first"
    )]
    TooManyPending {
        /// The agent.
        agent_id: String,
    },
    /// No such approval.
    #[error("no approval {0}; see `pincer approvals list`")]
    NotFound(String),
    /// The request has expired.
    #[error("approval {0} has expired; the agent must ask again")]
    Expired(String),
    /// Already decided.
    #[error("approval {id} is already {state}")]
    AlreadyResolved {
        /// The id.
        id: String,
        /// Its state.
        state: &'static str,
    },
}

/// Every approval the gateway knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ApprovalBook {
    items: BTreeMap<ApprovalId, Approval>,
}

impl ApprovalBook {
    /// A book holding `items` (restored from the database).
    pub fn restore(items: impl IntoIterator<Item = Approval>) -> Self {
        Self {
            items: items.into_iter().map(|a| (a.id.clone(), a)).collect(),
        }
    }

    /// Makes a (persisted) row visible.
    pub fn put(&mut self, approval: Approval) {
        self.items.insert(approval.id.clone(), approval);
    }

    /// One approval.
    pub fn get(&self, id: &ApprovalId) -> Option<&Approval> {
        self.items.get(id)
    }

    /// Every approval, newest first.
    pub fn list(&self) -> Vec<&Approval> {
        let mut all: Vec<&Approval> = self.items.values().collect();
        all.sort_by_key(|a| std::cmp::Reverse(a.created_ms));
        all
    }

    /// What covers a call of `requester` with a binding hashing to `hash`.
    pub fn find(&self, requester: &Requester, hash: BindingHash, now_ms: i64) -> Found {
        let same_agent =
            |a: &&Approval| a.requester.agent_id == requester.agent_id && a.binding.hash() == hash;
        let mine = self.items.values().filter(same_agent);
        let mut pending = None;
        let mut once = None;
        for a in mine {
            match a.state {
                ApprovalState::AllowedAlways { .. } => return Found::Always(a.id.clone()),
                ApprovalState::AllowedOnce { .. }
                    if a.live(now_ms) && a.requester.session_key == requester.session_key =>
                {
                    once.get_or_insert(a);
                }
                ApprovalState::Pending
                    if a.live(now_ms) && a.requester.session_key == requester.session_key =>
                {
                    pending.get_or_insert(a);
                }
                _ => {}
            }
        }
        match (once, pending) {
            (Some(a), _) => Found::Once(Box::new(Approval {
                state: ApprovalState::Used { at_ms: now_ms },
                ..a.clone()
            })),
            (None, Some(a)) => Found::Pending(a.id.clone()),
            (None, None) => Found::Nothing,
        }
    }

    /// A new pending request (not yet in the book: persist it, then put it).
    pub fn open(
        &self,
        id: ApprovalId,
        requester: Requester,
        binding: Binding,
        reason: String,
        now_ms: i64,
    ) -> Result<Approval, BookError> {
        let waiting = self
            .items
            .values()
            .filter(|a| {
                a.requester.agent_id == requester.agent_id
                    && a.state == ApprovalState::Pending
                    && a.live(now_ms)
            })
            .count();
        if waiting >= MAX_PENDING_PER_AGENT {
            return Err(BookError::TooManyPending {
                agent_id: requester.agent_id,
            });
        }
        Ok(Approval {
            id,
            requester,
            binding,
            reason,
            created_ms: now_ms,
            state: ApprovalState::Pending,
        })
    }

    /// The owner's decision on `id` (the updated row: persist it, then put it). A pending
    /// request takes any decision; an allow-always entry can only be denied (revoked).
    pub fn resolve(
        &self,
        id: &ApprovalId,
        decision: Decision,
        now_ms: i64,
    ) -> Result<Approval, BookError> {
        let a = self
            .items
            .get(id)
            .ok_or_else(|| BookError::NotFound(id.to_string()))?;
        let state = match (a.state, decision) {
            (ApprovalState::Pending, _) if !a.live(now_ms) => {
                return Err(BookError::Expired(id.to_string()));
            }
            (ApprovalState::Pending, Decision::AllowOnce) => {
                ApprovalState::AllowedOnce { at_ms: now_ms }
            }
            (ApprovalState::Pending, Decision::AllowAlways) => {
                ApprovalState::AllowedAlways { at_ms: now_ms }
            }
            (ApprovalState::Pending | ApprovalState::AllowedAlways { .. }, Decision::Deny) => {
                ApprovalState::Denied { at_ms: now_ms }
            }
            (state, _) => {
                return Err(BookError::AlreadyResolved {
                    id: id.to_string(),
                    state: state.name(),
                });
            }
        };
        Ok(Approval { state, ..a.clone() })
    }

    /// What the call waiting on `id` may do now.
    pub fn take(&self, id: &ApprovalId, now_ms: i64) -> Taken {
        let Some(a) = self.items.get(id) else {
            return Taken::Gone;
        };
        match a.state {
            ApprovalState::AllowedAlways { .. } => Taken::Always,
            ApprovalState::Denied { .. } => Taken::Denied,
            ApprovalState::Used { .. } => Taken::Gone,
            _ if !a.live(now_ms) => Taken::Gone,
            ApprovalState::Pending => Taken::Pending,
            ApprovalState::AllowedOnce { .. } => Taken::Once(Box::new(Approval {
                state: ApprovalState::Used { at_ms: now_ms },
                ..a.clone()
            })),
        }
    }

    /// Entries to forget: everything but allow-always, [`RETAIN_MS`] after its request.
    pub fn stale(&self, now_ms: i64) -> Vec<ApprovalId> {
        self.items
            .values()
            .filter(|a| {
                !matches!(a.state, ApprovalState::AllowedAlways { .. })
                    && now_ms.saturating_sub(a.created_ms) >= RETAIN_MS
            })
            .map(|a| a.id.clone())
            .collect()
    }

    /// Forgets `id`.
    pub fn remove(&mut self, id: &ApprovalId) {
        self.items.remove(id);
    }
}

#[cfg(test)]
#[path = "book_tests.rs"]
mod tests;
