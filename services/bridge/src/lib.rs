//! Pincer's channel bridge: it holds the chat platforms' credentials, receives messages on
//! them, hands them to the gateway, and sends the gateway's replies back.
//!
//! Flow: [`run`] → [`Bridge`] → `link` (dial the gateway, reconnect with backoff) →
//! `session` (one `BridgeService.OpenStream`: leases, inbound, acks, deliveries, typing) →
//! a [`ChannelAdapter`] per account ([`telegram::TelegramAdapter`], [`matrix::MatrixAdapter`],
//! [`irc::IrcAdapter`], [`email::EmailAdapter`]).
//!
//! | module | what |
//! |---|---|
//! | `bridge.rs` | [`run`], [`Bridge`], [`BridgeSettings`]: the public entry points |
//! | [`adapter`] | the [`ChannelAdapter`] contract: inbound items with ack handles, chunked sends |
//! | [`telegram`] | the Telegram Bot API adapter (long polling, offsets confirmed after ack) |
//! | [`matrix`] | the Matrix client-server API adapter (`/sync`, invites, threads) |
//! | [`irc`] | the IRC adapter (TLS, SASL, flood pacing, reconnect) |
//! | [`email`] | the e-mail adapter (IMAP IDLE in, SMTP out, threading) |
//! | [`chunk`] | splitting text to a platform's length limit (pure) |
//! | [`format`] | the model's Markdown rendered per platform (pure) |
//! | `link.rs` | the gateway connection loop, hello, auth errors, backoff |
//! | `session.rs` | one open stream: the event loop |
//! | `lease.rs` | account leases and fencing tokens (pure) |
//! | `outbox.rs` | delivery workers and the idempotency ledger |
//! | `backoff.rs` | capped exponential backoff |
//! | `error.rs` | [`BridgeError`] |
//!
//! Invariants: an inbound message is confirmed to its platform only after the gateway acked
//! it (IRC, which keeps no history, is the documented exception); platform secrets never
//! leave this process (not to the gateway, not into logs or error
//! strings); a delivery id is sent at most once per process; deliveries with a stale
//! fencing token are refused.

pub mod adapter;
mod backoff;
mod bridge;
pub mod chunk;
pub mod email;
mod error;
pub mod format;
pub mod irc;
mod lease;
mod link;
pub mod matrix;
mod outbox;
mod session;
pub mod telegram;

pub use adapter::ChannelAdapter;
pub use bridge::{Bridge, BridgeSettings, run};
pub use error::BridgeError;
pub use lease::{AccountKey, Refusal};
pub use link::LinkTiming;
