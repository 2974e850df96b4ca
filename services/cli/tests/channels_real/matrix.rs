//! Matrix through the whole stack against a real Synapse: a stranger DMs the bot, gets a
//! pairing code, is approved with `pincer pairing approve matrix`, and chats; in an allowed
//! room with `requireMention`, an unmentioned message is context only, a mention from a
//! member who is not allowed starts nothing, and the owner's mention is answered; a room
//! that is not listed is ignored.

use pincer_testkit::matrix_user::MatrixUser;
use pincer_testkit::synapse::Synapse;
use serde_json::{Value, json};

use crate::stack::{Stack, eventually};

/// A test-side Matrix user: the testkit's client, failing the test on any error.
struct User(MatrixUser);

impl User {
    async fn register(server: &Synapse, name: &str) -> Self {
        Self(
            MatrixUser::register(server, name, "password-of-a-human")
                .await
                .unwrap(),
        )
    }

    fn id(&self) -> &str {
        &self.0.user_id
    }

    async fn create_room(&self, invite: &[&str], is_direct: bool) -> String {
        self.0.create_room(invite, is_direct).await.unwrap()
    }

    async fn join(&self, room: &str) {
        self.0.join(room).await.unwrap();
    }

    async fn send(&self, room: &str, content: Value) {
        self.0.send(room, content).await.unwrap();
    }

    async fn say(&self, room: &str, text: &str) {
        self.0.say(room, text).await.unwrap();
    }

    async fn membership(&self, room: &str, user: &str) -> Option<String> {
        self.0.membership(room, user).await
    }

    /// Bodies of the messages `sender` sent in `room`, oldest first.
    async fn bodies_from(&self, room: &str, sender: &str) -> Vec<String> {
        self.0
            .messages(room)
            .await
            .unwrap()
            .iter()
            .filter(|e| e["sender"] == sender)
            .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
            .collect()
    }
}

async fn replies(stack: &Stack, user: &User, room: &str, bot: &str, n: usize) -> Vec<String> {
    eventually(&format!("{n} bot replies in {room}"), stack, || async {
        let got = user.bodies_from(room, bot).await;
        (got.len() >= n).then_some(got)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_stranger_pairs_and_chats_and_a_room_needs_a_mention() {
    let dir = tempfile::tempdir().unwrap();
    let server = Synapse::start(dir.path()).await.unwrap();
    let bot = server
        .register("pincerbot", "bot-password-7c1e", false)
        .await
        .unwrap();
    let owner = User::register(&server, "owner").await;
    let alice = User::register(&server, "alice").await;
    let mallory = User::register(&server, "mallory").await;
    // The owner's room with alice, mallory and the bot, listed under groups; and a room the
    // owner invites the bot to that is not listed.
    let room = owner
        .create_room(&[alice.id(), mallory.id(), &bot.user_id], false)
        .await;
    alice.join(&room).await;
    mallory.join(&room).await;
    // (Three members: a room of two is a DM.)
    let unlisted = owner.create_room(&[alice.id(), &bot.user_id], false).await;
    alice.join(&unlisted).await;

    let channels = format!(
        r#"{{ matrix: {{ homeserver: "{url}", userId: "{bot}", password: "${{E2E_MATRIX_PASSWORD}}",
              owners: ["{owner}"], groups: {{ "{room}": {{}} }} }} }}"#,
        url = server.url(),
        bot = bot.user_id,
        owner = owner.id(),
    );
    let stack = Stack::start(&channels, &[("E2E_MATRIX_PASSWORD", "bot-password-7c1e")]).await;

    // The owner invited the bot: it joins the room.
    eventually("the bot joins the owner's room", &stack, || async {
        (owner.membership(&room, &bot.user_id).await.as_deref() == Some("join")).then_some(())
    })
    .await;

    // An unlisted room is ignored, even when the owner mentions the bot there.
    eventually(
        "the bot joins the owner's unlisted room",
        &stack,
        || async {
            (owner.membership(&unlisted, &bot.user_id).await.as_deref() == Some("join"))
                .then_some(())
        },
    )
    .await;
    owner
        .send(
            &unlisted,
            json!({ "msgtype": "m.text", "body": "pincerbot: are you here?",
                    "m.mentions": { "user_ids": [bot.user_id] } }),
        )
        .await;

    // 1. A stranger's DM: a pairing code, no model call. (That a second message gets no
    //    second code is pinned down by the gateway's tests: here the gateway might process
    //    it only after the approval below.)
    let dm = alice.create_room(&[&bot.user_id], true).await;
    eventually("the bot joins alice's DM", &stack, || async {
        (alice.membership(&dm, &bot.user_id).await.as_deref() == Some("join")).then_some(())
    })
    .await;
    alice.say(&dm, "hello, who are you?").await;
    let first = replies(&stack, &alice, &dm, &bot.user_id, 1).await;
    assert!(first[0].contains("pairing code: "), "{first:?}");
    assert!(
        stack.llm.requests().is_empty(),
        "a stranger reached the model"
    );

    // 2. The owner approves; alice's next DM reaches the model and is answered.
    stack.approve_code_in("matrix", &first[0]).await;
    alice.say(&dm, "hi again").await;
    let got = replies(&stack, &alice, &dm, &bot.user_id, 2).await;
    assert_eq!(got[1], "You said: hi again", "{got:?}");
    assert_eq!(
        got.iter().filter(|b| b.contains("pairing code")).count(),
        1,
        "the code is sent once: {got:?}"
    );

    // 3. The room requires a mention: plain talk is context only, a mention from someone
    //    not allowed (mallory: neither owner, listed nor paired) starts nothing, the
    //    owner's mention is answered. One session per room keeps them in order.
    owner.say(&room, "just chatting among ourselves").await;
    mallory
        .send(
            &room,
            json!({ "msgtype": "m.text", "body": "pincerbot: obey me",
                    "m.mentions": { "user_ids": [bot.user_id] } }),
        )
        .await;
    owner
        .send(
            &room,
            json!({ "msgtype": "m.text", "body": "pincerbot: what do you think?",
                    "m.mentions": { "user_ids": [bot.user_id] } }),
        )
        .await;
    let in_room = replies(&stack, &owner, &room, &bot.user_id, 1).await;
    assert!(
        in_room[0].starts_with("You said: ") && in_room[0].contains("what do you think?"),
        "{in_room:?}"
    );
    assert_eq!(
        in_room.len(),
        1,
        "neither the unmentioned message nor mallory's mention got an answer: {in_room:?}"
    );
    assert!(
        owner.bodies_from(&unlisted, &bot.user_id).await.is_empty(),
        "the unlisted room got an answer"
    );

    stack.stop().await;
}
