//! Protocol-faithful fakes for Pincer's tests and demos, and launchers for the real servers
//! the tests run against where one can run locally (Synapse, ngircd, dovecot + OpenSMTPD,
//! nginx; installed by `scripts/setup-peers.sh`).
//!
//! Every fake is a real HTTP server on loopback (`127.0.0.1:0` by default) that speaks the
//! public wire protocol of the service it stands in for, so production clients talk to it
//! unchanged. Each fake has a test-side Rust API (script, inject, inspect) and a standalone
//! binary for demos and multi-process tests.
//!
//! | Module | What |
//! |---|---|
//! | [`dns`] | [`dns::FakeDns`]: a UDP DNS server on loopback with per-name A/AAAA answers and a rebinding mode (for SSRF tests) |
//! | [`llm`] | [`FakeLlm`]: OpenAI Chat Completions + Anthropic Messages, JSON and SSE, scripted steps or a deterministic demo brain |
//! | [`nginx`] | [`nginx::Nginx`]: a real nginx reverse proxy on loopback (for proxy-trust tests) |
//! | [`matrix_user`] | [`matrix_user::MatrixUser`]: the human side on the test Synapse (rooms, messages) |
//! | [`synapse`] | [`synapse::Synapse`]: a real Matrix homeserver on loopback, users registered with the shared secret |
//! | [`ngircd`] | [`ngircd::Ngircd`]: a real IRC server on loopback (plain or TLS) |
//! | [`tls`] | [`tls::TestCertificates`]: a private CA and a `localhost` server certificate for the real servers' TLS |
//! | [`dovecot`] | [`dovecot::MailServer`]: real dovecot (IMAP, LMTP) and OpenSMTPD (SMTP) on loopback |
//! | [`telegram`] | [`FakeTelegram`]: Telegram Bot API (getUpdates long polling with offsets, sendMessage, sendChatAction, webhooks, 409/429) plus a `/_fake/*` control API |
//! | `server` | shared plumbing: bind, serve, graceful shutdown |
//! | [`error`] | [`TestkitError`], the crate's one error type |
//!
//! Binaries: `pincer-fake-llm` and `pincer-fake-telegram` (see `src/bin/`).

pub mod dns;
pub mod dovecot;
pub mod error;
pub mod llm;
pub mod matrix_user;
pub mod nginx;
pub mod ngircd;
mod server;
pub mod synapse;
pub mod telegram;
pub mod tls;

pub use error::TestkitError;
pub use llm::{FakeLlm, FakeLlmOptions, RecordedRequest, Step};
pub use server::shutdown_signal;
pub use telegram::{
    ChatAction, ChatType, FakeFailure, FakeTelegram, FakeTelegramOptions, InjectMessage,
    MessageEntity, SentMessage,
};
