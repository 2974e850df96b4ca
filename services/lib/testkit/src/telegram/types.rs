//! Public value types of the fake Telegram: options, injected and sent messages, failures.

use serde::{Deserialize, Serialize};

/// The one bot this fake serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeTelegramOptions {
    /// The valid token; requests with any other token get 401 Unauthorized.
    pub token: String,
    /// `getMe().username`, without the `@`.
    pub bot_username: String,
    /// `getMe().id`, also the `from.id` of messages the bot sends.
    pub bot_id: i64,
}

impl Default for FakeTelegramOptions {
    fn default() -> Self {
        Self {
            token: "123456789:TEST-fake-token".to_owned(),
            bot_username: "pincer_bot".to_owned(),
            bot_id: 123_456_789,
        }
    }
}

/// The kind of chat an injected message comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatType {
    /// A one-to-one chat; `chat_id` equals the sender's positive user id.
    #[default]
    Private,
    /// A basic group; `chat_id` is negative.
    Group,
    /// A supergroup; `chat_id` is negative (usually `-100…`), topics use `message_thread_id`.
    Supergroup,
}

impl ChatType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChatType::Private => "private",
            ChatType::Group => "group",
            ChatType::Supergroup => "supergroup",
        }
    }
}

/// A Telegram `MessageEntity` (offsets and lengths in UTF-16 code units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEntity {
    /// `mention`, `bot_command`, `bold`, `url`...
    #[serde(rename = "type")]
    pub kind: String,
    pub offset: usize,
    pub length: usize,
}

/// A message a user sends to the bot; becomes one `Update` with a `message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectMessage {
    pub chat_id: i64,
    #[serde(default)]
    pub chat_type: ChatType,
    pub from_id: i64,
    #[serde(default)]
    pub from_username: Option<String>,
    /// Group title; defaults to `Test group`.
    #[serde(default)]
    pub chat_title: Option<String>,
    /// The text; with an `attachment`, its caption (may then be empty).
    pub text: String,
    /// A file sent with the message (the text becomes its caption).
    #[serde(default)]
    pub attachment: Option<InjectAttachment>,
    /// Explicit entities; when absent, `mention` and `bot_command` entities are detected
    /// the way Telegram does for plain text.
    #[serde(default)]
    pub entities: Option<Vec<MessageEntity>>,
    /// Forum topic of a supergroup message.
    #[serde(default)]
    pub message_thread_id: Option<i64>,
}

impl InjectMessage {
    /// A private message from user `user_id` (who is also the chat).
    pub fn private(user_id: i64, text: impl Into<String>) -> Self {
        Self {
            chat_id: user_id,
            chat_type: ChatType::Private,
            from_id: user_id,
            from_username: None,
            chat_title: None,
            text: text.into(),
            attachment: None,
            entities: None,
            message_thread_id: None,
        }
    }

    /// A message from `from_id` in the (negative) group `chat_id`.
    pub fn group(chat_id: i64, from_id: i64, text: impl Into<String>) -> Self {
        Self {
            chat_type: ChatType::Group,
            chat_id,
            ..Self::private(from_id, text)
        }
    }

    /// A message from `from_id` in the (negative) supergroup `chat_id`.
    pub fn supergroup(chat_id: i64, from_id: i64, text: impl Into<String>) -> Self {
        Self {
            chat_type: ChatType::Supergroup,
            ..Self::group(chat_id, from_id, text)
        }
    }

    /// Attaches a file; the text becomes its caption.
    pub fn with_attachment(mut self, attachment: InjectAttachment) -> Self {
        self.attachment = Some(attachment);
        self
    }

    /// Sets the sender's username (without `@`).
    pub fn from_username(mut self, username: impl Into<String>) -> Self {
        self.from_username = Some(username.into());
        self
    }
}

/// The kind of file an injected message carries, named like its `Message` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    /// `photo`: sent as two sizes, a 90×90 thumbnail (`<file_id>-thumb`) and the photo.
    Photo,
    /// `document`.
    Document,
    /// `voice`.
    Voice,
    /// `audio`.
    Audio,
    /// `video`.
    Video,
    /// `video_note`.
    VideoNote,
    /// `sticker`.
    Sticker,
    /// `animation` (Telegram also fills `document` for it).
    Animation,
}

impl AttachmentKind {
    pub(crate) fn field(self) -> &'static str {
        match self {
            Self::Photo => "photo",
            Self::Document => "document",
            Self::Voice => "voice",
            Self::Audio => "audio",
            Self::Video => "video",
            Self::VideoNote => "video_note",
            Self::Sticker => "sticker",
            Self::Animation => "animation",
        }
    }
}

/// A file attached to an injected message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectAttachment {
    /// Which `Message` field carries it.
    pub kind: AttachmentKind,
    /// The `file_id` (a photo's largest size has exactly this id).
    pub file_id: String,
    /// `mime_type` (not sent for photos and stickers, as on Telegram).
    #[serde(default)]
    pub mime_type: Option<String>,
    /// `file_size` in bytes.
    #[serde(default)]
    pub file_size: Option<u64>,
}

impl InjectAttachment {
    /// A JPEG photo of `file_size` bytes.
    pub fn photo(file_id: impl Into<String>, file_size: u64) -> Self {
        Self {
            kind: AttachmentKind::Photo,
            file_id: file_id.into(),
            mime_type: None,
            file_size: Some(file_size),
        }
    }

    /// A file of another kind.
    pub fn file(
        kind: AttachmentKind,
        file_id: impl Into<String>,
        mime_type: impl Into<String>,
        file_size: u64,
    ) -> Self {
        Self {
            kind,
            file_id: file_id.into(),
            mime_type: Some(mime_type.into()),
            file_size: Some(file_size),
        }
    }
}

/// The webhook set with `setWebhook`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSetting {
    /// The URL given (always `https://`).
    pub url: String,
    /// The `secret_token` given, sent back in `X-Telegram-Bot-Api-Secret-Token`.
    pub secret_token: Option<String>,
    /// The `allowed_updates` given, if any.
    pub allowed_updates: Option<Vec<String>>,
}

/// One POST of an update to the webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookAttempt {
    /// The update POSTed.
    pub update_id: i64,
    /// The HTTP status answered; `None` when the request failed (connect, timeout).
    pub status: Option<u16>,
}

/// A message the bot sent with `sendMessage`, as the fake recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMessage {
    pub chat_id: i64,
    /// The text after `parse_mode` markup was applied (what the user would see).
    pub text: String,
    /// The message id this one replies to, if any.
    pub reply_to: Option<i64>,
    pub message_id: i64,
    /// `message_thread_id`, if given.
    pub thread: Option<i64>,
    pub parse_mode: Option<String>,
}

/// A `sendChatAction` call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatAction {
    pub chat_id: i64,
    pub action: String,
    pub thread: Option<i64>,
}

/// A failure to return from the next call of one method (see `FakeTelegram::fail_next`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FakeFailure {
    /// 429 `Too Many Requests: retry after N`, with `parameters.retry_after` and a
    /// `Retry-After` header, as the Bot API server sends them.
    TooManyRequests { retry_after_secs: u64 },
    /// 500 `Internal Server Error`.
    InternalServerError,
    /// 400 `Bad Request: can't parse entities: …`, what Telegram answers when it refuses a
    /// message's `parse_mode` markup.
    CantParseEntities,
}
