//! Telegram webhook mode end to end: FakeTelegram POSTs updates (over plain HTTP, standing
//! in for the TLS proxy) ⇄ `WebhookServer` ⇄ bridge ⇄ fake gateway, all on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{CREDENTIAL, FakeGateway, LEASE_TOKEN, RunningBridge, WAIT, settings};
use pincer_bridge::telegram::{TelegramWebhook, WebhookInbox, WebhookServer};
use pincer_runtime::Secret;
use pincer_testkit::telegram::{
    AttachmentKind, FakeTelegram, InjectAttachment, InjectMessage, WebhookAttempt,
};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "434343:webhook-test-token";
const SECRET: &str = "webhook_SECRET-for-tests";
const PUBLIC_URL: &str = "https://bot.example.test/telegram/default";

/// A running webhook server; stops on drop.
struct Endpoint {
    addr: SocketAddr,
    stop: CancellationToken,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(server: WebhookServer) -> Endpoint {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(server.serve(listener, stop.clone()));
    Endpoint { addr, stop }
}

/// FakeTelegram delivering to a webhook server, a fake gateway and a bridge in webhook mode.
struct WebhookStack {
    telegram: FakeTelegram,
    gateway: FakeGateway,
    bridge: RunningBridge,
    endpoint: Endpoint,
    inbox: Arc<WebhookInbox>,
}

impl WebhookStack {
    async fn start(ack_timeout: Duration) -> Self {
        let telegram = FakeTelegram::start(common::telegram_options(TOKEN))
            .await
            .unwrap();
        let gateway = FakeGateway::start(CREDENTIAL).await;
        let mut server = WebhookServer::new(Secret::new(SECRET)).unwrap();
        let inbox = server.inbox("default");
        let endpoint = serve(server).await;
        telegram.deliver_webhooks_via(Some(endpoint.addr));
        let mut tg = common::telegram_settings(&telegram, TOKEN);
        tg.ack_timeout = ack_timeout;
        tg.webhook = Some(TelegramWebhook {
            url: PUBLIC_URL.parse().unwrap(),
            secret_token: Secret::new(SECRET),
            inbox: Arc::clone(&inbox),
        });
        let bridge = RunningBridge::start(settings(&gateway.url(), CREDENTIAL), tg);
        gateway.wait_hellos(1).await;
        let stack = Self {
            telegram,
            gateway,
            bridge,
            endpoint,
            inbox,
        };
        stack.wait_leased().await;
        stack
    }

