//! Telegram `Update` → [`InboundMessage`] (pure).
//!
//! - `sender_id` is the sender's numeric user id, never the (changeable) username;
//! - `chat_kind` is DIRECT for `private` chats, GROUP for `group` / `supergroup`;
//! - `mentions_bot` is set by a `mention` entity naming the bot's username, a
//!   `text_mention` of the bot's id, or a reply to one of the bot's messages;
//! - `platform_message_id` is `<chat_id>:<message_id>` (message ids are per chat);
//! - `sent_at_ms` comes from `date` (seconds);
//! - attachments are passed on by reference ([`MediaRef`] with Telegram's `file_id`, never
//!   downloaded here): `text` is then the caption (or empty) and mentions are read from
//!   `caption_entities`. A photo is the largest of its sizes; an animation (GIF) counts as
//!   a video.
//!
//! Updates that are not messages, messages with neither text, caption nor a supported
//! attachment, and channel posts are skipped (the adapter still confirms them so they do
//! not block the offset).

use pincer_proto::v1::{ChannelAccount, ChatKind, InboundMessage, MediaRef};

use super::wire::{FileRef, Message, MessageEntity, Update};

/// Who the bot is, from `getMe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIdentity {
    /// The bot's user id.
    pub id: i64,
    /// The bot's username without `@`.
    pub username: String,
}

