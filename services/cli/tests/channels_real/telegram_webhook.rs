//! Telegram in webhook mode through the whole stack: `pincer up` with
//! `channels.telegram.webhook`, the bridge registers the webhook with the secret token, and
//! the fake Bot API posts updates to it (over plain HTTP to the bridge's listener, standing
//! in for the user's TLS proxy) — the owner's DM is answered; nothing is polled.

use pincer_testkit::{FakeTelegram, FakeTelegramOptions, InjectMessage};

use crate::stack::{Stack, eventually, free_port};

const TOKEN: &str = "777:webhook-e2e-token";
const OWNER: i64 = 4242;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_webhook_mode_answers_the_owner() {
    let tg = FakeTelegram::start(FakeTelegramOptions {
        token: TOKEN.into(),
        ..FakeTelegramOptions::default()
    })
    .await
    .unwrap();
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    tg.deliver_webhooks_via(Some(listen));
    let channels = format!(
        r#"{{ telegram: {{ botToken: "${{E2E_TG_TOKEN}}", apiBaseUrl: "{api}", owners: ["{OWNER}"],
              webhook: {{ url: "https://bot.example.test/telegram", listen: "{listen}",
                          secretToken: "${{E2E_TG_SECRET}}" }} }} }}"#,
        api = tg.base_url(),
    );
    let stack = Stack::start(
        &channels,
        &[
            ("E2E_TG_TOKEN", TOKEN),
            ("E2E_TG_SECRET", "webhook-secret_0123"),
        ],
    )
    .await;

    let hook = eventually("the bridge sets the webhook", &stack, || async {
        tg.webhook()
    })
    .await;
    assert_eq!(hook.url, "https://bot.example.test/telegram/default");
    tg.inject_message(InjectMessage::private(OWNER, "hello by webhook"))
        .unwrap();
    let reply = eventually("the reply", &stack, || async {
        tg.sent_messages()
            .into_iter()
            .find(|m| m.chat_id == OWNER)
            .map(|m| m.text)
    })
    .await;
    assert_eq!(reply, "You said: hello by webhook");
    assert!(tg.webhook_deliveries() >= 1);
    stack.stop().await;
}
