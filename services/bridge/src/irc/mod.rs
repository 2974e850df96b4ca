//! The IRC adapter: one connection (one nick on one server) over plain TCP or TLS, no SDK.
//!
//! | file | what |
//! |---|---|
//! | `adapter.rs` | [`IrcAdapter`]: the [`crate::adapter::ChannelAdapter`]; inbound queue, acks, paced chunked sends |
//! | `connection.rs` | the background task: connect, register, join, read, keepalive, rejoin, reconnect |
//! | `register.rs` | `PASS`, `CAP`, SASL PLAIN (fail-closed), `NICK`/`USER`, nick collisions |
//! | `transport.rs` | TCP / TLS (webpki roots + extra CA PEM), length-capped line reading |
//! | `wire.rs` | [`Message`]: the line parser and the injection-proof serialiser (pure) |
//! | `normalize.rs` | `PRIVMSG` → `InboundMessage` (pure) |
//! | `text.rs` | case mapping, mentions, CTCP, outbound text sanitising (pure) |
//! | `flood.rs` | the token bucket pacing outbound lines (pure) |
//! | `settings.rs` | [`IrcSettings`] |
//!
//! Identity: `sender_id` is the hostmask `nick!user@host` (IRC has no better stable id
//! without services). Delivery: IRC cannot redeliver; see [`adapter`](IrcAdapter) docs for
//! what an ack means here.

mod adapter;
mod connection;
mod flood;
mod normalize;
mod register;
mod settings;
mod text;
mod transport;
mod wire;

pub use adapter::{CHANNEL, IrcAdapter, line_budget};
pub use connection::INBOUND_QUEUE_LIMIT;
pub use flood::{FloodSettings, TokenBucket};
pub use normalize::{Normalized, normalize, parse_server_time};
pub use settings::{IrcChannel, IrcSettings, SaslPlain};
pub use text::{irc_eq, irc_lowercase, mentions, safe_lines, sanitize_line};
pub use wire::{MAX_LINE, Message, ParseError, WireError};