/// The outcome of normalising one update.
#[derive(Debug, Clone, PartialEq)]
pub enum Normalized {
    /// A message for the gateway.
    Message(Box<InboundMessage>),
    /// Nothing to forward; the reason is for debug logs.
    Skip(&'static str),
}

/// Normalises one update received for `account`.
pub fn normalize(update: &Update, bot: &BotIdentity, account: &ChannelAccount) -> Normalized {
    let Some(message) = &update.message else {
        return Normalized::Skip("not a message update");
    };
    let (text, entities) = match (&message.text, &message.caption) {
        (Some(text), _) => (text.as_str(), message.entities.as_slice()),
        (None, Some(caption)) => (caption.as_str(), message.caption_entities.as_slice()),
        (None, None) => ("", &[][..]),
    };
    let media = media(message);
    if text.is_empty() && media.is_empty() {
        return Normalized::Skip("message without text or a supported attachment");
    }
    let chat_kind = match message.chat.kind.as_str() {
        "private" => ChatKind::Direct,
        "group" | "supergroup" => ChatKind::Group,
        _ => return Normalized::Skip("not a private or group chat"),
    };
    let Some(from) = &message.from else {
        return Normalized::Skip("message without a sender");
    };
    let display_name = match &from.last_name {
        Some(last) if !last.is_empty() => format!("{} {last}", from.first_name),
        _ => from.first_name.clone(),
    };
    let (mentions, mentions_bot) = mentions(message, text, entities, bot);
    Normalized::Message(Box::new(InboundMessage {
        account: Some(account.clone()),
        sender_id: from.id.to_string(),
        sender_display_name: display_name,
        chat_id: message.chat.id.to_string(),
        chat_kind: chat_kind as i32,
        mentions,
        mentions_bot,
        text: text.to_owned(),
        media,
        platform_message_id: format!("{}:{}", message.chat.id, message.message_id),
        sent_at_ms: message.date.saturating_mul(1000),
        thread_id: message
            .message_thread_id
            .map(|t| t.to_string())
            .unwrap_or_default(),
        fencing_token: 0,
    }))
}

/// The message's attachment as a reference (a message carries at most one).
fn media(message: &Message) -> Vec<MediaRef> {
    let file = |kind: &str, file: &FileRef| MediaRef {
        kind: kind.to_owned(),
        platform_file_id: file.file_id.clone(),
        mime_type: file.mime_type.clone().unwrap_or_default(),
        size_bytes: file.file_size.unwrap_or(0),
    };
    let largest_photo = message.photo.iter().max_by_key(|size| {
        (
            u64::from(size.width) * u64::from(size.height),
            size.file_size.unwrap_or(0),
        )
    });
    let found = if let Some(photo) = largest_photo {
        // Telegram re-encodes photos as JPEG and does not say so.
        MediaRef {
            kind: "image".to_owned(),
            platform_file_id: photo.file_id.clone(),
            mime_type: "image/jpeg".to_owned(),
            size_bytes: photo.file_size.unwrap_or(0),
        }
    } else if let Some(f) = &message.animation {
        // Checked before `document`, which Telegram also fills for animations.
        file("video", f)
    } else if let Some(f) = &message.video {
        file("video", f)
    } else if let Some(f) = &message.video_note {
        let mut media = file("video", f);
        if media.mime_type.is_empty() {
            "video/mp4".clone_into(&mut media.mime_type);
        }
        media
    } else if let Some(f) = &message.voice {
        file("voice", f)
    } else if let Some(f) = &message.audio {
        file("audio", f)
    } else if let Some(f) = &message.sticker {
        file("sticker", f)
    } else if let Some(f) = &message.document {
        file("file", f)
    } else {
        return Vec::new();
    };
    vec![found]
}

/// Ids of mentioned users (where Telegram tells us the id) and whether the bot is addressed.
fn mentions(
    message: &Message,
    text: &str,
    entities: &[MessageEntity],
    bot: &BotIdentity,
) -> (Vec<String>, bool) {
    let utf16: Vec<u16> = text.encode_utf16().collect();
    let mut ids: Vec<String> = Vec::new();
    let mut push = |id: i64| {
        let id = id.to_string();
        if !ids.contains(&id) {
            ids.push(id);
        }
    };
    let mut mentions_bot = false;
    for entity in entities {
        match entity.kind.as_str() {
            "mention" => {
                let named = entity_text(&utf16, entity);
                let is_bot = named
                    .strip_prefix('@')
                    .is_some_and(|name| name.eq_ignore_ascii_case(&bot.username));
                if is_bot {
                    mentions_bot = true;
                    push(bot.id);
                }
            }
            // `/status@PincerBot`: a command addressed to this bot by name is a mention (a
            // bare `/status` in a group is not: it may be meant for another bot).
            "bot_command" => {
                let command = entity_text(&utf16, entity);
                let is_bot = command
                    .split_once('@')
                    .is_some_and(|(_, name)| name.eq_ignore_ascii_case(&bot.username));
                if is_bot {
                    mentions_bot = true;
                    push(bot.id);
                }
            }
            "text_mention" => {
                if let Some(user) = &entity.user {
                    mentions_bot |= user.id == bot.id;
                    push(user.id);
                }
            }
            _ => {}
        }
    }
    let replies_to_bot = message
        .reply_to_message
        .as_ref()
        .and_then(|m| m.from.as_ref())
        .is_some_and(|u| u.id == bot.id);
    (ids, mentions_bot || replies_to_bot)
}

/// The text an entity covers (offsets are UTF-16 code units); empty when out of range.
fn entity_text(utf16: &[u16], entity: &MessageEntity) -> String {
    let end = entity.offset.saturating_add(entity.length);
    utf16
        .get(entity.offset..end)
        .map(String::from_utf16_lossy)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bot() -> BotIdentity {
        BotIdentity {
            id: 999,
            username: "PincerBot".into(),
        }
    }

    fn account() -> ChannelAccount {
        ChannelAccount {
            channel: "telegram".into(),
            account_id: "default".into(),
        }
    }

    fn run(update: serde_json::Value) -> Normalized {
        let update: Update = serde_json::from_value(update).unwrap();
        normalize(&update, &bot(), &account())
    }

    fn message(update: serde_json::Value) -> InboundMessage {
        match run(update) {
            Normalized::Message(m) => *m,
            Normalized::Skip(why) => panic!("skipped: {why}"),
        }
    }

    #[test]
    fn direct_message_is_normalised_by_numeric_ids() {
        let m = message(json!({"update_id": 1, "message": {
            "message_id": 7, "date": 1_700_000_000,
            "chat": {"id": 42, "type": "private"},
            "from": {"id": 42, "is_bot": false, "first_name": "Ada", "last_name": "L", "username": "ada"},
            "text": "hello"}}));
        assert_eq!(m.sender_id, "42");
        assert_eq!(m.sender_display_name, "Ada L");
        assert_eq!(m.chat_kind, ChatKind::Direct as i32);
        assert_eq!(m.platform_message_id, "42:7");
        assert_eq!(m.sent_at_ms, 1_700_000_000_000);
        assert!(!m.mentions_bot);
        assert_eq!(m.account, Some(account()));
    }

    #[test]
    fn group_mentions_are_found_by_utf16_offsets() {
        // "😀 @pincerbot hi": the emoji is 2 UTF-16 units, so the mention starts at 3.
        let m = message(json!({"update_id": 2, "message": {
            "message_id": 8, "date": 1, "chat": {"id": -100, "type": "supergroup"},
            "from": {"id": 5, "is_bot": false, "first_name": "B"},
            "text": "😀 @pincerbot hi @other",
            "entities": [{"type": "mention", "offset": 3, "length": 10},
                         {"type": "mention", "offset": 17, "length": 6}]}}));
        assert_eq!(m.chat_kind, ChatKind::Group as i32);
        assert!(m.mentions_bot);
        assert_eq!(m.mentions, vec!["999".to_owned()]);
    }

    #[test]
    fn text_mention_and_reply_to_bot_count() {
        let m = message(json!({"update_id": 3, "message": {
            "message_id": 9, "date": 1, "chat": {"id": -1, "type": "group"},
            "from": {"id": 5, "first_name": "B"}, "text": "Pincer look",
            "entities": [{"type": "text_mention", "offset": 0, "length": 6,
                          "user": {"id": 999, "first_name": "Pincer"}}]}}));
        assert!(m.mentions_bot);
        let m = message(json!({"update_id": 4, "message": {
            "message_id": 10, "date": 1, "chat": {"id": -1, "type": "group"},
            "from": {"id": 5, "first_name": "B"}, "text": "yes",
            "reply_to_message": {"message_id": 3, "date": 1, "chat": {"id": -1, "type": "group"},
                                 "from": {"id": 999, "first_name": "Pincer"}, "text": "?"}}}));
        assert!(m.mentions_bot);
        let m = message(json!({"update_id": 5, "message": {
            "message_id": 11, "date": 1, "chat": {"id": -1, "type": "group"},
            "from": {"id": 5, "first_name": "B"}, "text": "@PincerBotX and @Pincer",
            "entities": [{"type": "mention", "offset": 0, "length": 11},
                         {"type": "mention", "offset": 100, "length": 4}]}}));
        assert!(!m.mentions_bot);
    }

    #[test]
    fn a_command_addressed_to_the_bot_by_name_is_a_mention() {
        let command = |text: &str, length: usize| {
            message(json!({"update_id": 6, "message": {
                "message_id": 12, "date": 1, "chat": {"id": -1, "type": "group"},
                "from": {"id": 5, "first_name": "B"}, "text": text,
                "entities": [{"type": "bot_command", "offset": 0, "length": length}]}}))
        };
        assert!(command("/status@pincerbot", 17).mentions_bot);
        assert!(!command("/status@otherbot now", 15).mentions_bot);
        assert!(
            !command("/status", 7).mentions_bot,
            "may be for another bot"
        );
    }

    fn media_message(extra: serde_json::Value) -> serde_json::Value {
        let mut message = json!({"message_id": 12, "date": 1,
            "chat": {"id": -1, "type": "group"}, "from": {"id": 5, "first_name": "B"}});
        if let (Some(m), Some(e)) = (message.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        json!({"update_id": 9, "message": message})
    }

    #[test]
    fn a_photo_with_a_caption_takes_the_largest_size_and_caption_mentions() {
        let m = message(media_message(json!({
            "photo": [
                {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 60, "file_size": 1000},
                {"file_id": "large", "file_unique_id": "l", "width": 1280, "height": 853, "file_size": 90000},
                {"file_id": "medium", "file_unique_id": "m", "width": 320, "height": 213, "file_size": 9000}
            ],
            "caption": "look @PincerBot",
            "caption_entities": [{"type": "mention", "offset": 5, "length": 10}]
        })));
        assert_eq!(m.text, "look @PincerBot");
        assert!(m.mentions_bot, "mentions are read from caption_entities");
        assert_eq!(
            m.media,
            vec![MediaRef {
                kind: "image".into(),
                platform_file_id: "large".into(),
                mime_type: "image/jpeg".into(),
                size_bytes: 90000,
            }]
        );
    }

    #[test]
    fn each_attachment_kind_maps_to_a_media_kind() {
        let cases = [
            ("document", "file"),
            ("voice", "voice"),
            ("audio", "audio"),
            ("video", "video"),
            ("video_note", "video"),
            ("sticker", "sticker"),
        ];
        for (field, kind) in cases {
            let mut extra = serde_json::Map::new();
            extra.insert(
                field.to_owned(),
                json!({"file_id": format!("id-{field}"), "mime_type": "x/y", "file_size": 7}),
            );
            let m = message(media_message(serde_json::Value::Object(extra)));
            assert_eq!(m.text, "", "{field}: no caption, empty text");
            assert_eq!(m.media.len(), 1, "{field}");
            assert_eq!(m.media[0].kind, kind, "{field}");
            assert_eq!(m.media[0].platform_file_id, format!("id-{field}"));
            assert_eq!(m.media[0].mime_type, "x/y");
            assert_eq!(m.media[0].size_bytes, 7);
        }
        // An animation also carries `document`; it is one video, not a file.
        let m = message(media_message(json!({
            "animation": {"file_id": "gif", "mime_type": "video/mp4"},
            "document": {"file_id": "gif", "mime_type": "video/mp4"}
        })));
        assert_eq!(m.media.len(), 1);
        assert_eq!(m.media[0].kind, "video");
        assert_eq!(m.media[0].size_bytes, 0, "unknown size");
        // A sticker has no MIME type.
        let m = message(media_message(
            json!({"sticker": {"file_id": "st", "width": 512}}),
        ));
        assert_eq!(m.media[0].mime_type, "");
    }

    #[test]
    fn text_wins_over_caption_and_empty_messages_are_skipped() {
        let m = message(media_message(json!({"text": "t", "caption": "c"})));
        assert_eq!(m.text, "t");
        assert!(m.media.is_empty());
        assert!(matches!(
            run(media_message(
                json!({"location": {"latitude": 1.0, "longitude": 2.0}})
            )),
            Normalized::Skip(_)
        ));
        assert!(matches!(
            run(media_message(json!({"caption": ""}))),
            Normalized::Skip(_)
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_entities_and_media_never_panic(
            text in ".{0,40}",
            offset in 0usize..80,
            length in 0usize..80,
            sizes in proptest::collection::vec((0u32..5000, 0u32..5000, proptest::option::of(0u64..u64::MAX)), 0..5),
            with_text in proptest::bool::ANY,
        ) {
            let photo: Vec<serde_json::Value> = sizes
                .iter()
                .enumerate()
                .map(|(i, (w, h, size))| json!({"file_id": format!("p{i}"), "width": w, "height": h, "file_size": size}))
                .collect();
            let field = if with_text { "text" } else { "caption" };
            let entities = if with_text { "entities" } else { "caption_entities" };
            let mut extra = serde_json::Map::new();
            extra.insert(field.to_owned(), json!(text));
            extra.insert(entities.to_owned(), json!([{"type": "mention", "offset": offset, "length": length}]));
            extra.insert("photo".to_owned(), json!(photo));
            let out = run(media_message(serde_json::Value::Object(extra)));
            match out {
                Normalized::Message(m) => {
                    proptest::prop_assert_eq!(&m.text, &text);
                    proptest::prop_assert_eq!(m.media.len(), usize::from(!sizes.is_empty()));
                }
                Normalized::Skip(_) => {
                    proptest::prop_assert!(text.is_empty() && sizes.is_empty());
                }
            }
        }
    }

    #[test]
    fn non_text_and_non_message_updates_are_skipped() {
        assert!(matches!(
            run(json!({"update_id": 6, "edited_message": {}})),
            Normalized::Skip(_)
        ));
        assert!(matches!(
            run(
                json!({"update_id": 7, "message": {"message_id": 1, "date": 1,
                "chat": {"id": 1, "type": "private"}, "from": {"id": 1, "first_name": "A"},
                "contact": {"phone_number": "1", "first_name": "X"}}})
            ),
            Normalized::Skip(_)
        ));
        assert!(matches!(
            run(
                json!({"update_id": 8, "message": {"message_id": 1, "date": 1,
                "chat": {"id": -5, "type": "channel"}, "text": "post"}})
            ),
            Normalized::Skip(_)
        ));
    }
}
