//! The Telegram adapter: the Bot API over HTTPS (reqwest), long polling or a webhook, no SDK.
//!
//! | file | what |
//! |---|---|
//! | `adapter.rs` | [`TelegramAdapter`]: the [`crate::adapter::ChannelAdapter`] for one bot |
//! | `client.rs` | [`BotApi`]: `POST /bot<token>/<method>`, error classification, retries, token-free errors |
//! | `offsets.rs` | the getUpdates offset, advanced only over acknowledged updates (pure) |
//! | `normalize.rs` | `Update` → `InboundMessage` (pure) |
//! | `webhook.rs` | [`WebhookServer`]: webhook mode's HTTP endpoint, handing updates to the adapters |
//! | `wire.rs` | the Bot API JSON types used |

mod adapter;
mod client;
mod normalize;
mod offsets;
pub mod webhook;
mod wire;

pub use adapter::{CHANNEL, MESSAGE_LIMIT, TelegramAdapter, TelegramSettings, TelegramWebhook};
pub use client::{BotApi, RetryPolicy, TelegramError};
pub use normalize::{BotIdentity, Normalized, normalize};
pub use webhook::{WebhookError, WebhookInbox, WebhookServer};
