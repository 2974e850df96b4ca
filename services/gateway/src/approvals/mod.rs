//! Exec approvals: the executor asks, the owner decides (`pincer approvals resolve`), and
//! the decision covers exactly the call that was asked about.
//!
//! | module | what |
//! |---|---|
//! | [`binding`] | what an approval is bound to, and its canonical hash (pure) |
//! | [`book`] | requests, decisions, single use, expiry (pure) |
//! | [`service`] | the book behind a lock, written through to SQLite, events, waiting |

pub mod binding;
pub mod book;
pub mod service;

pub use book::{ApprovalId, Decision};
pub use service::{Answer, Approvals, ApprovalsError};
