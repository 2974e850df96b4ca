//! Rate limits for side-effecting methods (`chat.send` and friends): a token bucket per
//! connection or device.
//!
//! A bucket holds up to `burst` tokens and refills at `per_minute`; each call takes one.
//! [`KeyedBuckets`] keeps one bucket per key in bounded memory: a full bucket is the same as
//! a fresh one, so those are dropped first. Integer arithmetic only; time is passed in as
//! unix milliseconds.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

/// One token, in the bucket's internal units (refill adds `per_minute` units per ms).
const TOKEN: u64 = 60_000;

/// Size and speed of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketConfig {
    /// Calls allowed back to back.
    pub burst: u32,
    /// Sustained calls per minute.
    pub per_minute: u32,
}

impl Default for BucketConfig {
    /// 10 back to back, 30 a minute sustained.
    fn default() -> Self {
        Self {
            burst: 10,
            per_minute: 30,
        }
    }
}

/// Refused: too many calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests; retry in {} ms", retry_after.as_millis())]
pub struct Throttled {
    /// When a call will be allowed again.
    pub retry_after: Duration,
}

/// One token bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    config: BucketConfig,
    level: u64,
    last_ms: i64,
}

impl TokenBucket {
    /// A full bucket. `burst` and `per_minute` of 0 are treated as 1.
    pub fn new(config: BucketConfig, now_ms: i64) -> Self {
        let config = BucketConfig {
            burst: config.burst.max(1),
            per_minute: config.per_minute.max(1),
        };
        Self {
            config,
            level: capacity(config),
            last_ms: now_ms,
        }
    }

    /// Takes one token, or says when one will be available.
    pub fn try_take(&mut self, now_ms: i64) -> Result<(), Throttled> {
        self.refill(now_ms);
        if self.level >= TOKEN {
            self.level -= TOKEN;
            return Ok(());
        }
        let rate = u64::from(self.config.per_minute);
        let missing = TOKEN - self.level;
        Err(Throttled {
            retry_after: Duration::from_millis(missing.div_ceil(rate)),
        })
    }

    /// Whether the bucket is full at `now_ms` (it then behaves like a fresh one).
    pub fn is_full(&self, now_ms: i64) -> bool {
        let mut probe = self.clone();
        probe.refill(now_ms);
        probe.level == capacity(self.config)
    }

    fn refill(&mut self, now_ms: i64) {
        let elapsed = u64::try_from(now_ms.saturating_sub(self.last_ms)).unwrap_or(0);
        let added = elapsed.saturating_mul(u64::from(self.config.per_minute));
        self.level = self.level.saturating_add(added).min(capacity(self.config));
        self.last_ms = self.last_ms.max(now_ms);
    }
}

fn capacity(config: BucketConfig) -> u64 {
    u64::from(config.burst) * TOKEN
}

/// One bucket per key (a connection id, a device id), at most `max_keys` of them.
#[derive(Debug, Clone)]
pub struct KeyedBuckets<K> {
    config: BucketConfig,
    max_keys: usize,
    buckets: HashMap<K, TokenBucket>,
}

impl<K: Hash + Eq + Clone> KeyedBuckets<K> {
    /// No buckets yet; `max_keys` of 0 is treated as 1.
    pub fn new(config: BucketConfig, max_keys: usize) -> Self {
        Self {
            config,
            max_keys: max_keys.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes one token from `key`'s bucket.
    pub fn try_take(&mut self, key: &K, now_ms: i64) -> Result<(), Throttled> {
        if !self.buckets.contains_key(key) && self.buckets.len() >= self.max_keys {
            self.make_room(now_ms);
        }
        let config = self.config;
        self.buckets
            .entry(key.clone())
            .or_insert_with(|| TokenBucket::new(config, now_ms))
            .try_take(now_ms)
    }

    /// Forgets `key` (its connection closed).
    pub fn remove(&mut self, key: &K) {
        self.buckets.remove(key);
    }

    /// How many buckets are held.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Drops full buckets (nothing is lost); if none is full, the fullest one.
    fn make_room(&mut self, now_ms: i64) {
        self.buckets.retain(|_, b| !b.is_full(now_ms));
        if self.buckets.len() < self.max_keys {
            return;
        }
        let fullest = self
            .buckets
            .iter_mut()
            .map(|(k, b)| {
                b.refill(now_ms);
                (b.level, k.clone())
            })
            .max_by_key(|(level, _)| *level)
            .map(|(_, k)| k);
        if let Some(k) = fullest {
            self.buckets.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn burst_then_steady_rate() {
        let config = BucketConfig {
            burst: 3,
            per_minute: 6,
        };
        let mut b = TokenBucket::new(config, 0);
        for _ in 0..3 {
            assert_eq!(b.try_take(0), Ok(()));
        }
        assert_eq!(
            b.try_take(0),
            Err(Throttled {
                retry_after: Duration::from_secs(10)
            })
        );
        assert!(b.try_take(9_999).is_err());
        assert_eq!(b.try_take(10_000), Ok(()));
        assert!(b.try_take(10_000).is_err());
        assert!(b.is_full(10_000 + 30_000));
    }

    #[test]
    fn keys_are_independent_and_bounded() {
        let config = BucketConfig {
            burst: 1,
            per_minute: 1,
        };
        let mut k = KeyedBuckets::new(config, 2);
        assert!(k.try_take(&"a", 0).is_ok());
        assert!(k.try_take(&"a", 0).is_err());
        assert!(k.try_take(&"b", 0).is_ok());
        assert!(k.try_take(&"c", 0).is_ok());
        assert_eq!(k.len(), 2);
        k.remove(&"c");
        assert_eq!(k.len(), 1);
    }

    proptest! {
        /// Over any stretch of time, calls admitted ≤ burst + rate × elapsed.
        #[test]
        fn never_exceeds_burst_plus_rate(
            burst in 1u32..20,
            per_minute in 1u32..600,
            gaps in prop::collection::vec(0i64..5_000, 1..400),
        ) {
            let mut b = TokenBucket::new(BucketConfig { burst, per_minute }, 0);
            let mut now = 0i64;
            let mut admitted = 0u64;
            for gap in gaps {
                now += gap;
                if b.try_take(now).is_ok() {
                    admitted += 1;
                }
                let bound = u64::from(burst) + u64::try_from(now).unwrap() * u64::from(per_minute) / 60_000;
                prop_assert!(admitted <= bound, "{admitted} > {bound} at {now}");
            }
        }

        #[test]
        fn retry_after_is_honest(burst in 1u32..5, per_minute in 1u32..120) {
            let mut b = TokenBucket::new(BucketConfig { burst, per_minute }, 0);
            while b.try_take(0).is_ok() {}
            let Err(Throttled { retry_after }) = b.try_take(0) else { unreachable!() };
            let wait = i64::try_from(retry_after.as_millis()).unwrap();
            prop_assert!(b.clone().try_take(wait - 1).is_err());
            prop_assert!(b.try_take(wait).is_ok());
        }
    }
}
