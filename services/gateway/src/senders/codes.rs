//! The sender pairing-code book, pure: strangers' requests, their one-time codes, the
//! owner's approvals and rejections, and the senders the owner paired. Nothing here reads
//! a clock or the database: callers pass `now` and a CSPRNG, and persist each returned row
//! before applying it.
//!
//! Rules (SECURITY.md, "Senders"):
//! - a code is [`CODE_LEN`] characters of [`CODE_ALPHABET`] (no `0`/`O`/`1`/`I`), drawn
//!   from a CSPRNG, valid [`CODE_TTL_MS`] (1 hour);
//! - at most [`MAX_PENDING_PER_ACCOUNT`] requests wait per channel account; further
//!   strangers get nothing until one is answered or expires;
//! - a request's code is sent once: a stranger who writes again while the request waits
//!   (or within the hour after the owner rejected it) gets nothing more;
//! - a code approves only a request on the channel it was issued for, only while the
//!   request waits and is not expired, and only once; codes are compared in constant time.

use std::collections::BTreeMap;
use std::fmt;

use rand::Rng;
use subtle::ConstantTimeEq;

/// Characters of a pairing code.
pub const CODE_LEN: usize = 8;
/// The code alphabet: A–Z and 2–9 without `0`, `O`, `1` and `I` (32 characters).
pub const CODE_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// How long a code (and a request) is valid: 1 hour.
pub const CODE_TTL_MS: i64 = 60 * 60 * 1000;
/// Most requests waiting per channel account.
pub const MAX_PENDING_PER_ACCOUNT: usize = 3;

/// A pairing code.
#[derive(Clone, Copy)]
pub struct PairingCode([u8; CODE_LEN]);

impl PairingCode {
    /// A fresh code from `rng` (a CSPRNG: the caller passes `rand::rng()`).
    pub fn generate<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut code = [0u8; CODE_LEN];
        for c in &mut code {
            *c = CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())];
        }
        Self(code)
    }

    /// Parses a code as typed by the owner (surrounding space ignored, lower case
    /// accepted).
    pub fn parse(raw: &str) -> Result<Self, CodeError> {
        let raw = raw.trim();
        let bytes = raw.as_bytes();
        if bytes.len() != CODE_LEN {
            return Err(CodeError::Malformed);
        }
        let mut code = [0u8; CODE_LEN];
        for (out, b) in code.iter_mut().zip(bytes) {
            let up = b.to_ascii_uppercase();
            if !CODE_ALPHABET.contains(&up) {
                return Err(CodeError::Malformed);
            }
            *out = up;
        }
        Ok(Self(code))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Always ASCII from the alphabet.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// Constant-time comparison.
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl PartialEq for PairingCode {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for PairingCode {}

impl std::hash::Hash for PairingCode {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for PairingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A live code approves a stranger: keep it out of debug output and logs.
        f.write_str("PairingCode(..)")
    }
}

/// A stranger on one channel account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SenderKey {
    /// The channel.
    pub channel: String,
    /// The channel account the stranger wrote to.
    pub account_id: String,
    /// The stranger's stable id.
    pub sender_id: String,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestState {
    /// Waiting for the owner.
    Pending,
    /// Rejected by the owner (remembered until the request would have expired).
    Rejected {
        /// When.
        at_ms: i64,
    },
}

/// A stranger's request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SenderRequest {
    /// Who, where.
    pub key: SenderKey,
    /// The code sent to them.
    pub code: PairingCode,
    /// When (unix ms).
    pub created_ms: i64,
    /// Where it stands.
    pub state: RequestState,
}

impl SenderRequest {
    /// When the code stops working.
    pub fn expires_ms(&self) -> i64 {
        self.created_ms.saturating_add(CODE_TTL_MS)
    }

    fn live(&self, now_ms: i64) -> bool {
        now_ms < self.expires_ms()
    }
}

