//! Matrix room events → [`InboundMessage`] (pure).
//!
//! - only `m.room.message` is forwarded: `m.text`, `m.emote` (as `* name text`) and media
//!   (`m.image`, `m.file`, `m.audio`, `m.video` → a [`MediaRef`] with the `mxc://` URL,
//!   the body as text); `m.notice` is skipped (it is what bots send), as are edits
//!   (`m.replace`), redacted events and our own events;
//! - `sender_id` is the full user id, `chat_id` the room id, `platform_message_id` the
//!   (globally unique) event id, `sent_at_ms` the `origin_server_ts`;
//! - `thread_id` is the thread root of an `m.thread` relation;
//! - `mentions` are `m.mentions.user_ids`; `mentions_bot` is set when those contain the
//!   bot, or the body names the bot's user id, display name or localpart as a word. A
//!   reply to one of the bot's events also counts, but whether the replied-to event is the
//!   bot's may need a lookup, so it is returned as [`Normalized::Message::in_reply_to`];
//! - the reply fallback (the leading `> <@user:server> …` quote) is stripped from replies.
//!
//! The chat kind (direct or group) depends on the room's member count, which the adapter
//! knows; it is passed in.

use pincer_proto::v1::{ChannelAccount, ChatKind, InboundMessage, MediaRef};
use serde_json::Value;

use super::wire::Event;

/// Who the bot is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIdentity {
    /// The full user id, `@bot:server`.
    pub user_id: String,
    /// The global display name, if set.
    pub display_name: Option<String>,
}

impl BotIdentity {
    /// The localpart of the user id (`bot` for `@bot:server`).
    pub fn localpart(&self) -> &str {
        localpart(&self.user_id)
    }
}

/// The localpart of a user id, or the whole string when it is not one.
pub fn localpart(user_id: &str) -> &str {
    let rest = user_id.strip_prefix('@').unwrap_or(user_id);
    rest.split_once(':').map_or(rest, |(local, _)| local)
}

/// What the adapter knows about the room and the sender.
#[derive(Debug, Clone, Copy)]
pub struct RoomContext<'a> {
    /// The room id.
    pub room_id: &'a str,
    /// Direct or group.
    pub chat_kind: ChatKind,
    /// The sender's display name in this room, if known.
    pub sender_name: Option<&'a str>,
}

/// The outcome of normalising one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Normalized {
    /// A message for the gateway.
    Message {
        /// The message (`mentions_bot` not yet counting replies to the bot).
        message: Box<InboundMessage>,
        /// The event this one replies to, if any.
        in_reply_to: Option<String>,
    },
    /// An encrypted event (not supported).
    Encrypted,
    /// Nothing to forward; the reason is for debug logs.
    Skip(&'static str),
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(value, |v, key| v.get(key))?.as_str()
}

