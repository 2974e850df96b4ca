//! [`MatrixClient`]: authenticated calls to the client-server API (`/_matrix/client/v3/…`).
//!
//! - The access token travels only in the `Authorization: Bearer` header, never in a URL,
//!   so reqwest errors (which carry the URL) cannot leak it; errors are built from the
//!   endpoint's name, the status and the server's `errcode`/`error`, never from a body we
//!   sent.
//! - With a password configured, the first call logs in (`m.login.password` with the
//!   configured `device_id`, so every login reuses one device), and a `401 M_UNKNOWN_TOKEN`
//!   logs in again once; without one, a refused token is an operator error.
//! - Every path segment is percent-encoded by [`encode_segment`] (room and event ids
//!   contain `!`, `:`, `$`).
//! - Failures are classified into [`PlatformError`]s: network errors, 5xx and
//!   `429 M_LIMIT_EXCEEDED` (with its `retry_after_ms`) are transient, refused credentials
//!   need the operator, other 4xx are permanent.

use std::time::Duration;

use pincer_runtime::Secret;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Mutex;

use super::CHANNEL;
use super::wire::{ErrorBody, LoginAnswer};
use crate::adapter::PlatformError;

/// How long an ordinary (non-polling) request may take.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest server error text copied into an error message.
const MAX_ERROR_TEXT: usize = 200;

/// Credentials and where to use them.
#[derive(Debug)]
pub(crate) struct Credentials {
    /// A configured or obtained access token.
    pub access_token: Option<Secret>,
    /// The bot's user id, needed to log in with a password.
    pub user_id: Option<String>,
    /// The password, for (re-)logins.
    pub password: Option<Secret>,
    /// The device every login reuses.
    pub device_id: String,
}

/// An authenticated client-server API client.
#[derive(Debug)]
pub(crate) struct MatrixClient {
    http: reqwest::Client,
    /// `<homeserver>/_matrix/client/v3/`.
    api: String,
    credentials: Mutex<Credentials>,
}

/// The failure of one attempt, before re-login handling.
enum Attempt {
    UnknownToken,
    /// The error, and whether it was `404 M_NOT_FOUND`.
    Failed(PlatformError, bool),
}

