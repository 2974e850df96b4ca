//! Secrets and failure reporting, with every log line of the process captured at TRACE
//! level (bridge, reqwest, hyper, h2, tonic): the bot token must never appear in logs or
//! error strings, and a refused bridge credential is reported and retried with backoff.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{FakeGateway, LEASE_TOKEN, RunningBridge, Stack, settings, telegram_settings};
use pincer_bridge::ChannelAdapter;
use pincer_bridge::adapter::OutboundText;
use pincer_bridge::telegram::{TelegramAdapter, TelegramSettings};
use pincer_runtime::Secret;
use pincer_testkit::telegram::{FakeFailure, InjectMessage};

const CANARY_SECRET: &str = "CANARY-tok3n-must-never-be-logged";

fn canary_token() -> String {
    format!("987654321:{CANARY_SECRET}")
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures everything logged by this test process.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(Arc::clone(&buf));
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        buf
    })
}

fn captured() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = format!("{e} | {e:?}");
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(&format!(" | {s} | {s:?}"));
        source = s.source();
    }
    out
}

#[tokio::test]
async fn the_bot_token_never_appears_in_logs_or_errors() {
    logs();
    let token = canary_token();
    let stack = Stack::start(&token).await;
    stack
        .telegram
        .inject_message(InjectMessage::private(42, "hello"))
        .unwrap();
    stack.gateway.wait_inbound(1).await;

    // A 500 then a 429 (retried, logged), then success.
    stack
        .telegram
        .fail_next("sendMessage", FakeFailure::InternalServerError);
    stack.telegram.fail_next(
        "sendMessage",
        FakeFailure::TooManyRequests {
            retry_after_secs: 1,
        },
    );
    stack
        .gateway
        .deliver("d-ok", "42", "reply", "", LEASE_TOKEN)
        .await;
    assert!(stack.gateway.wait_receipts("d-ok", 1).await[0].ok);
    // A permanent failure: its error travels to the gateway in the receipt.
    stack
        .gateway
        .deliver("d-bad", "31337", "to nowhere", "", LEASE_TOKEN)
        .await;
    let bad = stack.gateway.wait_receipts("d-bad", 1).await.remove(0);
    assert!(!bad.ok && !bad.retryable, "{bad:?}");
    assert!(bad.error.contains("chat not found"), "{}", bad.error);
    assert!(!bad.error.contains(CANARY_SECRET));

    // Telegram goes away: polling fails with network errors for a while.
    let Stack {
        telegram,
        gateway,
        bridge,
        ..
    } = stack;
    let base = telegram.base_url();
    telegram.shutdown().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    bridge.stop().await;

    // Errors returned by the adapter itself.
    let mut settings = TelegramSettings::new(Secret::new(token.clone()), base.parse().unwrap());
    settings.retry.initial_backoff = Duration::from_millis(10);
    settings.retry.max_backoff = Duration::from_millis(20);
    let adapter = TelegramAdapter::new(settings).unwrap();
    let failure = adapter
        .send(OutboundText {
            chat_id: "42".into(),
            thread_id: None,
            text: "x".into(),
            reply_to: None,
            skip_chunks: 0,
            lease_until: None,
        })
        .await
        .unwrap_err();
    let errors = format!("{} || {:?}", error_chain(&failure), adapter);
    assert!(errors.contains("cannot reach the Bot API"), "{errors}");
    assert!(!errors.contains(CANARY_SECRET), "token in error: {errors}");

    let logs = captured();
    assert!(
        logs.contains("Telegram bot identified"),
        "nothing captured?"
    );
    assert!(logs.contains("retrying"), "the retries were not logged");
    assert!(
        !logs.contains(CANARY_SECRET),
        "the bot token leaked into the logs:\n{}",
        logs.lines()
            .filter(|l| l.contains(CANARY_SECRET))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(!logs.contains("/bot"), "a Bot API URL was logged");
    drop(gateway);
}

#[tokio::test]
async fn a_refused_credential_is_reported_and_retried_with_backoff() {
    logs();
    let token = "111:wrong-credential-test-token";
    let telegram = pincer_testkit::telegram::FakeTelegram::start(common::telegram_options(token))
        .await
        .unwrap();
    let gateway = FakeGateway::start(common::CREDENTIAL).await;
    let wrong = "wrong-bridge-credential-xyz";
    let bridge = RunningBridge::start(
        settings(&gateway.url(), wrong),
        telegram_settings(&telegram, token),
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let attempts = gateway.attempts();
    // Backoff 100 ms doubling to 800 ms: about 6 attempts in 2.5 s, never a hot loop.
    assert!((2..=9).contains(&attempts), "{attempts} attempts in 2.5 s");
    assert!(gateway.hellos().is_empty());
    assert!(gateway.inbound().is_empty());
    bridge.stop().await;

    let logs = captured();
    assert!(
        logs.contains("refused this bridge's credential"),
        "auth error not reported"
    );
    assert!(logs.contains("services.credentials.bridge"));
    assert!(
        !logs.contains(wrong),
        "the bridge credential leaked into the logs"
    );
}
