//! Flood pacing: a token bucket shared by every line the adapter sends on one connection
//! (pure; the caller sleeps). IRC servers disconnect clients that send too fast ("Excess
//! Flood"); the usual client rule is a small burst, then one line every couple of seconds.

use std::time::{Duration, Instant};

/// Burst size and refill interval of the outbound pacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodSettings {
    /// Lines that may go out back to back after a quiet period (at least 1).
    pub burst: u32,
    /// After the burst, one more line per this interval.
    pub interval: Duration,
}

impl Default for FloodSettings {
    /// Burst 4, then one line per 2 s.
    fn default() -> Self {
        Self {
            burst: 4,
            interval: Duration::from_secs(2),
        }
    }
}

/// A token bucket: `burst` tokens, one more every `interval`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    settings: FloodSettings,
    /// Tokens available at `updated` (fractional while refilling).
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(settings: FloodSettings, now: Instant) -> Self {
        let settings = FloodSettings {
            burst: settings.burst.max(1),
            interval: settings.interval,
        };
        Self {
            settings,
            tokens: f64::from(settings.burst),
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated);
        let gained = if self.settings.interval.is_zero() {
            f64::from(self.settings.burst)
        } else {
            elapsed.as_secs_f64() / self.settings.interval.as_secs_f64()
        };
        self.tokens = (self.tokens + gained).min(f64::from(self.settings.burst));
        self.updated = now;
    }

    /// Takes a token if one is available at `now`; otherwise says how long until one is
    /// (and takes nothing).
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - self.tokens;
        Err(self
            .settings
            .interval
            .mul_f64(missing)
            .max(Duration::from_millis(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_paces() {
        let start = Instant::now();
        let settings = FloodSettings {
            burst: 3,
            interval: Duration::from_secs(2),
        };
        let mut bucket = TokenBucket::new(settings, start);
        for _ in 0..3 {
            assert_eq!(bucket.try_take(start), Ok(()));
        }
        assert_eq!(bucket.try_take(start), Err(Duration::from_secs(2)));
        let half = start + Duration::from_secs(1);
        assert_eq!(bucket.try_take(half), Err(Duration::from_secs(1)));
        let later = start + Duration::from_secs(2);
        assert_eq!(bucket.try_take(later), Ok(()));
        assert!(bucket.try_take(later).is_err());
        // A long pause refills to the burst, not beyond.
        let much_later = later + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(bucket.try_take(much_later), Ok(()));
        }
        assert!(bucket.try_take(much_later).is_err());
    }

    #[test]
    fn a_zero_burst_still_allows_one_line() {
        let now = Instant::now();
        let settings = FloodSettings {
            burst: 0,
            interval: Duration::ZERO,
        };
        let mut bucket = TokenBucket::new(settings, now);
        assert_eq!(bucket.try_take(now), Ok(()));
        assert_eq!(bucket.try_take(now), Ok(()), "no interval: no pacing");
    }
}
