//! End-to-end flows through a real bridge: FakeTelegram ⇄ bridge ⇄ fake gateway, all on
//! 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{LEASE_TOKEN, RunningBridge, Stack, WAIT, settings, telegram_settings};
use pincer_bridge::chunk::{LengthUnit, split_text};
use pincer_proto::v1::ChatKind;
use pincer_testkit::telegram::{AttachmentKind, FakeFailure, InjectAttachment, InjectMessage};

const TOKEN: &str = "424242:flow-test-token";

/// Injects a DM from `user` (which also creates the chat in the fake) and returns its
/// `platform_message_id` once the gateway has it.
async fn open_chat(stack: &Stack, user: i64) -> String {
    let before = stack.gateway.inbound().len();
    stack
        .telegram
        .inject_message(InjectMessage::private(user, "hi"))
        .unwrap();
    let inbound = stack.gateway.wait_inbound(before + 1).await;
    inbound.last().unwrap().platform_message_id.clone()
}

#[tokio::test]
async fn direct_and_group_messages_reach_the_gateway_normalised() {
    let stack = Stack::start(TOKEN).await;
    let hello = &stack.gateway.hellos()[0];
    assert!(!hello.replica_id.is_empty());
    assert_eq!(hello.accounts, vec![common::telegram_account()]);

    stack
        .telegram
        .inject_message(InjectMessage::private(42, "hello there").from_username("ada"))
        .unwrap();
    let m = stack.gateway.wait_inbound(1).await.remove(0);
    assert_eq!(m.account, Some(common::telegram_account()));
    assert_eq!(m.sender_id, "42", "numeric id, never the username");
    assert_eq!(m.chat_id, "42");
    assert_eq!(m.chat_kind, ChatKind::Direct as i32);
    assert_eq!(m.text, "hello there");
    assert!(m.platform_message_id.starts_with("42:"));
    assert_eq!(m.fencing_token, LEASE_TOKEN);
    assert!(m.sent_at_ms > 1_600_000_000_000);
    assert!(!m.mentions_bot);

    stack
        .telegram
        .inject_message(InjectMessage::supergroup(
            -100_777,
            43,
            "@pincer_bot what's up",
        ))
        .unwrap();
    let g = stack.gateway.wait_inbound(2).await.remove(1);
    assert_eq!(g.chat_kind, ChatKind::Group as i32);
    assert_eq!(g.chat_id, "-100777");
    assert_eq!(g.sender_id, "43");
    assert!(g.mentions_bot);
    assert_eq!(g.mentions, vec!["555".to_owned()]);
    stack.bridge.stop().await;
}

