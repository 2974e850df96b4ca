//! Failed-authentication limits per client address and credential class.
//!
//! Default: 10 failures within 60 s lock the (address, class) pair out for 5 minutes. The
//! caller asks [`AuthFailureLimiter::check`] before verifying a credential, then reports
//! the outcome with [`AuthFailureLimiter::record_failure`] or
//! [`AuthFailureLimiter::record_success`]. Addresses are normalised (`::ffff:1.2.3.4` is
//! `1.2.3.4`). Memory is bounded: expired entries are dropped, and when the table is full
//! the least recently touched entry is evicted.
//!
//! Time is passed in as unix milliseconds; nothing here reads a clock.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use super::cidr::normalize_ip;

/// Which kind of credential failed; each class is limited separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CredentialClass {
    /// The gateway's shared token.
    Token,
    /// The gateway password.
    Password,
    /// A device signature or device token.
    DeviceSignature,
    /// A bearer token on the HTTP API.
    BearerHttp,
}

/// Limits for failed authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthLimitConfig {
    /// Failures allowed within `window`; the last of them starts a lockout.
    pub max_failures: u32,
    /// The counting window.
    pub window: Duration,
    /// How long a lockout lasts.
    pub lockout: Duration,
    /// At most this many (address, class) entries are kept.
    pub max_entries: usize,
}

impl Default for AuthLimitConfig {
    fn default() -> Self {
        Self {
            max_failures: 10,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(5 * 60),
            max_entries: 16_384,
        }
    }
}

/// Whether an attempt may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthCheck {
    /// Verify the credential.
    Allowed,
    /// Refuse without verifying.
    LockedOut {
        /// When to try again.
        retry_after: Duration,
    },
}

type Key = (IpAddr, CredentialClass);

#[derive(Debug, Clone, Default)]
struct Entry {
    /// Times of recent failures, oldest first; at most `max_failures`.
    failures: VecDeque<i64>,
    locked_until: Option<i64>,
    touched: i64,
}

/// Counts failed authentication per (normalised address, credential class).
#[derive(Debug, Clone)]
pub struct AuthFailureLimiter {
    config: AuthLimitConfig,
    entries: HashMap<Key, Entry>,
    by_age: BTreeSet<(i64, Key)>,
}

