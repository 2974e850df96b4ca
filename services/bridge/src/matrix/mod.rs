//! The Matrix adapter: the client-server API v3 over HTTPS (reqwest), `/sync` long
//! polling, no SDK and no end-to-end encryption (encrypted rooms are not supported: their
//! events are skipped and logged once per room).
//!
//! | file | what |
//! |---|---|
//! | `adapter.rs` | [`MatrixAdapter`]: the [`crate::adapter::ChannelAdapter`] for one bot account |
//! | `settings.rs` | [`MatrixSettings`], [`InvitePolicy`] (which invites are accepted) |
//! | `client.rs` | authenticated calls, (re-)login, error classification, token-free errors |
//! | `normalize.rs` | room events → `InboundMessage`, mentions, reply fallbacks (pure) |
//! | `outbound.rs` | outgoing event contents and deterministic transaction ids (pure) |
//! | `wire.rs` | the client-server API JSON types used |

mod adapter;
mod client;
mod normalize;
mod outbound;
mod settings;
mod wire;

pub use adapter::{MESSAGE_LIMIT, MatrixAdapter, SYNC_TOKEN_TYPE};
pub use client::encode_segment;
pub use normalize::{BotIdentity, Normalized, RoomContext, normalize};
pub use outbound::{message_content, txn_id};
pub use settings::{InviteDecision, InvitePolicy, MAX_SYNC_TIMEOUT, MatrixSettings};
pub use wire::Event;

/// The channel name on the wire.
pub const CHANNEL: &str = "matrix";
