//! The subset of the Telegram Bot API's JSON types the adapter uses
//! (<https://core.telegram.org/bots/api>). Unknown fields are ignored: Telegram adds fields
//! often and the adapter must keep working.

use serde::{Deserialize, Serialize};

/// Every Bot API answer: `{ok, result}` or `{ok: false, error_code, description, parameters}`.
#[derive(Debug, Deserialize)]
pub struct ApiResponse<T> {
    /// Whether the call succeeded.
    pub ok: bool,
    /// The result, when `ok`.
    pub result: Option<T>,
    /// Telegram's error code (mirrors the HTTP status).
    pub error_code: Option<u16>,
    /// Telegram's explanation, when not `ok`.
    pub description: Option<String>,
    /// Extra information (e.g. `retry_after` on 429).
    pub parameters: Option<ResponseParameters>,
}

/// `ResponseParameters`.
#[derive(Debug, Deserialize)]
pub struct ResponseParameters {
    /// Seconds to wait before repeating the request (429).
    pub retry_after: Option<u64>,
}

/// `User`.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    /// Stable numeric id.
    pub id: i64,
    /// First name.
    #[serde(default)]
    pub first_name: String,
    /// Last name.
    pub last_name: Option<String>,
    /// `@username` without the `@` (can change; never used as an identity).
    pub username: Option<String>,
}

/// `Chat`.
#[derive(Debug, Clone, Deserialize)]
pub struct Chat {
    /// Stable numeric id.
    pub id: i64,
    /// `private`, `group`, `supergroup` or `channel`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `MessageEntity`. Offsets and lengths are in UTF-16 code units.
#[derive(Debug, Clone, Deserialize)]
pub struct MessageEntity {
    /// `mention`, `text_mention`, `bot_command`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Start, in UTF-16 code units.
    pub offset: usize,
    /// Length, in UTF-16 code units.
    pub length: usize,
    /// The mentioned user (`text_mention` only).
    pub user: Option<User>,
}

/// `Message`.
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    /// Unique within the chat.
    pub message_id: i64,
    /// Unix seconds.
    pub date: i64,
    /// The chat.
    pub chat: Chat,
    /// The sender (absent for channel posts).
    pub from: Option<User>,
    /// The text, for text messages.
    pub text: Option<String>,
    /// Entities in `text`.
    #[serde(default)]
    pub entities: Vec<MessageEntity>,
    /// The caption of a media message.
    pub caption: Option<String>,
    /// Entities in `caption`.
    #[serde(default)]
    pub caption_entities: Vec<MessageEntity>,
    /// A photo, in several sizes.
    #[serde(default)]
    pub photo: Vec<PhotoSize>,
    /// A general file.
    pub document: Option<FileRef>,
    /// A voice note.
    pub voice: Option<FileRef>,
    /// An audio file (music).
    pub audio: Option<FileRef>,
    /// A video.
    pub video: Option<FileRef>,
    /// A round video message.
    pub video_note: Option<FileRef>,
    /// A sticker.
    pub sticker: Option<FileRef>,
    /// A GIF or silent video (Telegram also fills `document` for these).
    pub animation: Option<FileRef>,
    /// The message this one replies to.
    pub reply_to_message: Option<Box<Message>>,
    /// The forum topic, if any.
    pub message_thread_id: Option<i64>,
}

/// `PhotoSize`: one size of a photo.
#[derive(Debug, Clone, Deserialize)]
pub struct PhotoSize {
    /// The id to download the file with.
    pub file_id: String,
    /// Width in pixels.
    #[serde(default)]
    pub width: u32,
    /// Height in pixels.
    #[serde(default)]
    pub height: u32,
    /// Size in bytes, when known.
    pub file_size: Option<u64>,
}

/// The fields `Document`, `Voice`, `Audio`, `Video`, `VideoNote`, `Sticker` and `Animation`
/// share (the adapter passes files on by reference, never downloads them).
#[derive(Debug, Clone, Deserialize)]
pub struct FileRef {
    /// The id to download the file with.
    pub file_id: String,
    /// MIME type as the sender declared it (stickers have none).
    pub mime_type: Option<String>,
    /// Size in bytes, when known.
    pub file_size: Option<u64>,
}

/// `Update`. Only `message` is requested; anything else is skipped.
#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    /// Monotonic id; `offset = update_id + 1` confirms it.
    pub update_id: i64,
    /// A new message.
    pub message: Option<Message>,
}

/// `getUpdates` parameters.
#[derive(Debug, Serialize)]
pub struct GetUpdates {
    /// First update to return; confirms all earlier ones.
    pub offset: i64,
    /// Most updates to return.
    pub limit: u32,
    /// Long-poll seconds.
    pub timeout: u64,
    /// Update kinds to receive.
    pub allowed_updates: &'static [&'static str],
}

/// `setWebhook` parameters.
#[derive(Debug, Serialize)]
pub struct SetWebhook<'a> {
    /// The public HTTPS URL Telegram POSTs updates to.
    pub url: &'a str,
    /// Sent back in `X-Telegram-Bot-Api-Secret-Token` with every update.
    pub secret_token: &'a str,
    /// Update kinds to receive.
    pub allowed_updates: &'static [&'static str],
}

/// A chat as the Bot API accepts it: a numeric id or `@channelusername`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ChatRef {
    /// Numeric chat id.
    Id(i64),
    /// `@username` of a public channel or supergroup.
    Name(String),
}

/// `ReplyParameters`.
#[derive(Debug, Serialize)]
pub struct ReplyParameters {
    /// The message to reply to.
    pub message_id: i64,
    /// Send anyway if that message was deleted.
    pub allow_sending_without_reply: bool,
}

/// `sendMessage` parameters.
#[derive(Debug, Serialize)]
pub struct SendMessage<'a> {
    /// Target chat.
    pub chat_id: &'a ChatRef,
    /// Forum topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_thread_id: Option<i64>,
    /// Text (at most 4096 UTF-16 units after entity parsing).
    pub text: &'a str,
    /// `HTML` when `text` carries Telegram's HTML markup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_mode: Option<&'static str>,
    /// Reply target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_parameters: Option<ReplyParameters>,
}

/// `sendChatAction` parameters.
#[derive(Debug, Serialize)]
pub struct SendChatAction<'a> {
    /// Target chat.
    pub chat_id: &'a ChatRef,
    /// Forum topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_thread_id: Option<i64>,
    /// `typing`.
    pub action: &'static str,
}

/// The part of a sent `Message` the adapter keeps.
#[derive(Debug, Deserialize)]
pub struct SentMessage {
    /// The new message's id.
    pub message_id: i64,
    /// Its chat.
    pub chat: Chat,
}
