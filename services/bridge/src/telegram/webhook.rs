//! Telegram webhook mode: Telegram POSTs each update to `<public url>/<account id>`
//! instead of the bridge polling `getUpdates`.
//!
//! [`WebhookServer`] is a plain-HTTP axum server meant to sit behind the operator's
//! TLS-terminating reverse proxy (Telegram only calls `https://` URLs). It checks, in
//! order:
//!
//! 1. the `X-Telegram-Bot-Api-Secret-Token` header against the configured secret
//!    (constant time; a missing or wrong one is 401 and a warning without the value);
//! 2. the account: the LAST path segment, so a proxy may keep the public URL's path
//!    prefix (`/telegram/default` and `/default` both reach the account `default`);
//!    an unknown account is 404;
//! 3. the body: at most 1 MiB (413), a Telegram `Update` as JSON (400);
//! 4. the lease: the account's [`TelegramAdapter`](super::TelegramAdapter) records its
//!    lease on every `next_inbound` call; while this replica does not hold it the answer
//!    is 503.
//!
//! The update is then handed to the adapter through a small bounded channel (full: 503;
//! not taken by the adapter before the lease ends: 503, so a replica whose session ended
//! lets go at once) and the request waits, up to the adapter's `ack_timeout`, for the
//! outcome: 200 `{}`
//! once the gateway has stored the message (or the adapter skipped the update), 503 when
//! the gateway did not acknowledge it in time or the hand-over failed.
//!
//! # Why 503 is safe, and how to run several replicas
//!
//! Telegram retries every delivery that is not answered 2xx, with growing pauses, until it
//! is answered 2xx; the gateway de-duplicates inbound messages by `platform_message_id`
//! (`<chat_id>:<message_id>`), so a message delivered again after a lost ack is stored
//! once. A 200 is therefore only ever sent after the gateway's ack: nothing is confirmed
//! to Telegram that is not stored.
//!
//! Telegram sends to one URL, so with several bridge replicas the reverse proxy balances
//! over all of them, and the replica that holds an account's lease is the one that can
//! take its updates; the others answer 503 at once. Let the proxy retry the next upstream
//! on 503 — with nginx:
//!
//! ```text
//! upstream pincer_bridge { server 10.0.0.1:8443; server 10.0.0.2:8443; }
//! location /telegram/ {
//!     proxy_pass http://pincer_bridge;
//!     proxy_next_upstream error timeout http_503 non_idempotent;
//! }
//! ```
//!
//! (`non_idempotent` is needed because the updates are POSTs; it is safe here for the
//! de-duplication above.) When no replica holds the lease, Telegram gets 503 and tries
//! again later.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use pincer_runtime::Secret;
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::wire::Update;
use crate::adapter::{AckState, AckWatch};

/// The header Telegram sends the webhook's secret token in.
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";
/// The largest update body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Updates accepted for an account while the adapter has not taken the previous ones.
const QUEUE: usize = 16;
/// How long after the recorded lease end an update may still be taken by the adapter (a
/// renewal normally moves the end forward every second).
const HANDOVER_GRACE: Duration = Duration::from_millis(500);

/// How long a request waits for its outcome before the adapter has told its ack timeout.
const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a webhook server cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The secret token breaks Telegram's rule (the value itself is never shown).
    #[error(
        "channels.telegram.webhook.secretToken is not valid: {reason}; Telegram accepts 1 to \
         256 characters of A-Z, a-z, 0-9, _ and -"
    )]
    InvalidSecretToken {
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Checks a secret token against Telegram's rule: 1–256 characters of `A-Z a-z 0-9 _ -`.
pub fn validate_secret_token(token: &str) -> Result<(), WebhookError> {
    let invalid = |reason| Err(WebhookError::InvalidSecretToken { reason });
    if token.is_empty() {
        return invalid("it is empty");
    }
    if token.len() > 256 {
        return invalid("it is longer than 256 characters");
    }
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return invalid("it contains a character other than A-Z, a-z, 0-9, _ and -");
    }
    Ok(())
}

/// One update on its way from an HTTP request to the adapter.
#[derive(Debug)]
pub(crate) struct Delivery {
    /// The update as Telegram sent it.
    pub(crate) update: Update,
    /// Where the adapter says what became of it.
    pub(crate) outcome: oneshot::Sender<Handed>,
}

/// What the adapter did with a [`Delivery`].
#[derive(Debug)]
pub(crate) enum Handed {
    /// Not a message for the gateway: confirm it to Telegram.
    Skipped,
    /// Handed to the bridge: confirm it once this watch reports the gateway's ack.
    Message(AckWatch),
}

/// The meeting point of the webhook server and one account's adapter.
#[derive(Debug)]
pub struct WebhookInbox {
    account_id: String,
    tx: mpsc::Sender<Delivery>,
    rx: tokio::sync::Mutex<mpsc::Receiver<Delivery>>,
    lease: Mutex<LeaseView>,
}

