//! The Telegram adapter: the Bot API over HTTPS (reqwest), long polling, no SDK.
//!
//! | file | what |
//! |---|---|
//! | `adapter.rs` | [`TelegramAdapter`]: the [`crate::adapter::ChannelAdapter`] for one bot |
//! | `client.rs` | [`BotApi`]: `POST /bot<token>/<method>`, error classification, retries, token-free errors |
//! | `offsets.rs` | the getUpdates offset, advanced only over acknowledged updates (pure) |
//! | `normalize.rs` | `Update` → `InboundMessage` (pure) |
//! | `wire.rs` | the Bot API JSON types used |

mod adapter;
mod client;
mod normalize;
mod offsets;
mod wire;

pub use adapter::{CHANNEL, MESSAGE_LIMIT, TelegramAdapter, TelegramSettings};
pub use client::{BotApi, RetryPolicy, TelegramError};
pub use normalize::{BotIdentity, Normalized, normalize};
