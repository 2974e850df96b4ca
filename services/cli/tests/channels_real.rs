//! Each chat platform through the whole stack, against a real server for it (TESTING.md:
//! real peers where they run locally): Synapse (Matrix), ngircd (IRC), dovecot with
//! OpenSMTPD (e-mail). The user's path: a stranger writes to the bot, gets exactly one
//! pairing code, the owner runs `pincer pairing approve <channel> <CODE>`, and the next
//! message is answered by the (fake) model.
//!
//! Needs the service binaries next to `pincer` (`cargo build --workspace --bins`) and the
//! peers from `scripts/setup-peers.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/bins.rs"]
mod bins;
#[path = "channels_real/stack.rs"]
mod stack;

#[path = "channels_real/email.rs"]
mod email;
#[path = "channels_real/irc.rs"]
mod irc;
#[path = "channels_real/matrix.rs"]
mod matrix;
#[path = "channels_real/telegram_webhook.rs"]
mod telegram_webhook;
