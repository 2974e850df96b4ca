//! A small Telegram Bot API client over reqwest: `POST <base>/bot<token>/<method>` with a
//! JSON body, error classification and bounded retries.
//!
//! The request URL contains the bot token, and reqwest errors print their URL, so every
//! reqwest error is stripped with `without_url()` before it is stored; no URL is ever
//! logged. Errors carry the method name and Telegram's `description`, never the token.

use std::time::{Duration, Instant};

use pincer_runtime::Secret;
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::wire::ApiResponse;
use crate::backoff::Backoff;

/// How long before the lease's end the last send attempt may start.
pub const SEND_MARGIN: Duration = Duration::from_millis(500);

/// How calls are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per call, including the first (at least 1).
    pub max_attempts: u32,
    /// First wait after a network or server error.
    pub initial_backoff: Duration,
    /// Longest wait after a network or server error.
    pub max_backoff: Duration,
    /// Longest `retry_after` honoured; a longer one fails the call (retryable) instead.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// Why a Bot API call failed. Never contains the bot token.
#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    /// The request did not complete (connect, timeout, reset).
    #[error("Telegram {method}: cannot reach the Bot API: {source}")]
    Network {
        /// The Bot API method.
        method: &'static str,
        /// The transport error, with its URL removed.
        #[source]
        source: reqwest::Error,
    },
    /// 429 Too Many Requests.
    #[error("Telegram {method}: rate limited; Telegram asks to retry after {}s", retry_after.as_secs())]
    RateLimited {
        /// The Bot API method.
        method: &'static str,
        /// Telegram's `parameters.retry_after`.
        retry_after: Duration,
    },
    /// 409 Conflict: another process polls this bot, or a webhook is set.
    #[error(
        "Telegram {method}: conflict: {description}; another process is polling this bot \
         token or a webhook is set (stop the other poller, or call deleteWebhook)"
    )]
    Conflict {
        /// The Bot API method.
        method: &'static str,
        /// Telegram's description.
        description: String,
    },
    /// Not sent: this replica's lease on the account ended before the (next) attempt.
    #[error(
        "Telegram {method}: not sent: this bridge replica's lease on the account has ended; \
         the gateway retries the delivery through the account's current holder"
    )]
    LeaseEnded {
        /// The Bot API method.
        method: &'static str,
    },
    /// 5xx.
    #[error("Telegram {method}: server error {status}: {description}")]
    Server {
        /// The Bot API method.
        method: &'static str,
        /// HTTP status.
        status: u16,
        /// Telegram's description.
        description: String,
    },
    /// 401 / 404: the token is wrong or revoked.
    #[error(
        "Telegram {method}: the bot token was rejected ({status}: {description}); check \
         channels.telegram.botToken (a token from @BotFather)"
    )]
    Unauthorized {
        /// The Bot API method.
        method: &'static str,
        /// HTTP status.
        status: u16,
        /// Telegram's description.
        description: String,
    },
    /// Any other 4xx: the request itself is wrong (bad chat, message too long, blocked...).
    #[error("Telegram {method}: request rejected ({status}): {description}")]
    Rejected {
        /// The Bot API method.
        method: &'static str,
        /// HTTP status.
        status: u16,
        /// Telegram's description.
        description: String,
    },
    /// The answer was not the Bot API JSON we expected.
    #[error("Telegram {method}: unexpected answer (HTTP {status}): {source}")]
    Decode {
        /// The Bot API method.
        method: &'static str,
        /// HTTP status.
        status: u16,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

impl TelegramError {
    /// True when Telegram refused a message's formatting ("can't parse entities").
    pub fn is_entity_error(&self) -> bool {
        matches!(self, Self::Rejected { status: 400, description, .. }
            if description.to_ascii_lowercase().contains("parse entities"))
    }

    /// True when the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Network { .. }
                | Self::RateLimited { .. }
                | Self::Conflict { .. }
                | Self::Server { .. }
                | Self::LeaseEnded { .. }
        )
    }

    /// True for problems only an operator can fix: a rejected token, or another poller /
    /// a webhook on the same bot.
    pub fn needs_operator(&self) -> bool {
        matches!(self, Self::Unauthorized { .. } | Self::Conflict { .. })
    }

    /// Telegram's requested wait, for 429.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// A Bot API client for one bot.
#[derive(Clone)]
pub struct BotApi {
    http: reqwest::Client,
    base: String,
    token: Secret,
    policy: RetryPolicy,
}