/// A sender the owner paired.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PairedSender {
    /// The channel.
    pub channel: String,
    /// Their stable id.
    pub sender_id: String,
    /// The account they paired through.
    pub account_id: String,
    /// When (unix ms).
    pub approved_ms: i64,
}

/// What a stranger's message leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    /// A new request: persist it, send its code once, then [`SenderBook::put_request`].
    Issue(SenderRequest),
    /// The request already waits; its code was sent before.
    AlreadyPending,
    /// The owner rejected this sender within the last hour.
    Rejected,
    /// [`MAX_PENDING_PER_ACCOUNT`] requests wait on this account.
    Full,
}

/// Why an owner's approve or reject failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Not 8 characters of the alphabet.
    #[error(
        "not a pairing code: codes are 8 characters of A-Z and 2-9 without O and I, e.g. ABCD2345"
    )]
    Malformed,
    /// No waiting request on this channel has this code.
    #[error(
        "no pending pairing request on {channel} has this code; check the channel and the code (`pincer pairing list`)"
    )]
    NotFound {
        /// The channel asked about.
        channel: String,
    },
    /// The request expired.
    #[error("this pairing code expired; the sender gets a new code when they write again")]
    Expired,
    /// No such paired sender.
    #[error("{sender_id} is not a paired sender on {channel}")]
    NotPaired {
        /// The channel.
        channel: String,
        /// The sender.
        sender_id: String,
    },
}

/// Requests and paired senders.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SenderBook {
    requests: BTreeMap<SenderKey, SenderRequest>,
    paired: BTreeMap<(String, String), PairedSender>,
}

impl SenderBook {
    /// A book holding rows read back from the database.
    pub fn restore(
        requests: impl IntoIterator<Item = SenderRequest>,
        paired: impl IntoIterator<Item = PairedSender>,
    ) -> Self {
        Self {
            requests: requests.into_iter().map(|r| (r.key.clone(), r)).collect(),
            paired: paired
                .into_iter()
                .map(|p| ((p.channel.clone(), p.sender_id.clone()), p))
                .collect(),
        }
    }

    /// Whether the owner paired `sender_id` on `channel`.
    pub fn is_paired(&self, channel: &str, sender_id: &str) -> bool {
        self.paired
            .contains_key(&(channel.to_owned(), sender_id.to_owned()))
    }

    /// Requests, oldest first.
    pub fn requests(&self) -> Vec<&SenderRequest> {
        let mut all: Vec<&SenderRequest> = self.requests.values().collect();
        all.sort_by_key(|r| r.created_ms);
        all
    }

    /// Paired senders, by channel and id.
    pub fn paired(&self) -> impl Iterator<Item = &PairedSender> {
        self.paired.values()
    }

    /// Requests waiting (live) on a channel account.
    pub fn pending_on(&self, channel: &str, account_id: &str, now_ms: i64) -> usize {
        self.requests
            .values()
            .filter(|r| {
                r.key.channel == channel
                    && r.key.account_id == account_id
                    && r.state == RequestState::Pending
                    && r.live(now_ms)
            })
            .count()
    }

    /// A stranger wrote: a new request with a fresh code from `rng`, or why not.
    pub fn request<R: rand::CryptoRng + ?Sized>(
        &self,
        key: SenderKey,
        now_ms: i64,
        rng: &mut R,
    ) -> RequestOutcome {
        if let Some(existing) = self.requests.get(&key).filter(|r| r.live(now_ms)) {
            return match existing.state {
                RequestState::Pending => RequestOutcome::AlreadyPending,
                RequestState::Rejected { .. } => RequestOutcome::Rejected,
            };
        }
        if self.pending_on(&key.channel, &key.account_id, now_ms) >= MAX_PENDING_PER_ACCOUNT {
            return RequestOutcome::Full;
        }
        // Codes are unique among stored requests so one code never names two strangers.
        let code = loop {
            let code = PairingCode::generate(rng);
            if !self.requests.values().any(|r| r.code.ct_eq(&code)) {
                break code;
            }
        };
        RequestOutcome::Issue(SenderRequest {
            key,
            code,
            created_ms: now_ms,
            state: RequestState::Pending,
        })
    }