/// Normalises one timeline event of a joined room, received for `account`.
pub fn normalize(
    event: &Event,
    room: RoomContext<'_>,
    bot: &BotIdentity,
    account: &ChannelAccount,
) -> Normalized {
    if event.sender == bot.user_id {
        return Normalized::Skip("our own event");
    }
    match event.kind.as_str() {
        "m.room.message" => {}
        "m.room.encrypted" => return Normalized::Encrypted,
        _ => return Normalized::Skip("not a message"),
    }
    if event.event_id.is_empty() || event.sender.is_empty() {
        return Normalized::Skip("event without an id or sender");
    }
    let content = &event.content;
    let Some(msgtype) = str_at(content, &["msgtype"]) else {
        return Normalized::Skip("no msgtype (redacted?)");
    };
    let Some(body) = str_at(content, &["body"]) else {
        return Normalized::Skip("no body");
    };
    let relation = content.get("m.relates_to");
    let rel_type = relation.and_then(|r| str_at(r, &["rel_type"]));
    if rel_type == Some("m.replace") {
        return Normalized::Skip("an edit");
    }
    let thread_id = match rel_type {
        Some("m.thread") => relation
            .and_then(|r| str_at(r, &["event_id"]))
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    };
    let is_falling_back = relation
        .and_then(|r| r.get("is_falling_back"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // In a thread, an `in_reply_to` marked as fallback is not a real reply.
    let in_reply_to = relation
        .and_then(|r| str_at(r, &["m.in_reply_to", "event_id"]))
        .filter(|_| !(rel_type == Some("m.thread") && is_falling_back))
        .map(str::to_owned);
    let body = if relation
        .and_then(|r| str_at(r, &["m.in_reply_to", "event_id"]))
        .is_some()
    {
        strip_reply_fallback(body)
    } else {
        body
    };
    let display_name = room
        .sender_name
        .filter(|n| !n.trim().is_empty())
        .map_or_else(|| localpart(&event.sender).to_owned(), str::to_owned);
    let mut media = Vec::new();
    let text = match msgtype {
        "m.text" => body.to_owned(),
        "m.emote" => format!("* {display_name} {body}"),
        "m.notice" => return Normalized::Skip("a notice (sent by bots)"),
        "m.image" | "m.file" | "m.audio" | "m.video" => {
            let Some(url) = str_at(content, &["url"]).or_else(|| str_at(content, &["file", "url"]))
            else {
                return Normalized::Skip("media without a URL");
            };
            let info = content.get("info");
            media.push(MediaRef {
                kind: msgtype.trim_start_matches("m.").to_owned(),
                platform_file_id: url.to_owned(),
                mime_type: info
                    .and_then(|i| str_at(i, &["mimetype"]))
                    .unwrap_or_default()
                    .to_owned(),
                size_bytes: info
                    .and_then(|i| i.get("size"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
            });
            body.to_owned()
        }
        _ => return Normalized::Skip("unsupported msgtype"),
    };
    let mentions: Vec<String> = content
        .get("m.mentions")
        .and_then(|m| m.get("user_ids"))
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mentions_bot = mentions.contains(&bot.user_id) || names_bot(body, bot);
    Normalized::Message {
        message: Box::new(InboundMessage {
            account: Some(account.clone()),
            sender_id: event.sender.clone(),
            sender_display_name: display_name,
            chat_id: room.room_id.to_owned(),
            chat_kind: room.chat_kind as i32,
            mentions,
            mentions_bot,
            text,
            media,
            platform_message_id: event.event_id.clone(),
            sent_at_ms: event.origin_server_ts,
            thread_id,
            fencing_token: 0,
        }),
        in_reply_to,
    }
}

/// True when `body` names the bot: its user id anywhere, or its display name or localpart
/// as a whole word (case-insensitive).
pub fn names_bot(body: &str, bot: &BotIdentity) -> bool {
    let lower = body.to_lowercase();
    if lower.contains(&bot.user_id.to_lowercase()) {
        return true;
    }
    let mut names = vec![bot.localpart()];
    if let Some(name) = bot.display_name.as_deref() {
        names.push(name);
    }
    names
        .into_iter()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .any(|name| contains_word(&lower, &name.to_lowercase()))
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// True when `needle` occurs in `haystack` not preceded or followed by a word character.
pub fn contains_word(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    haystack.match_indices(needle).any(|(start, _)| {
        let before = haystack[..start].chars().next_back();
        let after = haystack[start + needle.len()..].chars().next();
        !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char)
    })
}

/// The body without the reply fallback: the leading `> ` quote lines (starting with
/// `> <@…>` or `> * <@…>`) and the blank line after them.
pub fn strip_reply_fallback(body: &str) -> &str {
    if !(body.starts_with("> <") || body.starts_with("> * <")) {
        return body;
    }
    let mut rest = body;
    while rest.starts_with('>') {
        rest = rest.split_once('\n').map_or("", |(_, tail)| tail);
    }
    rest.strip_prefix('\n').unwrap_or(rest)
}

/// The inviter and the `is_direct` flag of our invite, from the invite's stripped state.
pub fn our_invite<'a>(invite_state: &'a [Event], bot_user_id: &str) -> Option<(&'a str, bool)> {
    invite_state
        .iter()
        .rev()
        .find(|e| {
            e.kind == "m.room.member"
                && e.state_key.as_deref() == Some(bot_user_id)
                && str_at(&e.content, &["membership"]) == Some("invite")
        })
        .map(|e| {
            let direct = e
                .content
                .get("is_direct")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            (e.sender.as_str(), direct)
        })
}

/// `(user id, display name)` of a joined member event, for the name cache.
pub fn member_name(event: &Event) -> Option<(&str, Option<&str>)> {
    if event.kind != "m.room.member" {
        return None;
    }
    let user = event.state_key.as_deref()?;
    let joined = str_at(&event.content, &["membership"]) == Some("join");
    joined.then(|| (user, str_at(&event.content, &["displayname"])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn bot() -> BotIdentity {
        BotIdentity {
            user_id: "@pincer:test.local".into(),
            display_name: Some("Pincer Bot".into()),
        }
    }

    fn account() -> ChannelAccount {
        ChannelAccount {
            channel: "matrix".into(),
            account_id: "default".into(),
        }
    }

    fn event(content: Value) -> Event {
        Event {
            kind: "m.room.message".into(),
            sender: "@alice:test.local".into(),
            event_id: "$e1".into(),
            state_key: None,
            origin_server_ts: 1_700_000_000_000,
            content,
        }
    }

    fn room() -> RoomContext<'static> {
        RoomContext {
            room_id: "!r:test.local",
            chat_kind: ChatKind::Group,
            sender_name: Some("Alice"),
        }
    }

    fn message(n: Normalized) -> (InboundMessage, Option<String>) {
        match n {
            Normalized::Message {
                message,
                in_reply_to,
            } => (*message, in_reply_to),
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn text_is_normalised() {
        let e = event(json!({"msgtype": "m.text", "body": "hello"}));
        let (m, reply) = message(normalize(&e, room(), &bot(), &account()));
        assert_eq!(m.sender_id, "@alice:test.local");
        assert_eq!(m.sender_display_name, "Alice");
        assert_eq!(m.chat_id, "!r:test.local");
        assert_eq!(m.platform_message_id, "$e1");
        assert_eq!(m.sent_at_ms, 1_700_000_000_000);
        assert_eq!(m.text, "hello");
        assert!(!m.mentions_bot);
        assert_eq!(reply, None);
        let no_name = RoomContext {
            sender_name: None,
            ..room()
        };
        let (m, _) = message(normalize(&e, no_name, &bot(), &account()));
        assert_eq!(m.sender_display_name, "alice");
    }

    #[test]
    fn skips_what_is_not_for_the_gateway() {
        let notice = event(json!({"msgtype": "m.notice", "body": "beep"}));
        assert!(matches!(
            normalize(&notice, room(), &bot(), &account()),
            Normalized::Skip(_)
        ));
        let mut own = event(json!({"msgtype": "m.text", "body": "hi"}));
        own.sender = bot().user_id;
        assert!(matches!(
            normalize(&own, room(), &bot(), &account()),
            Normalized::Skip(_)
        ));
        let redacted = event(json!({}));
        assert!(matches!(
            normalize(&redacted, room(), &bot(), &account()),
            Normalized::Skip(_)
        ));
        let edit = event(
            json!({"msgtype": "m.text", "body": "* x", "m.relates_to": {"rel_type": "m.replace", "event_id": "$o"}}),
        );
        assert!(matches!(
            normalize(&edit, room(), &bot(), &account()),
            Normalized::Skip(_)
        ));
        let mut encrypted = event(json!({"algorithm": "m.megolm.v1.aes-sha2"}));
        encrypted.kind = "m.room.encrypted".into();
        assert_eq!(
            normalize(&encrypted, room(), &bot(), &account()),
            Normalized::Encrypted
        );
    }

    #[test]
    fn emotes_media_threads_and_replies() {
        let emote = event(json!({"msgtype": "m.emote", "body": "waves"}));
        assert_eq!(
            message(normalize(&emote, room(), &bot(), &account()))
                .0
                .text,
            "* Alice waves"
        );
        let image = event(
            json!({"msgtype": "m.image", "body": "cat.png", "url": "mxc://test.local/abc", "info": {"mimetype": "image/png", "size": 1234}}),
        );
        let (m, _) = message(normalize(&image, room(), &bot(), &account()));
        assert_eq!(m.text, "cat.png");
        assert_eq!(
            m.media,
            vec![MediaRef {
                kind: "image".into(),
                platform_file_id: "mxc://test.local/abc".into(),
                mime_type: "image/png".into(),
                size_bytes: 1234
            }]
        );
        let threaded = event(
            json!({"msgtype": "m.text", "body": "in thread", "m.relates_to": {"rel_type": "m.thread", "event_id": "$root", "is_falling_back": true, "m.in_reply_to": {"event_id": "$last"}}}),
        );
        let (m, reply) = message(normalize(&threaded, room(), &bot(), &account()));
        assert_eq!(m.thread_id, "$root");
        assert_eq!(reply, None, "a thread fallback is not a reply");
        let reply = event(
            json!({"msgtype": "m.text", "body": "> <@pincer:test.local> earlier\n> more\n\nthanks", "m.relates_to": {"m.in_reply_to": {"event_id": "$bot"}}}),
        );
        let (m, to) = message(normalize(&reply, room(), &bot(), &account()));
        assert_eq!(m.text, "thanks");
        assert_eq!(to.as_deref(), Some("$bot"));
        assert!(!m.mentions_bot, "the quoted bot id is not a mention");
    }

    #[test]
    fn mentions_are_detected() {
        let explicit = event(
            json!({"msgtype": "m.text", "body": "hey", "m.mentions": {"user_ids": ["@pincer:test.local", "@bob:test.local"]}}),
        );
        let (m, _) = message(normalize(&explicit, room(), &bot(), &account()));
        assert!(m.mentions_bot);
        assert_eq!(m.mentions, vec!["@pincer:test.local", "@bob:test.local"]);
        for body in [
            "PINCER: help",
            "hi pincer bot!",
            "ask @pincer:test.local",
            "hello, pincer",
        ] {
            let e = event(json!({"msgtype": "m.text", "body": body}));
            assert!(
                message(normalize(&e, room(), &bot(), &account()))
                    .0
                    .mentions_bot,
                "{body}"
            );
        }
        for body in [
            "pincers are claws",
            "nothing here",
            "@pincer:test.localhost",
        ] {
            let e = event(json!({"msgtype": "m.text", "body": body}));
            let expect = body.contains("@pincer:test.local");
            assert_eq!(
                message(normalize(&e, room(), &bot(), &account()))
                    .0
                    .mentions_bot,
                expect,
                "{body}"
            );
        }
    }

    #[test]
    fn invites_and_members_are_read() {
        let invite = Event {
            kind: "m.room.member".into(),
            sender: "@alice:test.local".into(),
            state_key: Some("@pincer:test.local".into()),
            content: json!({"membership": "invite", "is_direct": true}),
            ..Event::default()
        };
        assert_eq!(
            our_invite(std::slice::from_ref(&invite), "@pincer:test.local"),
            Some(("@alice:test.local", true))
        );
        assert_eq!(our_invite(&[invite], "@other:test.local"), None);
        let member = Event {
            kind: "m.room.member".into(),
            state_key: Some("@alice:test.local".into()),
            content: json!({"membership": "join", "displayname": "Alice"}),
            ..Event::default()
        };
        assert_eq!(
            member_name(&member),
            Some(("@alice:test.local", Some("Alice")))
        );
    }

    #[test]
    fn fallbacks_are_stripped() {
        assert_eq!(strip_reply_fallback("> <@a:b> x\n\nreply"), "reply");
        assert_eq!(
            strip_reply_fallback("> * <@a:b> waves\n\nok\n> not stripped"),
            "ok\n> not stripped"
        );
        assert_eq!(
            strip_reply_fallback("> a quote\n\ntext"),
            "> a quote\n\ntext"
        );
        assert_eq!(strip_reply_fallback("> <@a:b> only"), "");
    }

    proptest! {
        #[test]
        fn arbitrary_events_never_panic(body in any::<String>(), kind in "m\\.(text|emote|notice|image|file|x)", name in any::<String>(), user in any::<String>()) {
            let e = event(json!({"msgtype": kind, "body": body, "url": "mxc://a/b", "m.relates_to": {"m.in_reply_to": {"event_id": "$x"}}}));
            let ctx = RoomContext { sender_name: Some(&name), ..room() };
            let b = BotIdentity { user_id: user, display_name: Some(name.clone()) };
            let _ = normalize(&e, ctx, &b, &account());
            let stripped = strip_reply_fallback(&body);
            prop_assert!(body.ends_with(stripped));
            let _ = contains_word(&body, &name);
        }

        #[test]
        fn plain_bodies_round_trip(body in "[^>][^\\n]{0,40}") {
            let e = event(json!({"msgtype": "m.text", "body": body}));
            let (m, _) = message(normalize(&e, room(), &bot(), &account()));
            prop_assert_eq!(m.text, body);
        }
    }
}
