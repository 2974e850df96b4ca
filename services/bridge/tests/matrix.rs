//! The Matrix adapter against a real Synapse (TESTING.md: real peers where they run
//! locally). One Synapse serves the whole test binary (startup takes seconds); each test
//! registers its own users and creates its own rooms, so tests run in parallel. The
//! server's watchdog stops it when this process exits.
//!
//! The "humans" are plain client-server API calls with reqwest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pincer_bridge::ChannelAdapter;
use pincer_bridge::adapter::{ChatTarget, InboundItem, OutboundText};
use pincer_bridge::matrix::{InvitePolicy, MatrixAdapter, MatrixSettings, encode_segment};
use pincer_proto::v1::ChatKind;
use pincer_runtime::Secret;
use pincer_testkit::matrix_user::MatrixUser;
use pincer_testkit::synapse::{Registered, Synapse};
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

/// How long any awaited event may take.
const WAIT: Duration = Duration::from_secs(30);

static SERVER: OnceCell<(tempfile::TempDir, Synapse)> = OnceCell::const_new();

async fn synapse() -> &'static Synapse {
    let (_, synapse) = SERVER
        .get_or_init(|| async {
            let dir = tempfile::tempdir().unwrap();
            let synapse = Synapse::start(dir.path()).await.unwrap();
            (dir, synapse)
        })
        .await;
    synapse
}

