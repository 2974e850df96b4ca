//! Who may talk to the assistant on a chat channel (SECURITY.md, "Senders"): DM and group
//! policies, owner / allowed / stranger, pairing codes for strangers, mention gating, and
//! chat commands answered without the model. The cores are pure (time and randomness are
//! passed in) and property-tested; [`service`] puts them behind a lock, written through to
//! SQLite.
//!
//! | module | what |
//! |---|---|
//! | [`policy`] | pure: classify the sender, judge a message (turn, context, command, pairing, ignore) |
//! | [`codes`] | pure: pairing codes and the book of strangers' requests and paired senders |
//! | [`commands`] | pure: `/status`, `/new`, `/reset`, `/help`, `/approve`: parsing, permissions, texts |
//! | [`service`] | [`SenderAccess`]: the inbound decision end to end, and the operator's pairing methods |

pub mod codes;
pub mod commands;
pub mod policy;
pub mod service;

pub use policy::{IgnoreReason, MessageFacts, SenderClass, Verdict, classify, judge};
pub use service::{Incoming, PairingError, SenderAccess};
