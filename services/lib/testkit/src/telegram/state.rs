//! The pure state of one fake bot: the update queue with Telegram's offset rules, known
//! chats and messages, what the bot sent, the webhook and injected failures.
//!
//! No IO here: `api.rs` wraps it in a mutex and adds long polling on top.

use std::collections::{HashMap, VecDeque};

use serde_json::{Value, json};

use super::error::ApiError;
use super::params::{Params, UpdatesQuery};
use super::text::{self, MAX_MESSAGE_UTF16, ParseMode};
use super::types::{
    AttachmentKind, ChatAction, ChatType, FakeFailure, FakeTelegramOptions, InjectAttachment,
    InjectMessage, SentMessage, WebhookSetting,
};
use crate::TestkitError;

/// The documented `sendChatAction` actions.
const CHAT_ACTIONS: &[&str] = &[
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
];

/// The first `update_id`; Telegram's are large and only ever increase.
const FIRST_UPDATE_ID: i64 = 700_000_001;

/// Everything one fake bot knows.
#[derive(Debug)]
pub(crate) struct BotState {
    options: FakeTelegramOptions,
    next_update_id: i64,
    updates: VecDeque<(i64, Value)>,
    confirmed_offset: i64,
    allowed_updates: Vec<String>,
    chats: HashMap<i64, Value>,
    messages: HashMap<(i64, i64), Value>,
    next_message_id: HashMap<i64, i64>,
    pub(crate) sent: Vec<SentMessage>,
    pub(crate) actions: Vec<ChatAction>,
    pub(crate) webhook: Option<WebhookSetting>,
    failures: HashMap<String, VecDeque<FakeFailure>>,
}

impl BotState {
    pub(crate) fn new(options: FakeTelegramOptions) -> Self {
        Self {
            options,
            next_update_id: FIRST_UPDATE_ID,
            updates: VecDeque::new(),
            confirmed_offset: 0,
            allowed_updates: Vec::new(),
            chats: HashMap::new(),
            messages: HashMap::new(),
            next_message_id: HashMap::new(),
            sent: Vec::new(),
            actions: Vec::new(),
            webhook: None,
            failures: HashMap::new(),
        }
    }

    pub(crate) fn options(&self) -> &FakeTelegramOptions {
        &self.options
    }

    pub(crate) fn confirmed_offset(&self) -> i64 {
        self.confirmed_offset
    }

    pub(crate) fn pending_update_count(&self) -> usize {
        self.updates.len()
    }

    pub(crate) fn failures_left(&self, method: &str) -> usize {
        self.failures
            .get(&method.to_ascii_lowercase())
            .map_or(0, VecDeque::len)
    }

    pub(crate) fn fail_next(&mut self, method: &str, failure: FakeFailure) {
        self.failures
            .entry(method.to_ascii_lowercase())
            .or_default()
            .push_back(failure);
    }

    /// The injected failure for this call of `method`, if one is queued.
    pub(crate) fn take_failure(&mut self, method: &str) -> Option<ApiError> {
        let failure = self.failures.get_mut(method)?.pop_front()?;
        Some(match failure {
            FakeFailure::TooManyRequests { retry_after_secs } => {
                ApiError::too_many_requests(retry_after_secs)
            }
            FakeFailure::InternalServerError => ApiError::new(500, "Internal Server Error"),
            FakeFailure::CantParseEntities => ApiError::bad_request(
                "can't parse entities: Can't find end tag corresponding to start tag \"b\"",
            ),
        })
    }

    pub(crate) fn get_me(&self) -> Value {
        json!({
            "id": self.options.bot_id,
            "is_bot": true,
            "first_name": "Pincer (fake)",
            "username": self.options.bot_username,
            "can_join_groups": true,
            "can_read_all_group_messages": false,
            "supports_inline_queries": false,
            "can_connect_to_business": false,
            "has_main_web_app": false,
        })
    }