#[derive(Debug, Clone, Copy)]
struct LeaseView {
    until: Option<Instant>,
    ack_timeout: Duration,
}

impl WebhookInbox {
    fn new(account_id: &str) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Self {
            account_id: account_id.to_owned(),
            tx,
            rx: tokio::sync::Mutex::new(rx),
            lease: Mutex::new(LeaseView {
                until: None,
                ack_timeout: DEFAULT_ACK_TIMEOUT,
            }),
        }
    }

    /// The account this inbox serves.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// Records that this replica holds the account's lease until `until`, and how long a
    /// request may wait for the gateway's ack (the adapter calls this on every poll).
    pub(crate) fn record_lease(&self, until: Instant, ack_timeout: Duration) {
        let mut lease = self.lease.lock().unwrap_or_else(PoisonError::into_inner);
        lease.until = Some(until);
        lease.ack_timeout = ack_timeout;
    }

    fn lease(&self) -> LeaseView {
        *self.lease.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// True while this replica holds the account's lease.
    pub fn is_leased(&self, now: Instant) -> bool {
        self.lease().until.is_some_and(|until| now < until)
    }

    /// The next delivery; cancel-safe (the receiver lock and `recv` both are).
    pub(crate) async fn recv(&self) -> Option<Delivery> {
        self.rx.lock().await.recv().await
    }
}

/// The HTTP server Telegram (through the reverse proxy) delivers updates to.
#[derive(Debug)]
pub struct WebhookServer {
    secret: Secret,
    inboxes: HashMap<String, Arc<WebhookInbox>>,
}

impl WebhookServer {
    /// A server checking `secret_token`, which must follow Telegram's rule (see
    /// [`validate_secret_token`]).
    pub fn new(secret_token: Secret) -> Result<Self, WebhookError> {
        validate_secret_token(secret_token.expose())?;
        Ok(Self {
            secret: secret_token,
            inboxes: HashMap::new(),
        })
    }

    /// The inbox for `account_id` (created on first use); give it to that account's
    /// [`TelegramWebhook`](super::TelegramWebhook).
    pub fn inbox(&mut self, account_id: &str) -> Arc<WebhookInbox> {
        Arc::clone(
            self.inboxes
                .entry(account_id.to_owned())
                .or_insert_with(|| Arc::new(WebhookInbox::new(account_id))),
        )
    }

    /// Serves `POST /[prefix/]<account id>` on `listener` until `shutdown` is cancelled,
    /// then finishes the requests in flight.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, accounts = self.inboxes.len(), "Telegram webhook server listening");
        }
        let state = Arc::new(Serving {
            server: self,
            shutdown: shutdown.clone(),
        });
        let router = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(state);
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    }

    fn secret_matches(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers.get(SECRET_HEADER) else {
            return false;
        };
        bool::from(given.as_bytes().ct_eq(self.secret.expose().as_bytes()))
    }
}

/// What the request handler sees.
#[derive(Debug)]
struct Serving {
    server: WebhookServer,
    /// Cancelled on shutdown: requests still waiting for an ack answer 503 at once, so the
    /// graceful shutdown does not wait out the ack timeout.
    shutdown: CancellationToken,
}

/// The account a request path addresses: its last non-empty segment.
fn account_of(path: &str) -> Option<&str> {
    path.split('/').rev().find(|segment| !segment.is_empty())
}

/// `{}` for success (what Telegram expects), the bare status otherwise.
fn answer(status: StatusCode) -> Response {
    if status.is_success() {
        (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            "{}",
        )
            .into_response()
    } else {
        status.into_response()
    }
}