impl std::fmt::Debug for BotApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotApi")
            .field("base", &self.base)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// Timeout for calls other than long polling.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl BotApi {
    /// A client for `base` (e.g. `https://api.telegram.org`) and `token`.
    pub fn new(
        base: &reqwest::Url,
        token: Secret,
        policy: RetryPolicy,
    ) -> Result<Self, TelegramError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| TelegramError::Network {
                method: "client setup",
                source: e.without_url(),
            })?;
        Ok(Self {
            http,
            base: base.as_str().trim_end_matches('/').to_owned(),
            token,
            policy,
        })
    }

    /// One attempt, with the given HTTP timeout.
    pub async fn call_once<T: DeserializeOwned>(
        &self,
        method: &'static str,
        body: &(impl Serialize + Sync),
        timeout: Duration,
    ) -> Result<T, TelegramError> {
        let url = format!("{}/bot{}/{}", self.base, self.token.expose(), method);
        let network = |e: reqwest::Error| TelegramError::Network {
            method,
            source: e.without_url(),
        };
        let response = self
            .http
            .post(url)
            .timeout(timeout)
            .json(body)
            .send()
            .await
            .map_err(network)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(network)?;
        interpret(method, status, &bytes)
    }

    /// Calls with retries: 429 waits `retry_after` (up to the policy's cap), network and
    /// server errors back off exponentially; other errors return at once.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        body: &(impl Serialize + Sync),
    ) -> Result<T, TelegramError> {
        self.call_until(method, body, None).await
    }

    /// [`Self::call`], but no attempt starts later than [`SEND_MARGIN`] before `deadline`
    /// (the end of the account's lease): a replica that was frozen or cut off while it
    /// waited to retry must not send once another replica may hold the account.
    pub async fn call_until<T: DeserializeOwned>(
        &self,
        method: &'static str,
        body: &(impl Serialize + Sync),
        deadline: Option<Instant>,
    ) -> Result<T, TelegramError> {
        let mut backoff = Backoff::new(self.policy.initial_backoff, self.policy.max_backoff);
        let mut attempt = 1;
        loop {
            if deadline.is_some_and(|d| Instant::now() + SEND_MARGIN >= d) {
                return Err(TelegramError::LeaseEnded { method });
            }
            let error = match self.call_once(method, body, CALL_TIMEOUT).await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            let wait = match error.retry_after() {
                Some(wait) if wait > self.policy.max_retry_after => return Err(error),
                Some(wait) => wait,
                None => backoff.next_delay(),
            };
            if !error.is_retryable() || attempt >= self.policy.max_attempts.max(1) {
                return Err(error);
            }
            tracing::warn!(method, attempt, wait_ms = wait.as_millis() as u64, error = %error, "Telegram call failed; retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// Turns an HTTP answer into the result or a classified error.
fn interpret<T: DeserializeOwned>(
    method: &'static str,
    status: StatusCode,
    body: &[u8],
) -> Result<T, TelegramError> {
    let parsed = serde_json::from_slice::<ApiResponse<T>>(body);
    let (code, description, retry_after) = match parsed {
        Ok(ApiResponse {
            ok: true,
            result: Some(result),
            ..
        }) if status.is_success() => return Ok(result),
        Ok(answer) => (
            answer.error_code.unwrap_or(status.as_u16()),
            answer
                .description
                .unwrap_or_else(|| format!("HTTP {status} without a description")),
            answer.parameters.and_then(|p| p.retry_after),
        ),
        Err(source) if status.is_success() => {
            return Err(TelegramError::Decode {
                method,
                status: status.as_u16(),
                source,
            });
        }
        Err(_) => (
            status.as_u16(),
            format!("HTTP {status} with a body that is not Bot API JSON"),
            None,
        ),
    };
    Err(match code {
        429 => TelegramError::RateLimited {
            method,
            retry_after: Duration::from_secs(retry_after.unwrap_or(1)),
        },
        409 => TelegramError::Conflict {
            method,
            description,
        },
        401 | 404 => TelegramError::Unauthorized {
            method,
            status: code,
            description,
        },
        500..=599 => TelegramError::Server {
            method,
            status: code,
            description,
        },
        _ => TelegramError::Rejected {
            method,
            status: code,
            description,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> TelegramError {
        let status = StatusCode::from_u16(status).unwrap();
        interpret::<serde_json::Value>("sendMessage", status, body.as_bytes()).unwrap_err()
    }

    #[test]
    fn classifies_bot_api_errors() {
        let e = classify(
            429,
            r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}"#,
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert!(e.is_retryable());
        let e = classify(
            409,
            r#"{"ok":false,"error_code":409,"description":"Conflict: terminated by other getUpdates request"}"#,
        );
        assert!(matches!(e, TelegramError::Conflict { .. }) && e.is_retryable());
        assert!(e.to_string().contains("another process is polling"));
        let e = classify(
            400,
            r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#,
        );
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("chat not found"));
        assert!(matches!(
            classify(
                401,
                r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#
            ),
            TelegramError::Unauthorized { .. }
        ));
        assert!(classify(502, "<html>bad gateway</html>").is_retryable());
        assert!(matches!(
            classify(200, "not json"),
            TelegramError::Decode { .. }
        ));
    }

    #[test]
    fn success_returns_the_result() {
        let v: i64 = interpret("getMe", StatusCode::OK, br#"{"ok":true,"result":5}"#).unwrap();
        assert_eq!(v, 5);
    }
}