#[tokio::test]
async fn offset_is_confirmed_only_after_the_gateway_ack() {
    let stack = Stack::start(TOKEN).await;
    stack.gateway.set_auto_ack(false);
    let update_id = stack
        .telegram
        .inject_message(InjectMessage::private(42, "keep me"))
        .unwrap();
    let first = stack.gateway.wait_inbound(1).await.remove(0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        stack.telegram.confirmed_offset() <= update_id,
        "confirmed before the ack"
    );

    // Disconnect: the unacknowledged message is read from Telegram again.
    stack.gateway.kick().await;
    stack.gateway.wait_hellos(2).await;
    let again = stack.gateway.wait_inbound(2).await.remove(1);
    assert_eq!(again.platform_message_id, first.platform_message_id);
    assert!(stack.telegram.confirmed_offset() <= update_id);

    // Restart the bridge process: still not acked, so Telegram re-delivers it once more;
    // this time the gateway acks and the offset moves past it.
    let Stack {
        telegram,
        gateway,
        bridge,
        ..
    } = stack;
    bridge.stop().await;
    assert!(telegram.confirmed_offset() <= update_id);
    gateway.set_auto_ack(true);
    let bridge = RunningBridge::start(
        settings(&gateway.url(), common::CREDENTIAL),
        telegram_settings(&telegram, TOKEN),
    );
    let third = gateway.wait_inbound(3).await.remove(2);
    assert_eq!(third.platform_message_id, first.platform_message_id);
    let deadline = Instant::now() + WAIT;
    while telegram.confirmed_offset() <= update_id {
        assert!(
            Instant::now() < deadline,
            "offset never confirmed after the ack"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bridge.stop().await;
    assert_eq!(telegram.pending_update_count(), 0);
}

#[tokio::test]
async fn a_long_delivery_is_sent_in_utf16_sized_chunks_replying_first() {
    let stack = Stack::start(TOKEN).await;
    let reply_to = open_chat(&stack, 42).await;
    let mut text = "a".repeat(4095);
    text.push('😀'); // 2 UTF-16 units across the 4096 boundary
    text.push_str(&"b ".repeat(2000));
    text.push_str(&"c".repeat(8998 - text.chars().count()));
    text.push_str("🦀!"); // no trailing whitespace: Telegram trims it
    assert_eq!(text.chars().count(), 9000);

    stack
        .gateway
        .deliver("d-long", "42", &text, &reply_to, LEASE_TOKEN)
        .await;
    let receipt = stack.gateway.wait_receipts("d-long", 1).await.remove(0);
    assert!(receipt.ok, "{receipt:?}");
    assert_eq!(receipt.platform_message_ids.len(), 3);
    let sent = stack.telegram.wait_for_sent(3, WAIT).await.unwrap();
    assert_eq!(sent.len(), 3);
    for m in &sent {
        assert!(m.text.encode_utf16().count() <= 4096);
        assert_eq!(m.chat_id, 42);
    }
    // Telegram trims whitespace around each message, so the space a chunk ends at is gone;
    // everything else arrives in order.
    let expected: Vec<&str> = split_text(&text, 4096, LengthUnit::Utf16)
        .into_iter()
        .map(str::trim)
        .collect();
    let got: Vec<&str> = sent.iter().map(|m| m.text.as_str()).collect();
    assert!(got == expected, "the chunks arrived changed");
    assert!(
        sent[1].text.starts_with('😀'),
        "the emoji was split or moved"
    );
    let reply_message_id: i64 = reply_to.split_once(':').unwrap().1.parse().unwrap();
    assert_eq!(sent[0].reply_to, Some(reply_message_id));
    assert_eq!(sent[1].reply_to, None);
    assert_eq!(
        receipt.platform_message_ids[0],
        format!("42:{}", sent[0].message_id)
    );
    stack.bridge.stop().await;
}

#[tokio::test]
async fn rate_limit_retry_after_is_honoured() {
    let stack = Stack::start(TOKEN).await;
    open_chat(&stack, 42).await;
    stack.telegram.fail_next(
        "sendMessage",
        FakeFailure::TooManyRequests {
            retry_after_secs: 1,
        },
    );
    let started = Instant::now();
    stack
        .gateway
        .deliver("d-429", "42", "after a pause", "", LEASE_TOKEN)
        .await;
    let receipt = stack.gateway.wait_receipts("d-429", 1).await.remove(0);
    assert!(receipt.ok, "{receipt:?}");
    assert!(started.elapsed() >= Duration::from_millis(950));
    assert_eq!(stack.telegram.sent_messages().len(), 1);
    stack.bridge.stop().await;
}

#[tokio::test]
async fn the_same_delivery_id_is_sent_once() {
    let stack = Stack::start(TOKEN).await;
    open_chat(&stack, 42).await;
    stack
        .gateway
        .deliver("d-once", "42", "only once", "", LEASE_TOKEN)
        .await;
    stack
        .gateway
        .deliver("d-once", "42", "only once", "", LEASE_TOKEN)
        .await;
    let receipts = stack.gateway.wait_receipts("d-once", 2).await;
    assert!(receipts.iter().all(|r| r.ok));
    assert_eq!(
        receipts[0].platform_message_ids,
        receipts[1].platform_message_ids
    );

    // Redelivered after a reconnect: answered from memory too.
    stack.gateway.kick().await;
    stack.gateway.wait_hellos(2).await;
    stack
        .gateway
        .deliver("d-once", "42", "only once", "", LEASE_TOKEN)
        .await;
    let receipts = stack.gateway.wait_receipts("d-once", 3).await;
    assert_eq!(
        receipts[2].platform_message_ids,
        receipts[0].platform_message_ids
    );
    assert_eq!(stack.telegram.sent_messages().len(), 1);
    stack.bridge.stop().await;
}

#[tokio::test]
async fn a_stale_fencing_token_is_refused() {
    let stack = Stack::start(TOKEN).await;
    open_chat(&stack, 42).await;
    stack
        .gateway
        .deliver("d-stale", "42", "from an old lease", "", LEASE_TOKEN - 1)
        .await;
    let receipt = stack.gateway.wait_receipts("d-stale", 1).await.remove(0);
    assert!(!receipt.ok);
    assert!(receipt.retryable);
    assert!(receipt.error.contains("stale lease"), "{}", receipt.error);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(stack.telegram.sent_messages().is_empty());
    stack.bridge.stop().await;
}

#[tokio::test]
async fn typing_becomes_send_chat_action() {
    let stack = Stack::start(TOKEN).await;
    open_chat(&stack, 42).await;
    stack.gateway.typing("42").await;
    let deadline = Instant::now() + WAIT;
    loop {
        let actions = stack.telegram.chat_actions();
        if actions
            .iter()
            .any(|a| a.chat_id == 42 && a.action == "typing")
        {
            break;
        }
        assert!(Instant::now() < deadline, "no typing action: {actions:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack.bridge.stop().await;
}

#[tokio::test]
async fn polling_stops_when_the_lease_expires_and_resumes_with_a_new_one() {
    let telegram = pincer_testkit::telegram::FakeTelegram::start(common::telegram_options(TOKEN))
        .await
        .unwrap();
    let gateway = common::FakeGateway::start(common::CREDENTIAL).await;
    // Long enough for one short long poll: a poll must end 1 s before the lease does.
    gateway.set_lease_ttl(Duration::from_millis(2500));
    let bridge = RunningBridge::start(
        settings(&gateway.url(), common::CREDENTIAL),
        telegram_settings(&telegram, TOKEN),
    );
    gateway.wait_hellos(1).await;
    telegram
        .inject_message(InjectMessage::private(42, "while leased"))
        .unwrap();
    gateway.wait_inbound(1).await;

    // No renewal: after expiry the message stays at Telegram.
    tokio::time::sleep(Duration::from_millis(2800)).await;
    telegram
        .inject_message(InjectMessage::private(42, "while not leased"))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(gateway.inbound().len(), 1, "polled without a lease");
    // Deliveries need a live lease too.
    gateway
        .deliver("d-nolease", "42", "hello?", "", LEASE_TOKEN)
        .await;
    let refused = gateway.wait_receipts("d-nolease", 1).await.remove(0);
    assert!(!refused.ok && refused.retryable, "{refused:?}");

    // A new lease (newer token): polling resumes and the message arrives stamped with it.
    gateway
        .grant_lease(LEASE_TOKEN + 1, Duration::from_secs(30))
        .await;
    let inbound = gateway.wait_inbound(2).await;
    assert_eq!(inbound[1].text, "while not leased");
    assert_eq!(inbound[1].fencing_token, LEASE_TOKEN + 1);
    bridge.stop().await;
}

#[tokio::test]
async fn a_photo_with_a_caption_arrives_as_a_media_reference() {
    let stack = Stack::start(TOKEN).await;
    stack
        .telegram
        .inject_message(
            InjectMessage::supergroup(-100_778, 44, "@pincer_bot what is this?")
                .with_attachment(InjectAttachment::photo("photo-file-1", 123_456)),
        )
        .unwrap();
    let m = stack.gateway.wait_inbound(1).await.remove(0);
    assert_eq!(m.text, "@pincer_bot what is this?", "the caption");
    assert!(m.mentions_bot, "mentions come from caption_entities");
    assert_eq!(m.media.len(), 1);
    let photo = &m.media[0];
    assert_eq!(photo.kind, "image");
    assert_eq!(photo.platform_file_id, "photo-file-1", "the largest size");
    assert_eq!(photo.size_bytes, 123_456);
    assert_eq!(photo.mime_type, "image/jpeg");

    // Without a caption the text is empty but the message still arrives.
    stack
        .telegram
        .inject_message(
            InjectMessage::private(42, "").with_attachment(InjectAttachment::file(
                AttachmentKind::Voice,
                "voice-1",
                "audio/ogg",
                999,
            )),
        )
        .unwrap();
    let v = stack.gateway.wait_inbound(2).await.remove(1);
    assert_eq!(v.text, "");
    assert_eq!(v.media[0].kind, "voice");
    assert_eq!(v.media[0].mime_type, "audio/ogg");
    stack.bridge.stop().await;
}

#[tokio::test]
async fn a_leftover_webhook_is_deleted_when_the_config_polls() {
    let telegram = pincer_testkit::FakeTelegram::start(common::telegram_options(TOKEN))
        .await
        .unwrap();
    // Webhook mode was used before (or another tool set one): getUpdates would get 409.
    let set: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/setWebhook", telegram.bot_url()))
        .json(&serde_json::json!({ "url": "https://old.example.test/hook" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(set["ok"], true, "{set}");
    let gateway = common::FakeGateway::start(common::CREDENTIAL).await;
    let bridge = RunningBridge::start(
        settings(&gateway.url(), common::CREDENTIAL),
        telegram_settings(&telegram, TOKEN),
    );
    telegram
        .inject_message(InjectMessage::private(42, "polling again"))
        .unwrap();
    let m = gateway.wait_inbound(1).await.remove(0);
    assert_eq!(m.text, "polling again");
    assert!(telegram.webhook().is_none(), "the webhook was deleted");
    bridge.stop().await;
}

#[tokio::test]
async fn markdown_goes_out_as_telegram_html_and_plain_when_telegram_refuses_it() {
    let stack = Stack::start(TOKEN).await;
    let reply_to = open_chat(&stack, 42).await;
    stack
        .gateway
        .deliver("d-md", "42", "**bold** and `x<y`", &reply_to, LEASE_TOKEN)
        .await;
    assert!(stack.gateway.wait_receipts("d-md", 1).await[0].ok);
    let sent = stack.telegram.wait_for_sent(1, WAIT).await.unwrap();
    assert_eq!(sent[0].parse_mode.as_deref(), Some("HTML"));
    assert_eq!(sent[0].text, "bold and x<y", "what the user sees");

    // Telegram refuses the markup once: the same chunk goes out as plain text.
    stack
        .telegram
        .fail_next("sendMessage", FakeFailure::CantParseEntities);
    stack
        .gateway
        .deliver("d-md2", "42", "**again**", &reply_to, LEASE_TOKEN)
        .await;
    assert!(stack.gateway.wait_receipts("d-md2", 1).await[0].ok);
    let sent = stack.telegram.wait_for_sent(2, WAIT).await.unwrap();
    assert_eq!(sent[1].parse_mode, None);
    assert_eq!(sent[1].text, "again");
    assert_eq!(stack.telegram.failures_left("sendMessage"), 0);
    stack.bridge.stop().await;
}
