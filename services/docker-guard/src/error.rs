//! The crate's one error type. Refusals are not errors (see [`crate::rules::Refusal`]).

use std::path::PathBuf;

/// Why the guard could not start, or could not reach the engine for a request.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// A flag value is wrong.
    #[error("{flag} {value:?}: {why}")]
    BadFlag {
        /// The flag.
        flag: &'static str,
        /// What was passed.
        value: String,
        /// What is wrong and what is accepted.
        why: String,
    },
    /// The listening socket could not be set up.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The engine's socket could not be reached.
    #[error("cannot connect to the Docker engine at {}: {source}", socket.display())]
    DockerConnect {
        /// The engine's socket.
        socket: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The engine's socket did not answer in time.
    #[error("the Docker engine at {} did not accept a connection within {seconds} s", socket.display())]
    DockerTimeout {
        /// The engine's socket.
        socket: PathBuf,
        /// The limit.
        seconds: u64,
    },
    /// HTTP to the engine failed.
    #[error("HTTP exchange with the Docker engine failed: {0}")]
    DockerHttp(#[from] hyper::Error),
    /// The engine answered something the guard cannot read.
    #[error("unexpected answer from the Docker engine to {what}: {why}")]
    DockerAnswer {
        /// Which request.
        what: &'static str,
        /// What was wrong.
        why: String,
    },
    /// The client's request body could not be read.
    #[error("cannot read the request body: {0}")]
    ClientBody(String),
    /// A request to the engine could not be built.
    #[error("cannot build a request to the Docker engine: {0}")]
    Request(#[from] http::Error),
}
