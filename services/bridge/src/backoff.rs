//! Capped exponential backoff with jitter, for reconnects and retries (pure apart from the
//! random jitter).

use std::time::Duration;

use rand::Rng;

/// Delays that double from `initial` up to `max`, each with up to 20% random jitter
/// subtracted so replicas do not retry in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// A backoff starting at `initial` (at least 1 ms), capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        let max = max.max(initial);
        Self {
            initial,
            max,
            current: initial,
        }
    }

    /// The next delay; each call doubles the following one, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = self.current.saturating_mul(2).min(self.max);
        let jitter = rand::rng().random_range(0.0..0.2);
        base.mul_f64(1.0 - jitter)
    }

    /// Starts over from the initial delay (after a success).
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let delays: Vec<Duration> = (0..5).map(|_| b.next_delay()).collect();
        let bounds = [100, 200, 350, 350, 350];
        for (d, hi) in delays.iter().zip(bounds) {
            assert!(*d <= Duration::from_millis(hi), "{d:?} > {hi}");
            assert!(*d >= Duration::from_millis(hi * 8 / 10), "{d:?} too small");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
