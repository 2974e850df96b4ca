//! Fidelity tests for the fake Telegram's methods, errors and control API.
// Integration-test helpers outside #[test] fns are not covered by clippy.toml's
// allow-unwrap-in-tests; panicking on a broken fake is what a test should do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{assert_same_shape, client};
use pincer_testkit::{
    ChatAction, FakeFailure, FakeTelegram, FakeTelegramOptions, InjectMessage, SentMessage,
    TestkitError,
};
use serde_json::{Value, json};

async fn fake() -> FakeTelegram {
    FakeTelegram::start(FakeTelegramOptions::default())
        .await
        .unwrap()
}

async fn call(fake: &FakeTelegram, method: &str, params: Value) -> (u16, Value) {
    let response = client()
        .post(format!("{}/{method}", fake.bot_url()))
        .json(&params)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn get_me_wrong_token_and_unknown_method() {
    let fake = fake().await;
    let (status, me) = call(&fake, "getMe", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(me["ok"], true);
    assert_eq!(me["result"]["is_bot"], true);
    assert_eq!(me["result"]["username"], "pincer_bot");
    assert_eq!(me["result"]["id"], 123_456_789);

    let wrong = client()
        .get(format!("{}/bot123:nope/getMe", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.json::<Value>().await.unwrap(),
        json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
    );
    let (status, body) = call(&fake, "noSuchMethod", json!({})).await;
    assert_eq!(
        (status, body["description"].as_str()),
        (404, Some("Not Found"))
    );
}

#[tokio::test]
async fn injected_update_matches_the_documented_webhook_example() {
    let fake = fake().await;
    fake.inject_message(InjectMessage::private(1_111_111, "/start").from_username("Test"))
        .unwrap();
    let (_, body) = call(&fake, "getUpdates", json!({})).await;
    let update = &body["result"][0];
    let doc: Value =
        serde_json::from_str(include_str!("fixtures/telegram_webhook_update.json")).unwrap();
    assert_same_shape(&doc, update);
    let message = &update["message"];
    assert_eq!(message["chat"]["type"], "private");
    assert_eq!(message["from"]["is_bot"], false);
    assert_eq!(
        message["entities"],
        json!([{"type": "bot_command", "offset": 0, "length": 6}])
    );
}

#[tokio::test]
async fn group_mentions_get_utf16_entities() {
    let fake = fake().await;
    fake.inject_message(InjectMessage::supergroup(-100_200, 5, "🦀 @pincer_bot hi"))
        .unwrap();
    let (_, body) = call(&fake, "getUpdates", json!({})).await;
    let message = &body["result"][0]["message"];
    assert_eq!(message["chat"]["type"], "supergroup");
    assert_eq!(message["chat"]["id"], -100_200);
    assert_eq!(
        message["entities"],
        json!([{"type": "mention", "offset": 3, "length": 11}])
    );
    assert!(matches!(
        fake.inject_message(InjectMessage::group(5, 5, "x")),
        Err(TestkitError::InvalidInjection(_))
    ));
}

#[tokio::test]
async fn send_message_returns_messages_and_records_replies() {
    let fake = fake().await;
    fake.inject_message(InjectMessage::private(42, "question"))
        .unwrap();
    // The documented curl example: chat_id as a string, extra optional parameters.
    let (status, first) = call(
        &fake,
        "sendMessage",
        json!({"chat_id": "42", "text": "This is a test from curl", "disable_notification": true}),
    )
    .await;
    assert_eq!(status, 200);
    let first = &first["result"];
    assert_eq!(
        first["message_id"], 2,
        "message ids continue the chat's sequence"
    );
    assert_eq!(first["from"]["is_bot"], true);
    assert_eq!(first["chat"]["id"], 42);
    assert!(first["date"].as_i64().unwrap() > 1_600_000_000);

    let (_, second) = call(
        &fake,
        "sendMessage",
        json!({"chat_id": 42, "text": "<b>bold</b> &amp; more", "parse_mode": "HTML",
               "reply_parameters": {"message_id": 1}}),
    )
    .await;
    assert_eq!(second["result"]["message_id"], 3);
    assert_eq!(second["result"]["text"], "bold & more");
    assert_eq!(second["result"]["reply_to_message"]["text"], "question");

    // Form-encoded, legacy reply_to_message_id, a forum thread.
    let response = client()
        .post(format!("{}/sendMessage", fake.bot_url()))
        .form(&[
            ("chat_id", "42"),
            ("text", "form"),
            ("reply_to_message_id", "2"),
            ("message_thread_id", "9"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let sent = fake.wait_for_sent(3, Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        sent[2],
        SentMessage {
            chat_id: 42,
            text: "form".into(),
            reply_to: Some(2),
            message_id: 4,
            thread: Some(9),
            parse_mode: None,
        }
    );
    assert_eq!(sent[1].parse_mode.as_deref(), Some("HTML"));
}

#[tokio::test]
async fn send_message_errors_match_telegram() {
    let fake = fake().await;
    fake.inject_message(InjectMessage::private(42, "hi"))
        .unwrap();
    let cases = [
        (
            json!({"chat_id": 99, "text": "x"}),
            "Bad Request: chat not found",
        ),
        (json!({"text": "x"}), "Bad Request: chat_id is empty"),
        (
            json!({"chat_id": 42, "text": ""}),
            "Bad Request: message text is empty",
        ),
        (
            json!({"chat_id": 42, "text": "  \n "}),
            "Bad Request: message text is empty",
        ),
        (
            json!({"chat_id": 42, "text": "x", "parse_mode": "BBCode"}),
            "Bad Request: unsupported parse_mode",
        ),
        (
            json!({"chat_id": 42, "text": "x", "reply_to_message_id": 77}),
            "Bad Request: message to be replied not found",
        ),
    ];
    for (params, description) in cases {
        let (status, body) = call(&fake, "sendMessage", params.clone()).await;
        assert_eq!(status, 400, "{params}");
        assert_eq!(
            body,
            json!({"ok": false, "error_code": 400, "description": description}),
            "{params}"
        );
    }
    let (status, _) = call(
        &fake,
        "sendMessage",
        json!({"chat_id": 42, "text": "x", "reply_parameters": {"message_id": 77, "allow_sending_without_reply": true}}),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_4096_limit_counts_utf16_code_units_after_markup() {
    let fake = fake().await;
    fake.inject_message(InjectMessage::private(42, "hi"))
        .unwrap();
    let too_long = "Bad Request: message is too long";
    let send = |text: String, mode: Option<&str>| {
        let mut params = json!({"chat_id": 42, "text": text});
        if let Some(mode) = mode {
            params["parse_mode"] = json!(mode);
        }
        params
    };
    // 2048 crabs are 2048 chars but 4096 UTF-16 units: exactly at the limit.
    assert_eq!(
        call(&fake, "sendMessage", send("🦀".repeat(2048), None))
            .await
            .0,
        200
    );
    let (status, body) = call(&fake, "sendMessage", send("🦀".repeat(2049), None)).await;
    assert_eq!(
        (status, body["description"].as_str()),
        (400, Some(too_long))
    );
    assert_eq!(
        call(&fake, "sendMessage", send("a".repeat(4096), None))
            .await
            .0,
        200
    );
    assert_eq!(
        call(&fake, "sendMessage", send("a".repeat(4097), None))
            .await
            .0,
        400
    );
    // Markup does not count: the limit applies to the visible text.
    let html = format!("<b>{}</b>", "a".repeat(4096));
    assert_eq!(
        call(&fake, "sendMessage", send(html, Some("HTML"))).await.0,
        200
    );
}

#[tokio::test]
async fn chat_actions_are_validated_and_recorded() {
    let fake = fake().await;
    fake.inject_message(InjectMessage::private(42, "hi"))
        .unwrap();
    let (status, body) = call(
        &fake,
        "sendChatAction",
        json!({"chat_id": 42, "action": "typing"}),
    )
    .await;
    assert_eq!((status, body), (200, json!({"ok": true, "result": true})));
    let (status, body) = call(
        &fake,
        "sendChatAction",
        json!({"chat_id": 42, "action": "dancing"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["description"],
        "Bad Request: wrong parameter action in request"
    );
    assert_eq!(
        fake.chat_actions(),
        vec![ChatAction {
            chat_id: 42,
            action: "typing".into(),
            thread: None
        }]
    );
}

#[tokio::test]
async fn injected_429_has_retry_after_in_body_and_header() {
    let fake = fake().await;
    fake.inject_message(InjectMessage::private(42, "hi"))
        .unwrap();
    fake.fail_next(
        "sendMessage",
        FakeFailure::TooManyRequests {
            retry_after_secs: 3,
        },
    );
    let response = client()
        .post(format!("{}/sendMessage", fake.bot_url()))
        .json(&json!({"chat_id": 42, "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "3");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 3",
               "parameters": {"retry_after": 3}})
    );
    assert!(fake.sent_messages().is_empty());
    assert_eq!(
        call(&fake, "sendMessage", json!({"chat_id": 42, "text": "x"}))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn wait_for_sent_times_out_with_a_count() {
    let fake = fake().await;
    let error = fake
        .wait_for_sent(1, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            TestkitError::WaitTimeout {
                wanted: 1,
                got: 0,
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn control_api_round_trip() {
    let fake = fake().await;
    let http = client();
    let base = fake.base_url();
    let health: Value = http
        .get(format!("{base}/_fake/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"ok": true}));

    let injected: Value = http
        .post(format!("{base}/_fake/messages"))
        .json(
            &json!({"chat_id": -1_001_005, "chat_type": "supergroup", "from_id": 7,
                      "from_username": "alice", "text": "@pincer_bot hello"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let update_id = injected["update_id"].as_i64().unwrap();
    let (_, updates) = call(&fake, "getUpdates", json!({})).await;
    assert_eq!(updates["result"][0]["update_id"], update_id);
    assert_eq!(updates["result"][0]["message"]["from"]["username"], "alice");

    let rejected = http
        .post(format!("{base}/_fake/messages"))
        .json(&json!({"chat_id": 1, "from_id": 2, "text": "private mismatch"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), 400);

    http.post(format!("{base}/_fake/fail"))
        .json(&json!({"method": "sendChatAction", "failure": {"kind": "internal_server_error"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        call(
            &fake,
            "sendChatAction",
            json!({"chat_id": -1_001_005, "action": "typing"})
        )
        .await
        .0,
        500
    );
    call(
        &fake,
        "sendChatAction",
        json!({"chat_id": -1_001_005, "action": "typing"}),
    )
    .await;
    call(
        &fake,
        "sendMessage",
        json!({"chat_id": -1_001_005, "text": "hi alice"}),
    )
    .await;

    let sent: Vec<SentMessage> = http
        .get(format!("{base}/_fake/sent"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sent, fake.sent_messages());
    assert_eq!(sent[0].text, "hi alice");
    let actions: Vec<ChatAction> = http
        .get(format!("{base}/_fake/actions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(actions, fake.chat_actions());
    assert_eq!(actions.len(), 1);
}
