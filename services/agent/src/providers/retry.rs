//! When to retry a provider call and how long to wait: pure functions over status codes,
//! headers and the attempt number, so the policy is tested without a network.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

/// How often and how long a provider call is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most attempts in all (the first call included).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubled for each further attempt.
    pub base_delay: Duration,
    /// Largest backoff when the provider gives no `retry-after`.
    pub max_backoff: Duration,
    /// Longest wait accepted at all; a longer `retry-after` ends the call.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_wait: Duration::from_secs(60),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Wait this long, then try again.
    RetryAfter(Duration),
    /// No attempts left.
    OutOfAttempts,
    /// The provider asked for a wait longer than [`RetryPolicy::max_wait`].
    WaitTooLong(Duration),
}

impl RetryPolicy {
    /// The decision after attempt number `attempt` (1-based) failed in a retryable way.
    /// `hint` is the provider's `retry-after`, if any; `jitter` is in `[0, 1)`.
    pub fn decide(&self, attempt: u32, hint: Option<Duration>, jitter: f64) -> RetryDecision {
        if attempt >= self.max_attempts {
            return RetryDecision::OutOfAttempts;
        }
        match hint {
            Some(wait) if wait > self.max_wait => RetryDecision::WaitTooLong(wait),
            Some(wait) => RetryDecision::RetryAfter(wait),
            None => RetryDecision::RetryAfter(self.backoff(attempt, jitter)),
        }
    }

    /// Exponential backoff with jitter: half fixed, half random, so callers that failed
    /// together do not retry together.
    fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(16);
        let full = self
            .base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_backoff)
            .min(self.max_wait);
        let jitter = jitter.clamp(0.0, 1.0);
        full / 2 + full.div_f64(2.0).mul_f64(jitter)
    }
}

/// Status codes worth another attempt: rate limits, server errors, overload (529 is
/// Anthropic's "overloaded").
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504 | 529)
}

/// The wait the provider asked for: `retry-after-ms` (milliseconds), else `retry-after`
/// (seconds or an HTTP date, relative to `now`).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = text("retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn retryable_statuses() {
        for s in [429, 500, 502, 503, 504, 529] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 422, 501] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }

    #[test]
    fn parses_retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after(&headers(&[("retry-after", "3")]), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after-ms", "250"), ("retry-after", "9")]),
                now
            ),
            Some(Duration::from_millis(250))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &date)]), now),
            Some(Duration::from_secs(7))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &past)]), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")]), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_attempts_run_out() {
        let p = RetryPolicy::default();
        let RetryDecision::RetryAfter(first) = p.decide(1, None, 0.0) else {
            panic!("should retry");
        };
        let RetryDecision::RetryAfter(second) = p.decide(2, None, 0.0) else {
            panic!("should retry");
        };
        assert_eq!(first, Duration::from_millis(250));
        assert_eq!(second, Duration::from_millis(500));
        let big = RetryPolicy {
            max_attempts: 100,
            ..p
        };
        let RetryDecision::RetryAfter(late) = big.decide(40, None, 0.999) else {
            panic!("should retry");
        };
        assert!(late <= p.max_backoff);
        assert_eq!(p.decide(4, None, 0.5), RetryDecision::OutOfAttempts);
        assert_eq!(
            p.decide(1, Some(Duration::from_secs(61)), 0.5),
            RetryDecision::WaitTooLong(Duration::from_secs(61))
        );
        assert_eq!(
            p.decide(1, Some(Duration::from_secs(2)), 0.5),
            RetryDecision::RetryAfter(Duration::from_secs(2))
        );
    }
}