impl MatrixClient {
    /// A client for `homeserver` (already validated by the settings).
    pub(crate) fn new(homeserver: &Url, credentials: Credentials) -> Result<Self, PlatformError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| {
                PlatformError::permanent(CHANNEL, format!("cannot build the HTTP client: {e}"))
            })?;
        let root = homeserver.as_str().trim_end_matches('/');
        Ok(Self {
            http,
            api: format!("{root}/_matrix/client/v3/"),
            credentials: Mutex::new(credentials),
        })
    }

    /// Calls `method` on the path made of `segments` (each percent-encoded), with an
    /// optional query and JSON body, logging in (again) when needed.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<T, PlatformError> {
        self.call_inner(method, segments, query, body, timeout)
            .await
            .map_err(|(e, _)| e)
    }

    /// Like [`Self::call`], but a `404 M_NOT_FOUND` answer is `Ok(None)`.
    pub(crate) async fn call_optional<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        timeout: Duration,
    ) -> Result<Option<T>, PlatformError> {
        match self.call_inner(method, segments, &[], None, timeout).await {
            Ok(answer) => Ok(Some(answer)),
            Err((_, true)) => Ok(None),
            Err((e, false)) => Err(e),
        }
    }

    async fn call_inner<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<T, (PlatformError, bool)> {
        let endpoint = endpoint_name(segments);
        let token = self.token(None).await.map_err(|e| (e, false))?;
        match self
            .attempt(&method, segments, query, body, timeout, &token, &endpoint)
            .await
        {
            Ok(answer) => Ok(answer),
            Err(Attempt::Failed(e, not_found)) => Err((e, not_found)),
            Err(Attempt::UnknownToken) => {
                let token = self.token(Some(&token)).await.map_err(|e| (e, false))?;
                match self
                    .attempt(&method, segments, query, body, timeout, &token, &endpoint)
                    .await
                {
                    Ok(answer) => Ok(answer),
                    Err(Attempt::Failed(e, not_found)) => Err((e, not_found)),
                    Err(Attempt::UnknownToken) => Err((
                        PlatformError::operator(
                            CHANNEL,
                            format!(
                                "{endpoint}: the homeserver refused a freshly issued access token"
                            ),
                        ),
                        false,
                    )),
                }
            }
        }
    }

    /// The token to use; `refused` is one the server just refused (log in again then).
    async fn token(&self, refused: Option<&Secret>) -> Result<Secret, PlatformError> {
        let mut credentials = self.credentials.lock().await;
        if let Some(token) = &credentials.access_token {
            let was_refused = refused.is_some_and(|r| r.expose() == token.expose());
            if !was_refused {
                return Ok(token.clone());
            }
            if credentials.password.is_none() {
                return Err(PlatformError::operator(
                    CHANNEL,
                    "the homeserver refused the access token (M_UNKNOWN_TOKEN); configure a valid token or a password",
                ));
            }
            credentials.access_token = None;
        }
        let token = self.login(&credentials).await?;
        credentials.access_token = Some(token.clone());
        Ok(token)
    }

    async fn login(&self, credentials: &Credentials) -> Result<Secret, PlatformError> {
        let (Some(user_id), Some(password)) = (&credentials.user_id, &credentials.password) else {
            return Err(PlatformError::operator(
                CHANNEL,
                "no access token and no user id + password configured",
            ));
        };
        let body = serde_json::json!({
            "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": user_id },
            "password": password.expose(),
            "device_id": credentials.device_id,
            "initial_device_display_name": "Pincer bridge",
        });
        let response = self
            .http
            .post(format!("{}login", self.api))
            .json(&body)
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(|e| network_error("login", &e))?;
        let status = response.status();
        if status.is_success() {
            let answer: LoginAnswer = response
                .json()
                .await
                .map_err(|e| network_error("login", &e))?;
            tracing::info!(user_id = %answer.user_id, device_id = %credentials.device_id, "logged in to the Matrix homeserver");
            return Ok(Secret::new(answer.access_token));
        }
        let error = error_body(response).await;
        let e = classify("login", status, &error);
        if status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED {
            return Err(PlatformError::operator(CHANNEL, e.message));
        }
        Err(e)
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempt<T: DeserializeOwned>(
        &self,
        method: &Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
        timeout: Duration,
        token: &Secret,
        endpoint: &str,
    ) -> Result<T, Attempt> {
        let path: Vec<String> = segments.iter().map(|s| encode_segment(s)).collect();
        let mut request = self
            .http
            .request(method.clone(), format!("{}{}", self.api, path.join("/")))
            .bearer_auth(token.expose())
            .timeout(timeout);
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Attempt::Failed(network_error(endpoint, &e), false))?;
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .map_err(|e| Attempt::Failed(network_error(endpoint, &e), false));
        }
        let error = error_body(response).await;
        if status == StatusCode::UNAUTHORIZED && error.errcode == "M_UNKNOWN_TOKEN" {
            return Err(Attempt::UnknownToken);
        }
        let not_found = status == StatusCode::NOT_FOUND && error.errcode == "M_NOT_FOUND";
        Err(Attempt::Failed(
            classify(endpoint, status, &error),
            not_found,
        ))
    }
}

async fn error_body(response: reqwest::Response) -> ErrorBody {
    response.json().await.unwrap_or_default()
}

/// A network-level failure, without the URL (it names rooms; it never holds the token, but
/// the endpoint name is enough).
fn network_error(endpoint: &str, e: &reqwest::Error) -> PlatformError {
    let what = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_decode() {
        "answered with unexpected JSON".to_owned()
    } else {
        format!("failed: {}", RedactedUrl(e))
    };
    PlatformError::transient(CHANNEL, format!("{endpoint} {what}"))
}