    /// Turns an injected message into a queued `Update`; returns its `update_id`, or
    /// `None` when `allowed_updates` excludes messages (Telegram drops those).
    pub(crate) fn inject(
        &mut self,
        message: InjectMessage,
        now: i64,
    ) -> Result<Option<i64>, TestkitError> {
        validate_injection(&message)?;
        let chat = match message.chat_type {
            ChatType::Private => json!({
                "id": message.chat_id,
                "type": "private",
                "first_name": first_name(&message),
            }),
            kind => json!({
                "id": message.chat_id,
                "type": kind.as_str(),
                "title": message.chat_title.as_deref().unwrap_or("Test group"),
            }),
        };
        let mut chat = chat;
        if let (ChatType::Private, Some(username)) = (message.chat_type, &message.from_username) {
            chat["username"] = json!(username);
        }
        self.chats.insert(message.chat_id, chat.clone());
        let mut from = json!({
            "id": message.from_id,
            "is_bot": false,
            "first_name": first_name(&message),
            "language_code": "en",
        });
        if let Some(username) = &message.from_username {
            from["username"] = json!(username);
        }
        let message_id = self.next_message_id(message.chat_id);
        let mut body = json!({
            "message_id": message_id,
            "from": from,
            "chat": chat,
            "date": now,
        });
        let entities = message
            .entities
            .clone()
            .unwrap_or_else(|| text::detect_entities(&message.text));
        let (text_field, entities_field) = match &message.attachment {
            None => ("text", "entities"),
            Some(attachment) => {
                body[attachment.kind.field()] = attachment_json(attachment);
                if attachment.kind == AttachmentKind::Animation {
                    body["document"] = attachment_json(&InjectAttachment {
                        kind: AttachmentKind::Document,
                        ..attachment.clone()
                    });
                }
                ("caption", "caption_entities")
            }
        };
        if !message.text.is_empty() {
            body[text_field] = json!(message.text);
        }
        if !entities.is_empty() {
            body[entities_field] = json!(entities);
        }
        if let Some(thread) = message.message_thread_id {
            body["message_thread_id"] = json!(thread);
            body["is_topic_message"] = json!(true);
        }
        self.messages
            .insert((message.chat_id, message_id), body.clone());
        if !self.allowed_updates.is_empty() && !self.allowed_updates.iter().any(|k| k == "message")
        {
            return Ok(None);
        }
        let update_id = self.next_update_id;
        self.next_update_id += 1;
        self.updates.push_back((
            update_id,
            json!({ "update_id": update_id, "message": body }),
        ));
        Ok(Some(update_id))
    }

    /// The oldest queued update, for webhook delivery.
    pub(crate) fn next_queued(&self) -> Option<(i64, Value)> {
        self.updates.front().cloned()
    }

    /// Removes an update the webhook answered 2xx for.
    pub(crate) fn confirm_delivered(&mut self, update_id: i64) {
        self.updates.retain(|(id, _)| *id != update_id);
        self.confirmed_offset = self.confirmed_offset.max(update_id + 1);
    }

    /// Applies `offset` (confirming or forgetting updates) and returns up to `limit`
    /// updates, oldest first, exactly like `getUpdates` does without waiting.
    pub(crate) fn take_updates(&mut self, query: &UpdatesQuery) -> Vec<Value> {
        if let Some(kinds) = &query.allowed_updates {
            self.allowed_updates.clone_from(kinds);
        }
        if query.offset > 0 {
            self.updates.retain(|(id, _)| *id >= query.offset);
            self.confirmed_offset = self.confirmed_offset.max(query.offset);
        } else if query.offset < 0 {
            let keep = usize::try_from(query.offset.unsigned_abs()).unwrap_or(usize::MAX);
            while self.updates.len() > keep {
                self.updates.pop_front();
            }
            let first_kept = self
                .updates
                .front()
                .map_or(self.next_update_id, |(id, _)| *id);
            self.confirmed_offset = self.confirmed_offset.max(first_kept);
        }
        self.updates
            .iter()
            .take(query.limit)
            .map(|(_, update)| update.clone())
            .collect()
    }

