//! Fidelity tests for the fake Telegram's update delivery: offsets, long polling, 409s.
// Integration-test helpers outside #[test] fns are not covered by clippy.toml's
// allow-unwrap-in-tests; panicking on a broken fake is what a test should do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::client;
use pincer_testkit::{FakeTelegram, FakeTelegramOptions, InjectMessage};
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

fn ids(body: &Value) -> Vec<i64> {
    body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["update_id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn offsets_confirm_and_forget_updates_like_telegram() {
    let fake = fake().await;
    let a = fake
        .inject_message(InjectMessage::private(42, "one"))
        .unwrap();
    let b = fake
        .inject_message(InjectMessage::private(42, "two"))
        .unwrap();
    let c = fake
        .inject_message(InjectMessage::private(42, "three"))
        .unwrap();
    assert!(a < b && b < c);

    let (_, all) = call(&fake, "getUpdates", json!({})).await;
    assert_eq!(ids(&all), vec![a, b, c]);
    // Unconfirmed updates are returned again.
    let (_, limited) = call(&fake, "getUpdates", json!({"limit": 2})).await;
    assert_eq!(ids(&limited), vec![a, b]);
    assert_eq!(fake.confirmed_offset(), 0);

    let (_, rest) = call(&fake, "getUpdates", json!({"offset": b})).await;
    assert_eq!(ids(&rest), vec![b, c]);
    assert_eq!(fake.pending_update_count(), 2);
    let (_, none) = call(&fake, "getUpdates", json!({"offset": c + 1})).await;
    assert_eq!(ids(&none), Vec::<i64>::new());
    assert_eq!(fake.confirmed_offset(), c + 1);
    assert_eq!(fake.pending_update_count(), 0);

    // A negative offset keeps only the last -offset updates.
    let d = fake
        .inject_message(InjectMessage::private(42, "four"))
        .unwrap();
    let e = fake
        .inject_message(InjectMessage::private(42, "five"))
        .unwrap();
    let (_, last) = call(&fake, "getUpdates", json!({"offset": -1})).await;
    assert_eq!(ids(&last), vec![e]);
    assert!(d < e);
    assert_eq!(fake.pending_update_count(), 1);
}

#[tokio::test]
async fn get_with_query_parameters_works() {
    let fake = fake().await;
    let id = fake
        .inject_message(InjectMessage::private(7, "hi"))
        .unwrap();
    let body: Value = client()
        .get(format!(
            "{}/getUpdates?offset={id}&limit=1&timeout=0",
            fake.bot_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&body), vec![id]);
    assert_eq!(fake.confirmed_offset(), id);
}

#[tokio::test]
async fn long_poll_returns_as_soon_as_a_message_arrives() {
    let fake = fake().await;
    let url = format!("{}/getUpdates", fake.bot_url());
    let started = Instant::now();
    let poll = tokio::spawn(async move {
        client()
            .post(url)
            .json(&json!({"timeout": 20}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!poll.is_finished(), "a long poll must wait for updates");
    let id = fake
        .inject_message(InjectMessage::private(42, "wake up"))
        .unwrap();
    let body = poll.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(ids(&body), vec![id]);
    assert_eq!(body["result"][0]["message"]["text"], "wake up");
}

#[tokio::test]
async fn long_poll_times_out_empty() {
    let fake = fake().await;
    let started = Instant::now();
    let (status, body) = call(&fake, "getUpdates", json!({"timeout": 1})).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"ok": true, "result": []}));
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn a_second_poller_terminates_the_first_with_409() {
    let fake = fake().await;
    assert_eq!(fake.get_updates_conflicts(), 0);
    let url = format!("{}/getUpdates", fake.bot_url());
    let first = tokio::spawn(async move {
        let response = client()
            .post(url)
            .json(&json!({"timeout": 20}))
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (second_status, second) = call(&fake, "getUpdates", json!({"timeout": 1})).await;
    let (first_status, first) = first.await.unwrap();
    assert_eq!(first_status, 409);
    assert_eq!(
        first,
        json!({"ok": false, "error_code": 409, "description":
            "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"})
    );
    assert_eq!(second_status, 200);
    assert_eq!(second["result"], json!([]));
    assert_eq!(fake.get_updates_conflicts(), 1, "the overlap is counted");
}

#[tokio::test]
async fn webhook_blocks_polling_until_deleted() {
    let fake = fake().await;
    fake.inject_message(InjectMessage::private(42, "queued"))
        .unwrap();
    let (status, body) = call(
        &fake,
        "setWebhook",
        json!({"url": "http://insecure.example"}),
    )
    .await;
    assert_eq!(
        (status, body["description"].as_str()),
        (
            400,
            Some("Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        )
    );
    let (status, body) = call(
        &fake,
        "setWebhook",
        json!({"url": "https://bot.example/hook", "secret_token": "s3cret_-token"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"ok": true, "result": true, "description": "Webhook was set"})
    );
    assert_eq!(
        fake.webhook_url().as_deref(),
        Some("https://bot.example/hook")
    );
    let (_, info) = call(&fake, "getWebhookInfo", json!({})).await;
    assert_eq!(info["result"]["url"], "https://bot.example/hook");
    assert_eq!(info["result"]["pending_update_count"], 1);

    let (status, body) = call(&fake, "getUpdates", json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(
        body["description"],
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
    );
    let (_, body) = call(
        &fake,
        "deleteWebhook",
        json!({"drop_pending_updates": true}),
    )
    .await;
    assert_eq!(body["description"], "Webhook was deleted");
    let (status, body) = call(&fake, "getUpdates", json!({})).await;
    assert_eq!((status, body["result"].clone()), (200, json!([])));
    let (_, body) = call(&fake, "deleteWebhook", json!({})).await;
    assert_eq!(body["description"], "Webhook is already deleted");
}

#[tokio::test]
async fn set_webhook_terminates_a_waiting_poll() {
    let fake = fake().await;
    let url = format!("{}/getUpdates", fake.bot_url());
    let poll = tokio::spawn(async move {
        let response = client()
            .post(url)
            .json(&json!({"timeout": 20}))
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    call(
        &fake,
        "setWebhook",
        json!({"url": "https://bot.example/hook"}),
    )
    .await;
    let (status, body) = poll.await.unwrap();
    assert_eq!(status, 409);
    assert_eq!(
        body["description"],
        "Conflict: terminated by setWebhook request"
    );
}

#[tokio::test]
async fn allowed_updates_without_message_filters_new_messages() {
    let fake = fake().await;
    call(
        &fake,
        "getUpdates",
        json!({"allowed_updates": ["callback_query"]}),
    )
    .await;
    assert_eq!(
        fake.inject_message(InjectMessage::private(1, "x")).unwrap(),
        0
    );
    assert_eq!(fake.pending_update_count(), 0);
    // Form-encoded JSON arrays are accepted too, as on Telegram.
    let response = client()
        .post(format!("{}/getUpdates", fake.bot_url()))
        .form(&[("allowed_updates", r#"["message"]"#)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(fake.inject_message(InjectMessage::private(1, "y")).unwrap() > 0);
}

#[tokio::test]
async fn shutdown_releases_a_waiting_poll() {
    let fake = fake().await;
    let url = format!("{}/getUpdates", fake.bot_url());
    let poll = tokio::spawn(async move {
        client()
            .post(url)
            .json(&json!({"timeout": 30}))
            .send()
            .await
            .unwrap()
            .status()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    fake.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(poll.await.unwrap(), 200);
}
