//! The gateway's SQLite store (WAL mode, migrations by `user_version`).
//!
//! | module | tables |
//! |---|---|
//! | [`db`] | opening, pragmas, migrations, the blocking-call helper |
//! | [`inbound`] | `inbound`: the durable inbound queue, de-duplicated by platform message id |
//! | [`outbox`] | `outbox`: replies to deliver, retried until a receipt |
//! | [`transcript`] | `sessions`, `transcript` (append-only, enforced by triggers) |
//! | [`devices`] | `devices`: paired operator devices and nodes, pending requests, token hashes |
//! | [`approvals`] | `approvals`: exec approval requests and the owner's decisions |
//! | [`leases`] | `leases`: which bridge replica serves a channel account, with fencing tokens |
//! | [`senders`] | `sender_requests`, `paired_senders`: strangers' pairing requests, paired senders |
//! | [`ingress`] | one channel message's outcome in one transaction (queue, context, reply, reset) |

pub mod approvals;
pub mod db;
pub mod devices;
pub mod inbound;
pub mod ingress;
pub mod leases;
pub mod outbox;
pub mod senders;
pub mod transcript;

pub use db::{Store, StoreError};