    pub(crate) fn send_message(&mut self, params: &Params, now: i64) -> Result<Value, ApiError> {
        let chat_id = self.known_chat(params)?;
        let parse_mode = match params.string("parse_mode").filter(|m| !m.is_empty()) {
            None => None,
            Some(mode) => Some((
                ParseMode::parse(&mode)
                    .ok_or_else(|| ApiError::bad_request("unsupported parse_mode"))?,
                mode,
            )),
        };
        let raw = params.string("text").unwrap_or_default();
        let visible = text::strip_markup(&raw, parse_mode.as_ref().map(|(mode, _)| *mode));
        let visible = visible.trim();
        if visible.is_empty() {
            return Err(ApiError::bad_request("message text is empty"));
        }
        if text::utf16_len(visible) > MAX_MESSAGE_UTF16 {
            return Err(ApiError::bad_request("message is too long"));
        }
        let reply = self.reply_target(params, chat_id)?;
        let thread = params.int("message_thread_id")?;
        let message_id = self.next_message_id(chat_id);
        let mut message = json!({
            "message_id": message_id,
            "from": {
                "id": self.options.bot_id,
                "is_bot": true,
                "first_name": "Pincer (fake)",
                "username": self.options.bot_username,
            },
            "chat": self.chats.get(&chat_id).cloned().unwrap_or(Value::Null),
            "date": now,
            "text": visible,
        });
        if let Some(thread) = thread {
            message["message_thread_id"] = json!(thread);
        }
        if let Some((_, original)) = &reply {
            message["reply_to_message"] = original.clone();
        }
        self.messages.insert((chat_id, message_id), message.clone());
        self.sent.push(SentMessage {
            chat_id,
            text: visible.to_owned(),
            reply_to: reply.map(|(id, _)| id),
            message_id,
            thread,
            parse_mode: parse_mode.map(|(_, raw)| raw),
        });
        Ok(message)
    }

    pub(crate) fn send_chat_action(&mut self, params: &Params) -> Result<Value, ApiError> {
        let chat_id = self.known_chat(params)?;
        let action = params.string("action").unwrap_or_default();
        if !CHAT_ACTIONS.contains(&action.as_str()) {
            return Err(ApiError::bad_request("wrong parameter action in request"));
        }
        let thread = params.int("message_thread_id")?;
        self.actions.push(ChatAction {
            chat_id,
            action,
            thread,
        });
        Ok(Value::Bool(true))
    }

    pub(crate) fn set_webhook(&mut self, params: &Params) -> Result<Value, ApiError> {
        let url = params.string("url").unwrap_or_default();
        if url.is_empty() {
            // "Use an empty string to remove webhook integration."
            return Ok(self.delete_webhook(params));
        }
        if !url.starts_with("https://") {
            return Err(ApiError::bad_request(
                "bad webhook: An HTTPS URL must be provided for webhook",
            ));
        }
        let secret_token = params.string("secret_token").filter(|s| !s.is_empty());
        if let Some(secret) = &secret_token {
            let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
            if secret.len() > 256 || !secret.chars().all(allowed) {
                return Err(ApiError::bad_request(
                    "secret token contains unallowed characters",
                ));
            }
        }
        if params.flag("drop_pending_updates") {
            self.updates.clear();
        }
        let allowed_updates = match params.json("allowed_updates")? {
            None => None,
            Some(Value::Array(kinds)) => Some(
                kinds
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            ),
            Some(_) => return Err(ApiError::bad_request("can't parse allowed_updates")),
        };
        if let Some(kinds) = &allowed_updates {
            self.allowed_updates.clone_from(kinds);
        }
        let unchanged = self.webhook.as_ref().is_some_and(|hook| hook.url == url);
        self.webhook = Some(WebhookSetting {
            url,
            secret_token,
            allowed_updates,
        });
        let description = if unchanged {
            "Webhook is already set"
        } else {
            "Webhook was set"
        };
        Ok(json!({ "ok": true, "result": true, "description": description }))
    }

    pub(crate) fn delete_webhook(&mut self, params: &Params) -> Value {
        if params.flag("drop_pending_updates") {
            self.updates.clear();
        }
        let description = match self.webhook.take() {
            Some(_) => "Webhook was deleted",
            None => "Webhook is already deleted",
        };
        json!({ "ok": true, "result": true, "description": description })
    }

    pub(crate) fn webhook_info(&self) -> Value {
        json!({
            "url": self.webhook.as_ref().map_or("", |hook| hook.url.as_str()),
            "has_custom_certificate": false,
            "pending_update_count": self.updates.len(),
        })
    }