/// Displays a reqwest error without its URL.
struct RedactedUrl<'a>(&'a reqwest::Error);

impl std::fmt::Display for RedactedUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut source = std::error::Error::source(self.0);
        let mut first = true;
        while let Some(e) = source {
            if !first {
                f.write_str(": ")?;
            }
            write!(f, "{e}")?;
            first = false;
            source = e.source();
        }
        if first {
            f.write_str("request error")?;
        }
        Ok(())
    }
}

/// Classifies a non-success answer.
pub(crate) fn classify(endpoint: &str, status: StatusCode, error: &ErrorBody) -> PlatformError {
    let text: String = error.error.chars().take(MAX_ERROR_TEXT).collect();
    let message = format!(
        "{endpoint}: HTTP {} {} {text}",
        status.as_u16(),
        error.errcode
    )
    .trim_end()
    .to_owned();
    if status == StatusCode::TOO_MANY_REQUESTS || error.errcode == "M_LIMIT_EXCEEDED" {
        let e = PlatformError::transient(CHANNEL, message);
        return match error.retry_after_ms {
            Some(ms) => e.with_retry_after(Duration::from_millis(ms)),
            None => e,
        };
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return PlatformError::transient(CHANNEL, message);
    }
    if status == StatusCode::UNAUTHORIZED
        || matches!(
            error.errcode.as_str(),
            "M_USER_DEACTIVATED" | "M_USER_LOCKED" | "M_USER_SUSPENDED"
        )
    {
        return PlatformError::operator(CHANNEL, message);
    }
    PlatformError::permanent(CHANNEL, message)
}

/// The endpoint for messages: the path's constant segments, ids replaced by `…`.
fn endpoint_name(segments: &[&str]) -> String {
    segments
        .iter()
        .map(|s| {
            if s.starts_with(['!', '$', '@', '#']) || s.contains(':') || s.starts_with("pincer.") {
                "…"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Percent-encodes one path segment: everything but RFC 3986 unreserved characters.
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode(encoded: &str) -> Vec<u8> {
        let bytes = encoded.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    #[test]
    fn ids_are_encoded() {
        assert_eq!(encode_segment("!room:example.org"), "%21room%3Aexample.org");
        assert_eq!(encode_segment("$ev/ent?#"), "%24ev%2Fent%3F%23");
        assert_eq!(encode_segment("@bot:test.local"), "%40bot%3Atest.local");
    }

    #[test]
    fn errors_are_classified() {
        let limited = ErrorBody {
            errcode: "M_LIMIT_EXCEEDED".into(),
            error: "Too many requests".into(),
            retry_after_ms: Some(1500),
        };
        let e = classify("send", StatusCode::TOO_MANY_REQUESTS, &limited);
        assert!(e.retryable && !e.needs_operator);
        assert_eq!(e.retry_after, Some(Duration::from_millis(1500)));
        let forbidden = ErrorBody {
            errcode: "M_FORBIDDEN".into(),
            ..ErrorBody::default()
        };
        assert!(!classify("send", StatusCode::FORBIDDEN, &forbidden).retryable);
        assert!(classify("sync", StatusCode::BAD_GATEWAY, &ErrorBody::default()).retryable);
        assert!(classify("whoami", StatusCode::UNAUTHORIZED, &ErrorBody::default()).needs_operator);
    }

    #[test]
    fn endpoint_names_hide_ids() {
        assert_eq!(
            endpoint_name(&["rooms", "!a:b", "send", "m.room.message", "pincer.00"]),
            "rooms/…/send/m.room.message/…"
        );
    }

    proptest! {
        #[test]
        fn encoding_round_trips_and_is_path_safe(s in any::<String>()) {
            let encoded = encode_segment(&s);
            prop_assert!(!encoded.contains(['/', '?', '#', '!', ':', '$', '@']));
            prop_assert_eq!(decode(&encoded), s.as_bytes().to_vec());
        }
    }
}
