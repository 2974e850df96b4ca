//! The HTTP edge shared by the provider clients: one POST attempt with its outcome
//! classified ([`HttpCaller::post_json`]), and the decision between attempts
//! ([`HttpCaller::next_wait`]). Error messages are taken from the provider's error body
//! and scrubbed of the API key.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use rand::Rng;

use super::retry::{RetryDecision, is_retryable_status, retry_after};
use super::{ProviderError, ProviderSettings};

/// How one attempt failed.
#[derive(Debug)]
pub enum AttemptError {
    /// Worth another attempt (rate limit, overload, connection error before any output).
    Retry {
        /// The error to report if no attempt is left.
        error: ProviderError,
        /// The wait the provider asked for.
        after: Option<Duration>,
    },
    /// Not worth another attempt.
    Fatal(ProviderError),
}

/// Sends requests to one provider.
#[derive(Debug, Clone)]
pub struct HttpCaller {
    client: reqwest::Client,
    settings: ProviderSettings,
}

impl HttpCaller {
    /// A caller for `settings`.
    pub fn new(settings: ProviderSettings, client: reqwest::Client) -> Self {
        Self { client, settings }
    }

    /// The provider's settings.
    pub fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    /// `{baseUrl}/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "{}/{}",
            self.settings.base_url.as_str().trim_end_matches('/'),
            path
        )
    }

    /// Headers carrying the API key as `{name}: {prefix}{key}`, marked sensitive so they
    /// are never logged; empty when no key is configured.
    pub fn key_headers(
        &self,
        name: &'static str,
        prefix: &str,
    ) -> Result<HeaderMap, ProviderError> {
        let mut headers = HeaderMap::new();
        let Some(key) = &self.settings.api_key else {
            return Ok(headers);
        };
        let mut value = HeaderValue::from_str(&format!("{prefix}{}", key.expose())).map_err(
            |_invalid| ProviderError::Protocol {
                provider: self.settings.id.clone(),
                detail: "the configured API key contains characters not allowed in an HTTP header; check the secret".to_owned(),
            },
        )?;
        value.set_sensitive(true);
        headers.insert(HeaderName::from_static(name), value);
        Ok(headers)
    }

    /// One POST of a JSON body. Success statuses return the response; others are classified.
    pub async fn post_json(
        &self,
        url: &str,
        headers: HeaderMap,
        body: &serde_json::Value,
    ) -> Result<reqwest::Response, AttemptError> {
        let provider = self.settings.id.clone();
        let sent = self
            .client
            .post(url)
            .headers(headers)
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(source) if source.is_builder() => {
                return Err(AttemptError::Fatal(ProviderError::Transport {
                    provider,
                    attempts: 1,
                    source,
                }));
            }
            Err(source) => {
                return Err(AttemptError::Retry {
                    error: ProviderError::Transport {
                        provider,
                        attempts: 1,
                        source,
                    },
                    after: None,
                });
            }
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let after = retry_after(response.headers(), SystemTime::now());
        let body = response.text().await.unwrap_or_default();
        let error = ProviderError::Status {
            provider,
            status: status.as_u16(),
            message: self.redact(&error_message(&body)),
            attempts: 1,
        };
        if is_retryable_status(status.as_u16()) {
            Err(AttemptError::Retry { error, after })
        } else {
            Err(AttemptError::Fatal(error))
        }
    }

    /// After attempt number `attempt` failed: how long to wait before the next, or the
    /// error to give up with.
    pub fn next_wait(&self, attempt: u32, failed: AttemptError) -> Result<Duration, ProviderError> {
        let (error, after) = match failed {
            AttemptError::Fatal(error) => return Err(error.with_attempts(attempt)),
            AttemptError::Retry { error, after } => (error, after),
        };
        let jitter = rand::rng().random_range(0.0..1.0);
        match self.settings.retry.decide(attempt, after, jitter) {
            RetryDecision::RetryAfter(wait) => {
                tracing::warn!(provider = %self.settings.id, attempt, wait_ms = wait.as_millis() as u64, error = %error, "model call failed; retrying");
                Ok(wait)
            }
            RetryDecision::OutOfAttempts => Err(error.with_attempts(attempt)),
            RetryDecision::WaitTooLong(wait) => {
                let note = format!(
                    " (it asked to retry after {} s, longer than the {} s the agent waits)",
                    wait.as_secs(),
                    self.settings.retry.max_wait.as_secs()
                );
                Err(error.with_attempts(attempt).with_note(&note))
            }
        }
    }

    /// Removes the API key from text that may echo it.
    pub fn redact(&self, text: &str) -> String {
        match &self.settings.api_key {
            Some(key) if !key.expose().is_empty() => text.replace(key.expose(), "<redacted>"),
            _ => text.to_owned(),
        }
    }
}

impl ProviderError {
    fn with_attempts(mut self, n: u32) -> Self {
        if let Self::Status { attempts, .. } | Self::Transport { attempts, .. } = &mut self {
            *attempts = n;
        }
        self
    }

    fn with_note(mut self, note: &str) -> Self {
        if let Self::Status { message, .. } = &mut self {
            message.push_str(note);
        }
        self
    }
}

/// The message in an error body: `error.message` (OpenAI, Anthropic), `message`, or the
/// start of the body.
pub fn error_message(body: &str) -> String {
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(body) {
        let found = value
            .pointer("/error/message")
            .or_else(|| value.get("message"))
            .or_else(|| value.get("error"))
            .and_then(serde_json::Value::as_str);
        if let Some(message) = found {
            return message.to_owned();
        }
    }
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return "(empty error body)".to_owned();
    }
    let mut cut: String = trimmed.chars().take(300).collect();
    if cut.len() < trimmed.len() {
        cut.push('…');
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_from_bodies() {
        assert_eq!(
            error_message(r#"{"error":{"message":"bad model","type":"invalid_request_error"}}"#),
            "bad model"
        );
        assert_eq!(
            error_message(
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: required"}}"#
            ),
            "max_tokens: required"
        );
        assert_eq!(error_message(r#"{"error":"plain"}"#), "plain");
        assert_eq!(error_message("  "), "(empty error body)");
        assert_eq!(error_message(&"x".repeat(400)).chars().count(), 301);
    }
}