    /// Waits until the adapter has recorded its lease and registered the webhook.
    async fn wait_leased(&self) {
        let deadline = Instant::now() + WAIT;
        while !self.inbox.is_leased(Instant::now()) || self.telegram.webhook().is_none() {
            assert!(
                Instant::now() < deadline,
                "the adapter never took the lease"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_attempts(&self, what: &str, check: impl Fn(&[WebhookAttempt]) -> bool) {
        if let Err(e) = self.telegram.wait_for_webhook_attempts(check, WAIT).await {
            panic!(
                "{what}: {e}; attempts: {:?}",
                self.telegram.webhook_attempts()
            );
        }
    }
}

fn update_json(update_id: i64, text: &str) -> serde_json::Value {
    serde_json::json!({"update_id": update_id, "message": {
        "message_id": 1, "date": 1_700_000_000,
        "chat": {"id": 42, "type": "private"},
        "from": {"id": 42, "is_bot": false, "first_name": "Ada"},
        "text": text}})
}

async fn post(
    addr: SocketAddr,
    path: &str,
    secret: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> u16 {
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(secret) = secret {
        request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_dm_is_stored_once_answered_200_and_replied_to() {
    let stack = WebhookStack::start(Duration::from_secs(10)).await;
    let hook = stack.telegram.webhook().unwrap();
    assert_eq!(hook.url, PUBLIC_URL);
    assert_eq!(hook.secret_token.as_deref(), Some(SECRET));
    assert_eq!(hook.allowed_updates, Some(vec!["message".to_owned()]));

    let update_id = stack
        .telegram
        .inject_message(InjectMessage::private(42, "hello by webhook"))
        .unwrap();
    let m = stack.gateway.wait_inbound(1).await.remove(0);
    assert_eq!(m.text, "hello by webhook");
    assert_eq!(m.sender_id, "42");
    assert_eq!(m.fencing_token, LEASE_TOKEN);
    stack
        .wait_attempts("a 200", |a| a.iter().any(|a| a.status == Some(200)))
        .await;
    assert_eq!(
        stack.telegram.webhook_attempts(),
        vec![WebhookAttempt {
            update_id,
            status: Some(200)
        }],
        "delivered exactly once"
    );
    assert_eq!(stack.telegram.pending_update_count(), 0);
    assert_eq!(stack.gateway.inbound().len(), 1);

    // Attachments arrive as references through the webhook too.
    stack
        .telegram
        .inject_message(InjectMessage::private(42, "a file").with_attachment(
            InjectAttachment::file(AttachmentKind::Document, "doc-1", "application/pdf", 2048),
        ))
        .unwrap();
    let doc = stack.gateway.wait_inbound(2).await.remove(1);
    assert_eq!(doc.text, "a file");
    assert_eq!(doc.media.len(), 1);
    assert_eq!(doc.media[0].kind, "file");
    assert_eq!(doc.media[0].platform_file_id, "doc-1");

    stack
        .gateway
        .deliver(
            "d-hook",
            "42",
            "a **reply**",
            &m.platform_message_id,
            LEASE_TOKEN,
        )
        .await;
    let receipt = stack.gateway.wait_receipts("d-hook", 1).await.remove(0);
    assert!(receipt.ok, "{receipt:?}");
    let sent = stack.telegram.wait_for_sent(1, WAIT).await.unwrap();
    assert_eq!(sent[0].text, "a reply");
    assert_eq!(sent[0].chat_id, 42);
    stack.bridge.stop().await;
    drop(stack.endpoint);
}

#[tokio::test]
async fn without_the_gateways_ack_telegram_gets_503_and_redelivers() {
    let stack = WebhookStack::start(Duration::from_millis(800)).await;
    stack.gateway.set_auto_ack(false);
    let update_id = stack
        .telegram
        .inject_message(InjectMessage::private(42, "ack me"))
        .unwrap();
    stack
        .wait_attempts("a 503", |a| {
            a.iter()
                .any(|a| a.update_id == update_id && a.status == Some(503))
        })
        .await;
    assert_eq!(
        stack.telegram.pending_update_count(),
        1,
        "still queued at Telegram"
    );

    stack.gateway.set_auto_ack(true);
    stack
        .wait_attempts("a 200 after the retry", |a| {
            a.iter()
                .any(|a| a.update_id == update_id && a.status == Some(200))
        })
        .await;
    let attempts = stack.telegram.webhook_attempts();
    assert!(attempts.len() >= 2, "{attempts:?}");
    assert_eq!(attempts.last().unwrap().status, Some(200));
    assert_eq!(stack.telegram.webhook_deliveries(), 1);
    assert_eq!(stack.telegram.pending_update_count(), 0);
    let stored: HashSet<String> = stack
        .gateway
        .inbound()
        .into_iter()
        .map(|m| m.platform_message_id)
        .collect();
    assert_eq!(stored.len(), 1, "one message, by id: {stored:?}");
    stack.bridge.stop().await;
}

#[tokio::test]
async fn shutting_the_endpoint_down_answers_waiting_requests_503() {
    let stack = WebhookStack::start(Duration::from_secs(60)).await;
    stack.gateway.set_auto_ack(false);
    let update_id = stack
        .telegram
        .inject_message(InjectMessage::private(42, "never acked"))
        .unwrap();
    stack.gateway.wait_inbound(1).await;
    let started = Instant::now();
    stack.endpoint.stop.cancel();
    stack
        .wait_attempts("a 503 on shutdown", |a| {
            a.iter()
                .any(|a| a.update_id == update_id && a.status == Some(503))
        })
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited for the ack timeout"
    );
    assert_eq!(stack.telegram.pending_update_count(), 1);
    stack.bridge.stop().await;
}

#[tokio::test]
async fn a_wrong_or_missing_secret_is_refused_and_not_delivered() {
    let stack = WebhookStack::start(Duration::from_secs(10)).await;
    let body = update_json(900_000_001, "forged").to_string();
    let addr = stack.endpoint.addr;
    assert_eq!(
        post(addr, "/telegram/default", None, body.clone()).await,
        401
    );
    assert_eq!(
        post(addr, "/telegram/default", Some("wrong"), body.clone()).await,
        401
    );
    assert_eq!(
        post(addr, "/telegram/default", Some(&SECRET[..5]), body.clone()).await,
        401,
        "a prefix of the secret"
    );
    // The same request with the secret goes through, so nothing else refused the others.
    assert_eq!(post(addr, "/default", Some(SECRET), body).await, 200);
    let inbound = stack.gateway.wait_inbound(1).await;
    assert_eq!(inbound.len(), 1);
    assert_eq!(inbound[0].text, "forged");
    stack.bridge.stop().await;
}

#[tokio::test]
async fn the_endpoint_checks_account_body_and_lease() {
    // No adapter polls this inbox: the account is never leased here.
    let mut server = WebhookServer::new(Secret::new(SECRET)).unwrap();
    let _inbox = server.inbox("default");
    let endpoint = serve(server).await;
    let addr = endpoint.addr;
    let update = update_json(1, "x").to_string();
    assert_eq!(
        post(addr, "/telegram/default", Some(SECRET), update.clone()).await,
        503,
        "not leased"
    );
    assert_eq!(
        post(addr, "/telegram/other", Some(SECRET), update.clone()).await,
        404
    );
    assert_eq!(
        post(addr, "/telegram/other", None, update.clone()).await,
        401,
        "the secret is checked before the account"
    );
    assert_eq!(
        post(addr, "/default", Some(SECRET), r#"{"not":"an update"}"#).await,
        400
    );
    assert_eq!(post(addr, "/default", Some(SECRET), "garbage").await, 400);
    let huge = format!(
        r#"{{"update_id":1,"padding":"{}"}}"#,
        "x".repeat(1024 * 1024)
    );
    assert_eq!(post(addr, "/default", Some(SECRET), huge).await, 413);
    let get = reqwest::Client::new()
        .get(format!("http://{addr}/default"))
        .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 405);
}

#[tokio::test]
async fn a_secret_breaking_telegrams_rule_is_refused_at_setup() {
    for bad in ["", "with space", "slash/", &"a".repeat(257)] {
        let error = WebhookServer::new(Secret::new(bad))
            .unwrap_err()
            .to_string();
        assert!(error.contains("secretToken"), "{error}");
        if !bad.is_empty() {
            assert!(!error.contains(bad), "the secret leaked: {error}");
        }
    }
}
