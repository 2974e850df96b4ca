//! [`NonceTable`]: nonces with their issue time, indexed both ways so that lookup, removal,
//! eviction of the oldest and forgetting by age are all logarithmic.

use std::collections::BTreeMap;

use crate::fields::Nonce;

/// Orders entries by issue time, then by insertion (`seq`), whatever the clock did.
type AgeKey = (u64, u64);

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct NonceTable {
    by_nonce: BTreeMap<Nonce, AgeKey>,
    by_age: BTreeMap<AgeKey, Nonce>,
}

impl NonceTable {
    pub(crate) fn len(&self) -> usize {
        self.by_nonce.len()
    }

    pub(crate) fn contains(&self, nonce: &Nonce) -> bool {
        self.by_nonce.contains_key(nonce)
    }

    /// Adds `nonce` (callers ensure it is absent), then evicts the oldest while above `max`.
    pub(crate) fn insert(&mut self, nonce: Nonce, issued_at_ms: u64, seq: u64, max: usize) {
        let key = (issued_at_ms, seq);
        self.by_nonce.insert(nonce, key);
        self.by_age.insert(key, nonce);
        while self.by_nonce.len() > max {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            self.by_nonce.remove(&oldest);
        }
    }

    /// Removes `nonce`, returning when it was issued.
    pub(crate) fn remove(&mut self, nonce: &Nonce) -> Option<u64> {
        let key = self.by_nonce.remove(nonce)?;
        self.by_age.remove(&key);
        Some(key.0)
    }

    /// Forgets every nonce issued before `cutoff_ms`.
    pub(crate) fn forget_issued_before(&mut self, cutoff_ms: u64) {
        let keep = self.by_age.split_off(&(cutoff_ms, 0));
        for nonce in std::mem::replace(&mut self.by_age, keep).into_values() {
            self.by_nonce.remove(&nonce);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(b: u8) -> Nonce {
        Nonce::from_bytes([b; 32])
    }

    #[test]
    fn evicts_oldest_and_forgets_by_age() {
        let mut t = NonceTable::default();
        t.insert(n(1), 30, 0, 2);
        t.insert(n(2), 10, 1, 2);
        t.insert(n(3), 20, 2, 2);
        // n(2) was issued earliest, so it went first.
        assert!(!t.contains(&n(2)));
        assert_eq!(t.len(), 2);
        t.forget_issued_before(25);
        assert!(!t.contains(&n(3)));
        assert!(t.contains(&n(1)));
        assert_eq!(t.remove(&n(1)), Some(30));
        assert_eq!(t.remove(&n(1)), None);
        assert_eq!(t.len(), 0);
    }
}
