//! Pincer's gateway: the control plane. It owns the operator API, session routing, the
//! durable inbound queue, transcripts and the outbox; it decides who may talk to the
//! assistant and what each turn may do. It never holds LLM keys or channel tokens.
//!
//! | module | what |
//! |---|---|
//! | [`routing`] | pure: session keys (`dmScope`, identity links, groups, threads, resets) |
//! | [`senders`] | who may talk to the assistant: DM/group policies, pairing codes, chat commands |
//! | [`access`] | pure: client address, rate limits, origins, method scopes, device pairing |
//! | [`store`] | SQLite (WAL): sessions, transcripts, inbound queue, outbox, leases |
//! | [`bridge_link`] | `BridgeService`: bridge replicas, leases, inbound → store → ack, deliveries |
//! | `bridge_status.rs` | per-account status rows for `channels.status` |
//! | [`agent_link`] | `GatewayService` for agents (history) and the agent client |
//! | [`turns`] | runs queued messages as agent turns, records outcomes atomically |
//! | [`approvals`] | exec approvals: binding, the book, waiting for the owner |
//! | [`grants`] | the grant key, signed turn grants, `ExecutorLinkService` |
//! | [`delivery`] | the outbox dispatcher |
//! | [`turn_events`] | live turn updates for operator clients |
//! | [`operator`] | HTTP health routes and the operator WebSocket API |
//! | [`server`] | wiring: [`server::run`] |

pub mod access;
pub mod agent_link;
pub mod approvals;
pub mod bridge_link;
mod bridge_status;
pub mod delivery;
pub mod error;
pub mod grants;
pub mod operator;
pub mod routing;
pub mod senders;
pub mod server;
pub mod store;
pub mod turn_events;
pub mod turns;

pub use error::GatewayError;
pub use server::{GatewayListeners, GatewaySecrets, run};
