//! Webhook delivery, as Telegram does it: while a webhook is set, the queued updates are
//! POSTed to it one at a time, oldest first, as JSON with the
//! `X-Telegram-Bot-Api-Secret-Token` header; a 2xx answer removes the update from the
//! queue, anything else (or no answer) is retried after a pause that grows from 100 ms to
//! 2 s.
//!
//! Telegram only calls `https://` URLs (and `setWebhook` refuses others), so the fake
//! delivers only when the test named a plain-HTTP stand-in for the TLS-terminating proxy
//! ([`super::FakeTelegram::deliver_webhooks_via`]): the POST goes to that address with the
//! webhook URL's path and query.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::fake::Shared;
use super::types::{WebhookAttempt, WebhookSetting};
use crate::server::lock;

/// The header Telegram sends the secret token in.
pub(crate) const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(75);

/// One update to POST and where.
struct Due {
    update_id: i64,
    update: Value,
    url: String,
    secret_token: Option<String>,
}

/// The plain-HTTP URL standing in for `hook.url`: `via` with the URL's path and query.
fn target(via: SocketAddr, hook: &WebhookSetting) -> Option<String> {
    let url = reqwest::Url::parse(&hook.url).ok()?;
    let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
    Some(format!("http://{via}{}{query}", url.path()))
}

fn due(shared: &Shared) -> Option<Due> {
    let inner = lock(&shared.inner);
    let via = inner.webhook_via?;
    let hook = inner.bot.webhook.as_ref()?;
    let (update_id, update) = inner.bot.next_queued()?;
    Some(Due {
        update_id,
        update,
        url: target(via, hook)?,
        secret_token: hook.secret_token.clone(),
    })
}

/// Delivers queued updates until the fake stops.
pub(crate) async fn deliver(shared: Arc<Shared>) {
    let http = match reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build() {
        Ok(http) => http,
        Err(error) => {
            tracing::error!(%error, "fake Telegram cannot build its webhook client");
            return;
        }
    };
    let mut wake = shared.updates.subscribe();
    let mut stop = shared.stop.clone();
    let mut retry = FIRST_RETRY;
    loop {
        wake.borrow_and_update();
        let Some(due) = due(&shared) else {
            tokio::select! {
                changed = wake.changed() => if changed.is_err() { return },
                _ = stop.wait_for(|stop| *stop) => return,
            }
            continue;
        };
        let mut request = http.post(&due.url).json(&due.update);
        if let Some(secret) = &due.secret_token {
            request = request.header(SECRET_HEADER, secret);
        }
        let status = tokio::select! {
            sent = request.send() => sent.ok().map(|response| response.status().as_u16()),
            _ = stop.wait_for(|stop| *stop) => return,
        };
        let delivered = status.is_some_and(|code| (200..300).contains(&code));
        {
            let mut inner = lock(&shared.inner);
            inner.webhook_attempts.push(WebhookAttempt {
                update_id: due.update_id,
                status,
            });
            if delivered {
                inner.bot.confirm_delivered(due.update_id);
            }
        }
        shared.attempts.send_modify(|count| *count += 1);
        if delivered {
            retry = FIRST_RETRY;
            continue;
        }
        tracing::debug!(
            update_id = due.update_id,
            ?status,
            "fake Telegram: webhook delivery failed; retrying"
        );
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        retry = (retry * 2).min(MAX_RETRY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stand_in_keeps_the_path_and_query() {
        let hook = WebhookSetting {
            url: "https://bot.example.org/telegram/default?x=1".into(),
            secret_token: None,
            allowed_updates: None,
        };
        let via = SocketAddr::from(([127, 0, 0, 1], 8080));
        assert_eq!(
            target(via, &hook).as_deref(),
            Some("http://127.0.0.1:8080/telegram/default?x=1")
        );
    }
}