async fn handle(
    State(serving): State<Arc<Serving>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let server = &serving.server;
    if method != Method::POST {
        return answer(StatusCode::METHOD_NOT_ALLOWED);
    }
    if !server.secret_matches(&headers) {
        let missing = !headers.contains_key(SECRET_HEADER);
        tracing::warn!(
            path = uri.path(),
            header_missing = missing,
            "Telegram webhook request with a missing or wrong secret token; refused"
        );
        return answer(StatusCode::UNAUTHORIZED);
    }
    let Some(inbox) = account_of(uri.path()).and_then(|account| server.inboxes.get(account)) else {
        tracing::debug!(
            path = uri.path(),
            "Telegram webhook request for an unknown account"
        );
        return answer(StatusCode::NOT_FOUND);
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return answer(rejection.status()),
    };
    let Ok(update) = serde_json::from_slice::<Update>(&body) else {
        tracing::debug!(
            account = inbox.account_id(),
            "Telegram webhook body is not an Update"
        );
        return answer(StatusCode::BAD_REQUEST);
    };
    let update_id = update.update_id;
    if !inbox.is_leased(Instant::now()) {
        tracing::debug!(
            account = inbox.account_id(),
            update_id,
            "not holding the account's lease; answering 503"
        );
        return answer(StatusCode::SERVICE_UNAVAILABLE);
    }
    let lease = inbox.lease();
    let ack_timeout = lease.ack_timeout;
    // The adapter must take the update while it still holds the lease: a replica whose
    // session ended stops taking updates, and its waiting requests get 503 at the lease's
    // end instead of after the whole ack timeout.
    let take_by = lease.until.unwrap_or_else(Instant::now) + HANDOVER_GRACE;
    let (outcome, handed) = oneshot::channel();
    if inbox.tx.try_send(Delivery { update, outcome }).is_err() {
        tracing::warn!(
            account = inbox.account_id(),
            update_id,
            "webhook queue full; answering 503 so Telegram retries"
        );
        return answer(StatusCode::SERVICE_UNAVAILABLE);
    }
    let outcome = async move {
        match tokio::time::timeout_at(take_by.into(), handed).await {
            Ok(Ok(Handed::Skipped)) => AckState::Acked,
            Ok(Ok(Handed::Message(mut watch))) => watch.settled().await,
            Ok(Err(_)) | Err(_) => AckState::Dropped,
        }
    };
    let settled = tokio::select! {
        settled = tokio::time::timeout(ack_timeout, outcome) => settled,
        () = serving.shutdown.cancelled() => Ok(AckState::Dropped),
    };
    match settled {
        Ok(AckState::Acked) => answer(StatusCode::OK),
        Ok(_) => {
            tracing::debug!(
                account = inbox.account_id(),
                update_id,
                "update not stored by the gateway; answering 503 so Telegram retries"
            );
            answer(StatusCode::SERVICE_UNAVAILABLE)
        }
        Err(_) => {
            tracing::warn!(
                account = inbox.account_id(),
                update_id,
                waited_s = ack_timeout.as_secs(),
                "the gateway did not acknowledge the update in time; answering 503 so Telegram retries"
            );
            answer(StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_tokens_follow_telegrams_rule() {
        assert!(validate_secret_token("abc_DEF-123").is_ok());
        assert!(validate_secret_token(&"a".repeat(256)).is_ok());
        assert!(validate_secret_token("").is_err());
        assert!(validate_secret_token(&"a".repeat(257)).is_err());
        let e = validate_secret_token("has space").unwrap_err().to_string();
        assert!(!e.contains("has space"), "the value is never shown: {e}");
        assert!(validate_secret_token("ünï").is_err());
        assert!(WebhookServer::new(Secret::new("ok-token".to_owned())).is_ok());
        assert!(WebhookServer::new(Secret::new("no/slash".to_owned())).is_err());
    }

    #[test]
    fn the_account_is_the_last_path_segment() {
        assert_eq!(account_of("/default"), Some("default"));
        assert_eq!(account_of("/telegram/hook/work"), Some("work"));
        assert_eq!(account_of("/telegram/work/"), Some("work"));
        assert_eq!(account_of("/"), None);
        assert_eq!(account_of(""), None);
    }

    #[test]
    fn the_lease_is_held_until_its_end() {
        let inbox = WebhookInbox::new("default");
        let now = Instant::now();
        assert!(!inbox.is_leased(now), "never leased");
        inbox.record_lease(now + Duration::from_secs(5), Duration::from_secs(1));
        assert!(inbox.is_leased(now));
        assert!(!inbox.is_leased(now + Duration::from_secs(5)));
        assert_eq!(inbox.lease().ack_timeout, Duration::from_secs(1));
    }

    /// A replica whose session ended no longer takes updates: a request that arrives just
    /// before its recorded lease end is answered 503 once the lease is over, not after the
    /// whole ack timeout (one minute here).
    #[tokio::test]
    async fn an_update_nobody_takes_is_refused_at_the_lease_end() {
        let mut server = WebhookServer::new(Secret::new("s3cret".to_owned())).unwrap();
        let inbox = server.inbox("default");
        inbox.record_lease(
            Instant::now() + Duration::from_millis(300),
            Duration::from_secs(60),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(server.serve(listener, stop.clone()));
        let update = serde_json::json!({ "update_id": 1, "message": {
            "message_id": 1, "date": 1, "chat": { "id": 1, "type": "private" },
            "from": { "id": 1, "is_bot": false, "first_name": "A" }, "text": "hi" } });
        let request = reqwest::Client::new()
            .post(format!("http://{addr}/default"))
            .header(SECRET_HEADER, "s3cret")
            .json(&update)
            .send();
        let response = tokio::time::timeout(Duration::from_secs(20), request)
            .await
            .expect("answered long before the ack timeout")
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
        stop.cancel();
    }

    proptest::proptest! {
        #[test]
        fn any_path_and_token_are_handled_without_panic(path in ".{0,64}", token in ".{0,300}") {
            let _ = account_of(&path);
            let valid = validate_secret_token(&token).is_ok();
            let rule = !token.is_empty() && token.len() <= 256
                && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            proptest::prop_assert_eq!(valid, rule);
        }
    }
}