    /// Makes a (persisted) request visible, replacing an earlier one of the same sender.
    pub fn put_request(&mut self, request: SenderRequest) {
        self.requests.insert(request.key.clone(), request);
    }

    /// The waiting request on `channel` whose code is `code`. Every request of the channel
    /// is compared, each in constant time.
    fn find(
        &self,
        channel: &str,
        code: &PairingCode,
        now_ms: i64,
    ) -> Result<&SenderRequest, CodeError> {
        let mut found = None;
        for r in self.requests.values() {
            let same = r.code.ct_eq(code);
            if same && r.key.channel == channel && r.state == RequestState::Pending {
                found = Some(r);
            }
        }
        match found {
            None => Err(CodeError::NotFound {
                channel: channel.to_owned(),
            }),
            Some(r) if !r.live(now_ms) => Err(CodeError::Expired),
            Some(r) => Ok(r),
        }
    }

    /// The owner approves `code` on `channel`: the sender to pair (persist it and drop the
    /// request, then [`Self::apply_approval`]).
    pub fn approve(
        &self,
        channel: &str,
        code: &PairingCode,
        now_ms: i64,
    ) -> Result<(SenderKey, PairedSender), CodeError> {
        let r = self.find(channel, code, now_ms)?;
        Ok((
            r.key.clone(),
            PairedSender {
                channel: r.key.channel.clone(),
                sender_id: r.key.sender_id.clone(),
                account_id: r.key.account_id.clone(),
                approved_ms: now_ms,
            },
        ))
    }

    /// Makes a (persisted) approval visible: the request is gone, the sender paired. The
    /// code can never be used again.
    pub fn apply_approval(&mut self, key: &SenderKey, paired: PairedSender) {
        self.requests.remove(key);
        self.paired
            .insert((paired.channel.clone(), paired.sender_id.clone()), paired);
    }

    /// The owner rejects `code` on `channel`: the request, now rejected (persist it, then
    /// [`Self::put_request`]). The sender gets nothing until the hour is over.
    pub fn reject(
        &self,
        channel: &str,
        code: &PairingCode,
        now_ms: i64,
    ) -> Result<SenderRequest, CodeError> {
        let r = self.find(channel, code, now_ms)?;
        Ok(SenderRequest {
            state: RequestState::Rejected { at_ms: now_ms },
            ..r.clone()
        })
    }

    /// The owner unpairs a sender: the row to delete (then [`Self::remove_paired`]).
    pub fn unpair(&self, channel: &str, sender_id: &str) -> Result<PairedSender, CodeError> {
        self.paired
            .get(&(channel.to_owned(), sender_id.to_owned()))
            .cloned()
            .ok_or_else(|| CodeError::NotPaired {
                channel: channel.to_owned(),
                sender_id: sender_id.to_owned(),
            })
    }

    /// Forgets a (deleted) paired sender.
    pub fn remove_paired(&mut self, channel: &str, sender_id: &str) {
        self.paired
            .remove(&(channel.to_owned(), sender_id.to_owned()));
    }

    /// Requests past their hour (pending or rejected): delete them, then
    /// [`Self::remove_request`].
    pub fn stale(&self, now_ms: i64) -> Vec<SenderKey> {
        self.requests
            .values()
            .filter(|r| !r.live(now_ms))
            .map(|r| r.key.clone())
            .collect()
    }

    /// Forgets a (deleted) request.
    pub fn remove_request(&mut self, key: &SenderKey) {
        self.requests.remove(key);
    }
}

#[cfg(test)]
#[path = "codes_tests.rs"]
mod tests;