impl AuthFailureLimiter {
    /// An empty limiter. `max_failures` and `max_entries` of 0 are treated as 1.
    pub fn new(config: AuthLimitConfig) -> Self {
        Self {
            config: AuthLimitConfig {
                max_failures: config.max_failures.max(1),
                max_entries: config.max_entries.max(1),
                ..config
            },
            entries: HashMap::new(),
            by_age: BTreeSet::new(),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> AuthLimitConfig {
        self.config
    }

    /// Whether `ip` may attempt a `class` credential now.
    pub fn check(&self, ip: IpAddr, class: CredentialClass, now_ms: i64) -> AuthCheck {
        match self.entries.get(&(normalize_ip(ip), class)) {
            Some(entry) => lock_state(entry, now_ms),
            None => AuthCheck::Allowed,
        }
    }

    /// Records a failed attempt; returns the state for the next attempt. Failures while
    /// locked out are ignored (the lockout is not extended).
    pub fn record_failure(&mut self, ip: IpAddr, class: CredentialClass, now_ms: i64) -> AuthCheck {
        self.purge_expired(now_ms);
        let key = (normalize_ip(ip), class);
        if let Some(entry) = self.entries.get(&key)
            && let locked @ AuthCheck::LockedOut { .. } = lock_state(entry, now_ms)
        {
            return locked;
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= self.config.max_entries {
            self.evict_oldest();
        }
        let window = millis(self.config.window);
        let lockout = millis(self.config.lockout);
        let max = usize::try_from(self.config.max_failures).unwrap_or(usize::MAX);
        let entry = self.entries.entry(key).or_default();
        self.by_age.remove(&(entry.touched, key));
        entry.touched = now_ms;
        self.by_age.insert((now_ms, key));
        entry.locked_until = None;
        while entry
            .failures
            .front()
            .is_some_and(|t| now_ms.saturating_sub(*t) >= window)
        {
            entry.failures.pop_front();
        }
        entry.failures.push_back(now_ms);
        if entry.failures.len() >= max {
            entry.failures.clear();
            entry.locked_until = Some(now_ms.saturating_add(lockout));
        }
        lock_state(entry, now_ms)
    }

    /// Records a successful attempt: forgets the failures of this (address, class).
    pub fn record_success(&mut self, ip: IpAddr, class: CredentialClass) {
        let key = (normalize_ip(ip), class);
        if let Some(entry) = self.entries.remove(&key) {
            self.by_age.remove(&(entry.touched, key));
        }
    }

    /// How many (address, class) entries are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops entries whose failures and lockout have all run out.
    pub fn purge_expired(&mut self, now_ms: i64) {
        let ttl = millis(self.config.window.max(self.config.lockout));
        while let Some(&(touched, key)) = self.by_age.first() {
            if now_ms.saturating_sub(touched) < ttl {
                break;
            }
            self.by_age.pop_first();
            self.entries.remove(&key);
        }
    }

    fn evict_oldest(&mut self) {
        if let Some((_, key)) = self.by_age.pop_first() {
            self.entries.remove(&key);
        }
    }
}

fn lock_state(entry: &Entry, now_ms: i64) -> AuthCheck {
    match entry.locked_until {
        Some(until) if until > now_ms => AuthCheck::LockedOut {
            retry_after: Duration::from_millis(u64::try_from(until - now_ms).unwrap_or(0)),
        },
        _ => AuthCheck::Allowed,
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: i64 = 1_700_000_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The caller's loop: check, and on `Allowed` verify (here: always wrong).
    fn attempt(l: &mut AuthFailureLimiter, who: IpAddr, now: i64) -> AuthCheck {
        match l.check(who, CredentialClass::Token, now) {
            AuthCheck::Allowed => {
                l.record_failure(who, CredentialClass::Token, now);
                AuthCheck::Allowed
            }
            locked => locked,
        }
    }

    #[test]
    fn ten_failures_allowed_then_locked_for_five_minutes() {
        let mut l = AuthFailureLimiter::new(AuthLimitConfig::default());
        let who = ip("203.0.113.5");
        for i in 0..10 {
            assert_eq!(
                attempt(&mut l, who, T0 + i * 1000),
                AuthCheck::Allowed,
                "attempt {i}"
            );
        }
        assert_eq!(
            attempt(&mut l, who, T0 + 10_000),
            AuthCheck::LockedOut {
                retry_after: Duration::from_millis(300_000 - 1_000)
            }
        );
        assert!(matches!(
            attempt(&mut l, who, T0 + 9_000 + 299_999),
            AuthCheck::LockedOut { .. }
        ));
        assert_eq!(
            attempt(&mut l, who, T0 + 9_000 + 300_000),
            AuthCheck::Allowed
        );
        assert_eq!(
            l.check(ip("203.0.113.6"), CredentialClass::Token, T0),
            AuthCheck::Allowed
        );
        assert_eq!(
            l.check(who, CredentialClass::Password, T0 + 10_000),
            AuthCheck::Allowed
        );
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let mut l = AuthFailureLimiter::new(AuthLimitConfig::default());
        let who = ip("198.51.100.1");
        for i in 0..100 {
            assert_eq!(attempt(&mut l, who, T0 + i * 7_000), AuthCheck::Allowed);
        }
    }

    #[test]
    fn success_clears_failures() {
        let mut l = AuthFailureLimiter::new(AuthLimitConfig::default());
        let who = ip("198.51.100.1");
        for i in 0..9 {
            attempt(&mut l, who, T0 + i);
        }
        l.record_success(who, CredentialClass::Token);
        assert!(l.is_empty());
        for i in 0..10 {
            assert_eq!(attempt(&mut l, who, T0 + 100 + i), AuthCheck::Allowed);
        }
    }

    #[test]
    fn mapped_ipv6_is_the_same_address() {
        let mut l = AuthFailureLimiter::new(AuthLimitConfig::default());
        for i in 0..5 {
            attempt(&mut l, ip("127.0.0.1"), T0 + i);
            attempt(&mut l, ip("::ffff:127.0.0.1"), T0 + i);
        }
        assert!(matches!(
            l.check(ip("127.0.0.1"), CredentialClass::Token, T0 + 10),
            AuthCheck::LockedOut { .. }
        ));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn memory_is_bounded_and_expired_entries_go() {
        let config = AuthLimitConfig {
            max_entries: 4,
            ..AuthLimitConfig::default()
        };
        let mut l = AuthFailureLimiter::new(config);
        for i in 0..10u8 {
            l.record_failure(
                IpAddr::from([10, 0, 0, i]),
                CredentialClass::Token,
                T0 + i64::from(i),
            );
            assert!(l.len() <= 4);
        }
        // The oldest were evicted, the newest kept.
        assert_eq!(
            l.check(IpAddr::from([10, 0, 0, 9]), CredentialClass::Token, T0 + 10),
            AuthCheck::Allowed
        );
        assert!(
            l.entries
                .contains_key(&(IpAddr::from([10, 0, 0, 9]), CredentialClass::Token))
        );
        assert!(
            !l.entries
                .contains_key(&(IpAddr::from([10, 0, 0, 0]), CredentialClass::Token))
        );
        l.purge_expired(T0 + 300_009);
        assert!(l.is_empty());
        assert!(l.by_age.is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Wait(i64),
        Fail,
        Succeed,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0i64..20_000).prop_map(Op::Wait),
            6 => Just(Op::Fail),
            1 => Just(Op::Succeed),
        ]
    }

    proptest! {
        /// Between successes, no window of 60 s admits more than 10 failed attempts, and a
        /// lockout, once started, refuses everything for 5 minutes.
        #[test]
        fn never_more_than_max_failures_per_window(ops in prop::collection::vec(op(), 1..300)) {
            let config = AuthLimitConfig::default();
            let mut l = AuthFailureLimiter::new(config);
            let who = ip("::ffff:192.0.2.7");
            let mut now = T0;
            let mut admitted: Vec<i64> = Vec::new();
            let mut locked_since: Option<i64> = None;
            for op in ops {
                match op {
                    Op::Wait(ms) => now += ms,
                    Op::Succeed => {
                        l.record_success(ip("192.0.2.7"), CredentialClass::Token);
                        admitted.clear();
                        locked_since = None;
                    }
                    Op::Fail => match l.check(who, CredentialClass::Token, now) {
                        AuthCheck::Allowed => {
                            if let Some(since) = locked_since {
                                prop_assert!(now - since >= 300_000, "lockout ended early");
                            }
                            admitted.push(now);
                            let recent = admitted.iter().filter(|t| now - **t < 60_000).count();
                            prop_assert!(recent <= 10, "{recent} failures admitted in a window");
                            if let AuthCheck::LockedOut { .. } = l.record_failure(who, CredentialClass::Token, now) {
                                locked_since = Some(now);
                                admitted.clear();
                            }
                        }
                        AuthCheck::LockedOut { retry_after } => {
                            prop_assert!(retry_after <= config.lockout);
                        }
                    },
                }
            }
        }

        #[test]
        fn entries_stay_bounded(addrs in prop::collection::vec(any::<[u8; 4]>(), 1..200), cap in 1usize..20) {
            let mut l = AuthFailureLimiter::new(AuthLimitConfig { max_entries: cap, ..AuthLimitConfig::default() });
            for (i, a) in addrs.into_iter().enumerate() {
                l.record_failure(IpAddr::from(a), CredentialClass::BearerHttp, T0 + i64::try_from(i).unwrap());
                prop_assert!(l.len() <= cap);
                prop_assert_eq!(l.len(), l.by_age.len());
            }
        }
    }
}
