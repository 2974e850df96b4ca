//! Telegram `Update` → [`InboundMessage`] (pure).
//!
//! - `sender_id` is the sender's numeric user id, never the (changeable) username;
//! - `chat_kind` is DIRECT for `private` chats, GROUP for `group` / `supergroup`;
//! - `mentions_bot` is set by a `mention` entity naming the bot's username, a
//!   `text_mention` of the bot's id, or a reply to one of the bot's messages;
//! - `platform_message_id` is `<chat_id>:<message_id>` (message ids are per chat);
//! - `sent_at_ms` comes from `date` (seconds).
//!
//! Updates that are not messages, messages without text and channel posts are skipped
//! (the adapter still confirms them so they do not block the offset).

use pincer_proto::v1::{ChannelAccount, ChatKind, InboundMessage};

use super::wire::{Message, MessageEntity, Update};

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
    let Some(text) = &message.text else {
        return Normalized::Skip("message without text");
    };
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
    let (mentions, mentions_bot) = mentions(message, text, bot);
    Normalized::Message(Box::new(InboundMessage {
        account: Some(account.clone()),
        sender_id: from.id.to_string(),
        sender_display_name: display_name,
        chat_id: message.chat.id.to_string(),
        chat_kind: chat_kind as i32,
        mentions,
        mentions_bot,
        text: text.clone(),
        media: Vec::new(),
        platform_message_id: format!("{}:{}", message.chat.id, message.message_id),
        sent_at_ms: message.date.saturating_mul(1000),
        thread_id: message
            .message_thread_id
            .map(|t| t.to_string())
            .unwrap_or_default(),
        fencing_token: 0,
    }))
}

/// Ids of mentioned users (where Telegram tells us the id) and whether the bot is addressed.
fn mentions(message: &Message, text: &str, bot: &BotIdentity) -> (Vec<String>, bool) {
    let utf16: Vec<u16> = text.encode_utf16().collect();
    let mut ids: Vec<String> = Vec::new();
    let mut push = |id: i64| {
        let id = id.to_string();
        if !ids.contains(&id) {
            ids.push(id);
        }
    };
    let mut mentions_bot = false;
    for entity in &message.entities {
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
    fn non_text_and_non_message_updates_are_skipped() {
        assert!(matches!(
            run(json!({"update_id": 6, "edited_message": {}})),
            Normalized::Skip(_)
        ));
        assert!(matches!(
            run(
                json!({"update_id": 7, "message": {"message_id": 1, "date": 1,
                "chat": {"id": 1, "type": "private"}, "from": {"id": 1, "first_name": "A"},
                "sticker": {"file_id": "x"}}})
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
