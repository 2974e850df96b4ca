//! A fake Telegram Bot API server (`/bot<TOKEN>/<method>`) with a test-side control API.
//!
//! | File | What |
//! |---|---|
//! | `fake.rs` | [`FakeTelegram`]: start/stop, injection, inspection, waiting |
//! | `types.rs` | public value types: options, [`InjectMessage`], [`SentMessage`], [`FakeFailure`]... |
//! | `state.rs` | the pure bot state: update queue and offsets, chats, sent messages, webhook |
//! | `text.rs` | UTF-16 lengths, automatic entities, `parse_mode` markup stripping (pure) |
//! | `params.rs` | method parameters from the query string, JSON or form bodies; `getUpdates` clamping |
//! | `error.rs` | `ApiError`, the `{"ok":false,...}` error shape |
//! | `api.rs` | the Bot API routes, including `getUpdates` long polling and its 409s |
//! | `control.rs` | `/_fake/*`: inject, inspect and fail from another process |
//! | `webhook.rs` | POSTing queued updates to the webhook, retried until answered 2xx |
//!
//! Supported methods: `getMe`, `getUpdates`, `sendMessage`, `sendChatAction`, `setWebhook`,
//! `deleteWebhook`, `getWebhookInfo`. A set webhook blocks `getUpdates` with 409, as on
//! Telegram; updates are POSTed to it only when the test gave a plain-HTTP stand-in for
//! the HTTPS URL ([`FakeTelegram::deliver_webhooks_via`]).

mod api;
mod control;
mod error;
mod fake;
mod params;
mod state;
mod text;
mod types;
mod webhook;

pub use fake::FakeTelegram;
pub use types::{
    AttachmentKind, ChatAction, ChatType, FakeFailure, FakeTelegramOptions, InjectAttachment,
    InjectMessage, MessageEntity, SentMessage, WebhookAttempt, WebhookSetting,
};
