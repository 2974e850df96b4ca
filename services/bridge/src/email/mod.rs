//! The e-mail adapter: one mailbox read over IMAP (IDLE, or polling) and answered over
//! SMTP, with no mail SDK beyond the protocol crates (async-imap, lettre, mail-parser).
//!
//! Design:
//! - **Durability.** New mail is fetched with `BODY.PEEK[]` (which leaves it unseen) and
//!   handed out with an ack handle; it is marked `\Seen` only after the gateway stored it.
//!   Unacked mail stays unseen and is delivered again after a reconnect, a restart or by the
//!   next replica; the gateway de-duplicates on `platform_message_id` =
//!   `<uidvalidity>:<uid>`, which is the same for every replica.
//! - **No answers to machines.** Auto-replies and bounces (`Auto-Submitted` other than
//!   `no`), bulk and list mail (`Precedence: bulk|list|junk`, `List-Id`), and mail from the
//!   bot's own address are skipped and marked seen, so the assistant never joins a mail
//!   loop; its own mail carries `Auto-Submitted: auto-replied` for the same reason.
//! - **Sender authenticity.** `From` is trivially forged. With
//!   [`EmailSettings::authserv_id`] set, only mail whose topmost `Authentication-Results`
//!   (added by our MTA) has that id and says `dmarc=pass` or `dkim=pass` for the `From`
//!   domain counts (see `auth.rs`); without it the mailbox's server must reject spoofed
//!   senders itself.
//! - **Transport security.** TLS (implicit or STARTTLS, never a silent downgrade) with the
//!   Web PKI roots plus optional extra CAs; plaintext only to loopback.
//!
//! Limits: a message is fetched whole into memory (attachments included, only references
//! are passed on); when the mailbox's UIDVALIDITY changes, acked-but-not-yet-flagged mail
//! may come again under new ids; a new (non-reply) e-mail's subject is the first line of
//! its text.
//!
//! | file | what |
//! |---|---|
//! | `adapter.rs` | [`EmailAdapter`]: the [`crate::adapter::ChannelAdapter`] |
//! | `settings.rs` | [`EmailSettings`] and its checks |
//! | `inbox.rs` | the IMAP task: fetch, hand out, mark seen after ack, IDLE or poll, reconnect |
//! | `imap.rs` | IMAP connections (TCP / TLS / STARTTLS, LOGIN) and commands |
//! | `normalize.rs` | raw message → `InboundMessage` (pure) |
//! | `auth.rs` | `Authentication-Results` checks (pure) |
//! | `smtp.rs` | building replies (threading headers) and SMTP submission |

mod adapter;
mod auth;
mod imap;
mod inbox;
mod normalize;
mod settings;
mod smtp;

/// The channel name on the wire.
pub const CHANNEL: &str = "email";

pub use adapter::EmailAdapter;
pub use auth::{AuthResults, MethodResult, Verdict, verify_sender};
pub use normalize::{Normalized, TEXT_LIMIT, ThreadInfo};
pub use settings::{EmailSettings, ImapSettings, MAX_IDLE, Security, SmtpSettings};
pub use smtp::MAX_TEXT;