    fn known_chat(&self, params: &Params) -> Result<i64, ApiError> {
        if !params.has("chat_id") {
            return Err(ApiError::bad_request("chat_id is empty"));
        }
        // A `@channelusername` does not parse as an integer; the fake knows no channels.
        let chat_id = params
            .int("chat_id")
            .ok()
            .flatten()
            .ok_or_else(|| ApiError::bad_request("chat not found"))?;
        if self.chats.contains_key(&chat_id) {
            Ok(chat_id)
        } else {
            Err(ApiError::bad_request("chat not found"))
        }
    }

    /// The message to reply to, from `reply_parameters` or the older `reply_to_message_id`.
    fn reply_target(
        &self,
        params: &Params,
        chat_id: i64,
    ) -> Result<Option<(i64, Value)>, ApiError> {
        let (message_id, reply_chat, allow_missing) = match params.json("reply_parameters")? {
            Some(reply) => (
                reply.get("message_id").and_then(Value::as_i64),
                reply
                    .get("chat_id")
                    .and_then(Value::as_i64)
                    .unwrap_or(chat_id),
                reply.get("allow_sending_without_reply") == Some(&Value::Bool(true)),
            ),
            None => (
                params.int("reply_to_message_id")?,
                chat_id,
                params.flag("allow_sending_without_reply"),
            ),
        };
        let Some(message_id) = message_id else {
            return Ok(None);
        };
        match self.messages.get(&(reply_chat, message_id)) {
            Some(original) => Ok(Some((message_id, original.clone()))),
            None if allow_missing => Ok(None),
            None => Err(ApiError::bad_request("message to be replied not found")),
        }
    }

    fn next_message_id(&mut self, chat_id: i64) -> i64 {
        let next = self.next_message_id.entry(chat_id).or_insert(1);
        let id = *next;
        *next += 1;
        id
    }
}

fn first_name(message: &InjectMessage) -> String {
    message
        .from_username
        .clone()
        .unwrap_or_else(|| format!("User{}", message.from_id))
}

/// An attachment as Telegram sends it in a `Message`.
fn attachment_json(attachment: &InjectAttachment) -> Value {
    let unique = format!("unique-{}", attachment.file_id);
    let mut file = json!({ "file_id": attachment.file_id, "file_unique_id": unique });
    if let Some(size) = attachment.file_size {
        file["file_size"] = json!(size);
    }
    match attachment.kind {
        AttachmentKind::Photo => {
            file["width"] = json!(1280);
            file["height"] = json!(960);
            let thumb = json!({
                "file_id": format!("{}-thumb", attachment.file_id),
                "file_unique_id": format!("{unique}-thumb"),
                "width": 90, "height": 90, "file_size": 1200,
            });
            json!([thumb, file])
        }
        AttachmentKind::Sticker => {
            file["width"] = json!(512);
            file["height"] = json!(512);
            file["type"] = json!("regular");
            file["is_animated"] = json!(false);
            file["is_video"] = json!(false);
            file
        }
        _ => {
            if let Some(mime) = &attachment.mime_type {
                file["mime_type"] = json!(mime);
            }
            file
        }
    }
}

fn validate_injection(message: &InjectMessage) -> Result<(), TestkitError> {
    if message.text.is_empty() && message.attachment.is_none() {
        return Err(TestkitError::InvalidInjection(
            "text must not be empty (unless there is an attachment)",
        ));
    }
    if text::utf16_len(&message.text) > MAX_MESSAGE_UTF16 {
        return Err(TestkitError::InvalidInjection(
            "text is longer than 4096 UTF-16 code units",
        ));
    }
    if message.from_id <= 0 {
        return Err(TestkitError::InvalidInjection(
            "from_id must be a positive user id",
        ));
    }
    match message.chat_type {
        ChatType::Private if message.chat_id != message.from_id => Err(
            TestkitError::InvalidInjection("a private chat's chat_id must equal from_id"),
        ),
        ChatType::Group | ChatType::Supergroup if message.chat_id >= 0 => Err(
            TestkitError::InvalidInjection("group and supergroup chat_ids are negative"),
        ),
        _ => Ok(()),
    }
}