/// A unique user name per call (tests share the server).
fn name(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A test-side Matrix user: the testkit's client, failing the test on any error.
struct Human(MatrixUser);

impl std::ops::Deref for Human {
    type Target = MatrixUser;

    fn deref(&self) -> &MatrixUser {
        &self.0
    }
}

impl Human {
    async fn register(prefix: &str) -> Self {
        let user = MatrixUser::register(synapse().await, &name(prefix), "human-password")
            .await
            .unwrap();
        Self(user)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.0.call(method, path, body).await.unwrap()
    }

    async fn create_room(&self, invite: &[&str], is_direct: bool) -> String {
        self.0.create_room(invite, is_direct).await.unwrap()
    }

    async fn join(&self, room: &str) {
        self.0.join(room).await.unwrap();
    }

    async fn send(&self, room: &str, content: Value) -> String {
        self.0.send(room, content).await.unwrap()
    }

    async fn say(&self, room: &str, text: &str) -> String {
        self.0.say(room, text).await.unwrap()
    }

    /// The room's messages, oldest first.
    async fn messages(&self, room: &str) -> Vec<Value> {
        self.0.messages(room).await.unwrap()
    }

    /// Waits until `user`'s membership in `room` is `wanted`.
    async fn await_membership(&self, room: &str, user: &str, wanted: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.membership(room, user).await;
            if now.as_deref() == Some(wanted) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{user} in {room}: {now:?}, wanted {wanted}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

struct Bot {
    registered: Registered,
    human: Human,
}

async fn bot(prefix: &str) -> Bot {
    let human = Human::register(prefix).await;
    Bot {
        registered: Registered {
            user_id: human.user_id.clone(),
            access_token: human.token.clone(),
        },
        human,
    }
}

fn adapter(bot: &Bot, invites: InvitePolicy) -> Arc<MatrixAdapter> {
    let server = SERVER.get().map(|(_, s)| s).unwrap();
    let mut settings = MatrixSettings::new(server.url().parse().unwrap());
    settings.user_id = Some(bot.registered.user_id.clone());
    settings.access_token = Some(Secret::new(bot.registered.access_token.clone()));
    settings.invites = invites;
    settings.sync_timeout = Duration::from_secs(5);
    Arc::new(MatrixAdapter::new(settings).unwrap())
}

fn lease() -> Instant {
    Instant::now() + Duration::from_secs(600)
}

/// Waits for the adapter's next message in the background (invites are handled while it
/// syncs).
fn spawn_next(adapter: &Arc<MatrixAdapter>) -> JoinHandle<InboundItem> {
    let adapter = adapter.clone();
    tokio::spawn(async move { adapter.next_inbound(lease()).await.unwrap() })
}

async fn next(adapter: &MatrixAdapter) -> InboundItem {
    tokio::time::timeout(WAIT, adapter.next_inbound(lease()))
        .await
        .expect("no inbound message in time")
        .unwrap()
}

async fn finish(task: JoinHandle<InboundItem>) -> InboundItem {
    tokio::time::timeout(WAIT, task)
        .await
        .expect("no inbound message in time")
        .unwrap()
}

fn reply(chat_id: &str, text: &str, reply_to: Option<&str>) -> OutboundText {
    OutboundText {
        chat_id: chat_id.to_owned(),
        thread_id: None,
        text: text.to_owned(),
        reply_to: reply_to.map(str::to_owned),
        skip_chunks: 0,
        lease_until: Some(lease()),
    }
}

fn open_dms() -> InvitePolicy {
    InvitePolicy {
        accept_direct_from_anyone: true,
        ..InvitePolicy::default()
    }
}

#[tokio::test]
async fn a_direct_chat_round_trip_with_markdown_reply_and_typing() {
    let alice = Human::register("alice").await;
    let bot = bot("bot").await;
    let adapter = adapter(&bot, open_dms());
    let pending = spawn_next(&adapter);
    let room = alice.create_room(&[&bot.registered.user_id], true).await;
    alice
        .await_membership(&room, &bot.registered.user_id, "join")
        .await;
    let hello = alice.say(&room, "hello bot").await;

    let item = finish(pending).await;
    let m = &item.message;
    assert_eq!(m.text, "hello bot");
    assert_eq!(m.sender_id, alice.user_id);
    assert_eq!(m.chat_id, room);
    assert_eq!(m.chat_kind, ChatKind::Direct as i32);
    assert_eq!(m.platform_message_id, hello);
    assert_eq!(m.account.as_ref().unwrap().channel, "matrix");
    item.ack.ack();

    let sent = adapter
        .send(reply(&room, "this is **bold**", Some(&hello)))
        .await
        .unwrap();
    assert_eq!(sent.platform_message_ids.len(), 1);
    let messages = alice.messages(&room).await;
    let answer = messages
        .iter()
        .find(|e| e["event_id"] == sent.platform_message_ids[0].as_str())
        .expect("the reply is in the room");
    assert_eq!(answer["sender"], bot.registered.user_id.as_str());
    let content = &answer["content"];
    assert_eq!(content["body"], "this is bold");
    assert_eq!(content["format"], "org.matrix.custom.html");
    assert!(
        content["formatted_body"]
            .as_str()
            .unwrap()
            .contains("<strong>bold</strong>"),
        "{content}"
    );
    assert_eq!(
        content["m.relates_to"]["m.in_reply_to"]["event_id"],
        hello.as_str()
    );

    // Typing reaches alice's sync as an ephemeral m.typing event.
    let since = alice
        .call(reqwest::Method::GET, "sync?timeout=0", None)
        .await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    adapter
        .typing(ChatTarget {
            chat_id: room.clone(),
            thread_id: None,
        })
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let mut since = since;
    loop {
        let answer = alice
            .call(
                reqwest::Method::GET,
                &format!("sync?timeout=5000&since={since}"),
                None,
            )
            .await;
        let ephemeral = &answer["rooms"]["join"][room.as_str()]["ephemeral"]["events"];
        let typing = ephemeral.as_array().into_iter().flatten().any(|e| {
            e["type"] == "m.typing"
                && e["content"]["user_ids"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|id| id == bot.registered.user_id.as_str()))
        });
        if typing {
            break;
        }
        assert!(Instant::now() < deadline, "no typing notification");
        since = answer["next_batch"].as_str().unwrap().to_owned();
    }
}

#[tokio::test]
async fn the_sync_token_moves_only_past_acked_messages_and_history_is_skipped() {
    let bob = Human::register("bob").await;
    let bot = bot("bot").await;
    let room = bob.create_room(&[&bot.registered.user_id], true).await;
    bot.human.join(&room).await;
    bob.say(&room, "before the bridge ever ran").await;

    let first = adapter(&bot, open_dms());
    let pending = spawn_next(&first);
    // Wait until the first sync (which skips history) is done: the token is stored.
    let deadline = Instant::now() + WAIT;
    while !stored_token(&bot).await {
        assert!(
            Instant::now() < deadline,
            "the first sync token was not stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bob.say(&room, "one").await;
    let item = finish(pending).await;
    assert_eq!(
        item.message.text, "one",
        "history before the first start is skipped"
    );
    item.ack.ack();
    first.flush().await.unwrap();
    drop(first);

    bob.say(&room, "two").await;
    let second = adapter(&bot, open_dms());
    let item = next(&second).await;
    assert_eq!(
        item.message.text, "two",
        "acked messages are not delivered again"
    );
    drop(item); // not acked
    drop(second);

    let third = adapter(&bot, open_dms());
    let item = next(&third).await;
    assert_eq!(
        item.message.text, "two",
        "unacked messages are delivered again"
    );
    item.ack.ack();
    third.flush().await.unwrap();

    // Within one adapter, a dropped handle is redelivered too.
    bob.say(&room, "three").await;
    let item = next(&third).await;
    assert_eq!(item.message.text, "three");
    drop(item);
    let item = next(&third).await;
    assert_eq!(item.message.text, "three");
    item.ack.ack();
}

async fn stored_token(bot: &Bot) -> bool {
    let response = bot
        .human
        .http
        .get(format!(
            "{}/user/{}/account_data/org.pincer.sync",
            bot.human.api,
            encode_segment(&bot.registered.user_id)
        ))
        .bearer_auth(&bot.human.token)
        .send()
        .await
        .unwrap();
    response.status().is_success()
}

#[tokio::test]
async fn invites_follow_the_policy() {
    let stranger = Human::register("stranger").await;
    let owner = Human::register("owner").await;
    let bot = bot("bot").await;
    let policy = InvitePolicy {
        allowed_inviters: vec![owner.user_id.clone()],
        accept_direct_from_anyone: false,
        allowed_rooms: Vec::new(),
    };
    let adapter = adapter(&bot, policy);
    let pending = spawn_next(&adapter);
    let bot_id = bot.registered.user_id.as_str();
    let strangers_room = stranger.create_room(&[bot_id], false).await;
    let strangers_dm = stranger.create_room(&[bot_id], true).await;
    let owners_room = owner.create_room(&[bot_id], false).await;
    owner.await_membership(&owners_room, bot_id, "join").await;
    stranger
        .await_membership(&strangers_room, bot_id, "leave")
        .await;
    stranger
        .await_membership(&strangers_dm, bot_id, "leave")
        .await;

    // With direct chats open to anyone, a stranger's DM is accepted, a room still is not.
    // (Another bot: two adapters of one account would race for the same invites.)
    let open_bot = crate::bot("bot").await;
    let open_id = open_bot.registered.user_id.as_str();
    let open = crate::adapter(&open_bot, open_dms());
    let open_pending = spawn_next(&open);
    let dm = stranger.create_room(&[open_id], true).await;
    let room = stranger.create_room(&[open_id], false).await;
    stranger.await_membership(&dm, open_id, "join").await;
    stranger.await_membership(&room, open_id, "leave").await;
    pending.abort();
    open_pending.abort();
}

#[tokio::test]
async fn group_rooms_and_mentions() {
    let erin = Human::register("erin").await;
    let frank = Human::register("frank").await;
    let bot = bot("mentionbot").await;
    let bot_id = bot.registered.user_id.clone();
    let policy = InvitePolicy {
        allowed_inviters: vec![erin.user_id.clone()],
        ..InvitePolicy::default()
    };
    let adapter = adapter(&bot, policy);
    let pending = spawn_next(&adapter);
    let room = erin.create_room(&[&bot_id, &frank.user_id], false).await;
    frank.join(&room).await;
    erin.await_membership(&room, &bot_id, "join").await;

    erin.say(&room, "hello everyone").await;
    let item = finish(pending).await;
    assert_eq!(item.message.text, "hello everyone");
    assert_eq!(item.message.chat_kind, ChatKind::Group as i32);
    assert!(!item.message.mentions_bot);
    item.ack.ack();

    erin.send(
        &room,
        json!({ "msgtype": "m.text", "body": "hey you", "m.mentions": { "user_ids": [bot_id] } }),
    )
    .await;
    let item = next(&adapter).await;
    assert!(item.message.mentions_bot, "m.mentions names the bot");
    assert_eq!(item.message.mentions, vec![bot_id.clone()]);
    item.ack.ack();

    let localpart = bot_id.trim_start_matches('@').split(':').next().unwrap();
    frank
        .say(
            &room,
            &format!("what do you think, {}?", localpart.to_uppercase()),
        )
        .await;
    let item = next(&adapter).await;
    assert!(item.message.mentions_bot, "the bot's name in the text");
    assert_eq!(item.message.sender_id, frank.user_id);
    item.ack.ack();

    let sent = adapter
        .send(reply(&room, "I think so", None))
        .await
        .unwrap();
    let bots_event = sent.platform_message_ids[0].clone();
    frank
        .send(
            &room,
            json!({
                "msgtype": "m.text",
                "body": format!("> <{bot_id}> I think so\n\nwhy?"),
                "m.relates_to": { "m.in_reply_to": { "event_id": bots_event } },
            }),
        )
        .await;
    let item = next(&adapter).await;
    assert_eq!(item.message.text, "why?", "the reply fallback is stripped");
    assert!(item.message.mentions_bot, "a reply to the bot");
    item.ack.ack();

    // A fresh adapter has no memory of the bot's events: it looks the event up.
    let fresh = crate::adapter(&bot, InvitePolicy::default());
    fresh.flush().await.unwrap();
    adapter.flush().await.unwrap();
    frank
        .send(
            &room,
            json!({
                "msgtype": "m.text",
                "body": "and again?",
                "m.relates_to": { "m.in_reply_to": { "event_id": bots_event } },
            }),
        )
        .await;
    let item = next(&fresh).await;
    assert_eq!(item.message.text, "and again?");
    assert!(item.message.mentions_bot, "a reply to the bot, looked up");
}

#[tokio::test]
async fn long_replies_are_split_in_order_and_retries_are_idempotent() {
    let alice = Human::register("alice").await;
    let bot = bot("bot").await;
    let room = alice.create_room(&[&bot.registered.user_id], true).await;
    bot.human.join(&room).await;
    let adapter = adapter(&bot, InvitePolicy::default());

    let text: String = (0..4000)
        .map(|i| format!("line {i} of the answer\n"))
        .collect();
    let sent = adapter.send(reply(&room, &text, None)).await.unwrap();
    let ids = sent.platform_message_ids;
    assert!(ids.len() >= 6, "{} chunks", ids.len());
    let messages = alice.messages(&room).await;
    let from_bot: Vec<&Value> = messages
        .iter()
        .filter(|e| e["sender"] == bot.registered.user_id.as_str())
        .collect();
    let in_room: Vec<&str> = from_bot
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(in_room, ids, "chunks arrive in order");
    let first = from_bot[0]["content"]["body"].as_str().unwrap();
    assert!(first.starts_with("line 0 of the answer"));
    let last = from_bot[from_bot.len() - 1]["content"]["body"]
        .as_str()
        .unwrap();
    assert!(last.trim_end().ends_with("line 3999 of the answer"));

    // A retry of the same delivery reuses the transaction ids: no duplicates.
    let mut retry = reply(&room, &text, None);
    retry.skip_chunks = 2;
    let again = adapter.send(retry).await.unwrap();
    assert_eq!(again.platform_message_ids, ids[2..].to_vec());
    let count = alice
        .messages(&room)
        .await
        .iter()
        .filter(|e| e["sender"] == bot.registered.user_id.as_str())
        .count();
    assert_eq!(count, ids.len());
}

#[tokio::test]
async fn a_password_login_and_bad_targets() {
    let server = synapse().await;
    let user = name("pwbot");
    let registered = server.register(&user, "bot-password", false).await.unwrap();
    let mut settings = MatrixSettings::new(server.url().parse().unwrap());
    settings.user_id = Some(registered.user_id.clone());
    settings.password = Some(Secret::new("bot-password"));
    let adapter = MatrixAdapter::new(settings.clone()).unwrap();
    assert_eq!(
        adapter.identity().await.unwrap().user_id,
        registered.user_id
    );

    settings.password = Some(Secret::new("wrong-password"));
    let wrong = MatrixAdapter::new(settings).unwrap();
    let error = wrong.identity().await.unwrap_err();
    assert!(error.needs_operator, "{error}");
    assert!(!error.to_string().contains("wrong-password"));

    // A refused token with a password configured: log in again, once.
    let mut stale = MatrixSettings::new(server.url().parse().unwrap());
    stale.user_id = Some(registered.user_id.clone());
    stale.access_token = Some(Secret::new("syt_stale_token_value"));
    stale.password = Some(Secret::new("bot-password"));
    let relogin = MatrixAdapter::new(stale.clone()).unwrap();
    assert_eq!(
        relogin.identity().await.unwrap().user_id,
        registered.user_id
    );
    // Without a password it is the operator's problem, and the token is not in the error.
    stale.password = None;
    let refused = MatrixAdapter::new(stale).unwrap();
    let error = refused.identity().await.unwrap_err();
    assert!(error.needs_operator, "{error}");
    assert!(!error.to_string().contains("syt_stale_token_value"));

    let failure = adapter
        .send(reply("#alias:test.local", "hi", None))
        .await
        .unwrap_err();
    assert!(!failure.error.is_retryable());
}

#[tokio::test]
async fn threads_in_and_out() {
    let alice = Human::register("alice").await;
    let bot = bot("bot").await;
    let room = alice.create_room(&[&bot.registered.user_id], true).await;
    bot.human.join(&room).await;
    let root = alice.say(&room, "a topic").await;
    let adapter = adapter(&bot, InvitePolicy::default());
    let pending = spawn_next(&adapter);
    let deadline = Instant::now() + WAIT;
    while !stored_token(&bot).await {
        assert!(
            Instant::now() < deadline,
            "the first sync token was not stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let in_thread = alice
        .send(
            &room,
            json!({
                "msgtype": "m.text",
                "body": "in the thread",
                "m.relates_to": {
                    "rel_type": "m.thread",
                    "event_id": root,
                    "is_falling_back": true,
                    "m.in_reply_to": { "event_id": root },
                },
            }),
        )
        .await;
    let item = finish(pending).await;
    assert_eq!(item.message.text, "in the thread");
    assert_eq!(item.message.thread_id, root);
    item.ack.ack();

    let mut out = reply(&room, "threaded answer", Some(&in_thread));
    out.thread_id = Some(root.clone());
    let sent = adapter.send(out).await.unwrap();
    let messages = alice.messages(&room).await;
    let answer = messages
        .iter()
        .find(|e| e["event_id"] == sent.platform_message_ids[0].as_str())
        .unwrap();
    let relation = &answer["content"]["m.relates_to"];
    assert_eq!(relation["rel_type"], "m.thread");
    assert_eq!(relation["event_id"], root.as_str());
    assert_eq!(relation["m.in_reply_to"]["event_id"], in_thread.as_str());
}

#[tokio::test]
async fn a_refused_sync_token_restarts_from_now() {
    let bob = Human::register("bob").await;
    let bot = bot("bot").await;
    let room = bob.create_room(&[&bot.registered.user_id], true).await;
    bot.human.join(&room).await;
    bot.human
        .call(
            reqwest::Method::PUT,
            &format!(
                "user/{}/account_data/org.pincer.sync",
                encode_segment(&bot.registered.user_id)
            ),
            Some(json!({ "since": "not-a-stream-token" })),
        )
        .await;
    bob.say(&room, "while the token was broken").await;
    let adapter = adapter(&bot, InvitePolicy::default());
    let pending = spawn_next(&adapter);
    let deadline = Instant::now() + WAIT;
    loop {
        let stored = bot
            .human
            .call(
                reqwest::Method::GET,
                &format!(
                    "user/{}/account_data/org.pincer.sync",
                    encode_segment(&bot.registered.user_id)
                ),
                None,
            )
            .await;
        if stored["since"] != "not-a-stream-token" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the broken token was not replaced"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bob.say(&room, "after the restart").await;
    let item = finish(pending).await;
    assert_eq!(item.message.text, "after the restart");
}
