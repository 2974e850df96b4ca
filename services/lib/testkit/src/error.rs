//! The crate's error type.

use std::net::SocketAddr;
use std::time::Duration;

/// What can go wrong when starting or driving a fake.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// The listener could not be bound (address in use, bad address, no permission).
    #[error("could not bind the fake server to {addr}: {source}; pick another address or port")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// `wait_for_sent` gave up before the bot sent enough messages.
    #[error(
        "timed out after {waited:?} waiting for {wanted} sent message(s); only {got} were sent"
    )]
    WaitTimeout {
        wanted: usize,
        got: usize,
        waited: Duration,
    },
    /// An injected message was rejected because it cannot become a Telegram update.
    #[error("invalid injected message: {0}")]
    InvalidInjection(&'static str),
}
