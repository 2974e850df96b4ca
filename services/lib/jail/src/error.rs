//! The crate's error type. Messages say what is wrong and what to do; the command never
//! runs when setup fails (fail closed).

use std::path::PathBuf;
use std::time::Duration;

use crate::probe::Missing;
use crate::profile::ProfileError;
use crate::wire::SetupStep;

/// Why a jailed call did not produce an outcome.
#[derive(Debug, thiserror::Error)]
pub enum JailError {
    /// The profile is invalid.
    #[error("invalid jail profile: {0}")]
    Profile(#[from] ProfileError),
    /// The host cannot enforce the jail; nothing was run.
    #[error(
        "this host cannot enforce the jail, so the command was not run (fail closed); missing: {}",
        list(.0)
    )]
    Unenforceable(Vec<Missing>),
    /// The per-call private directory could not be prepared.
    #[error("cannot prepare the jail's private directory under {dir}: {source}")]
    Scratch {
        /// Where.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The helper process could not be started.
    #[error("cannot start the jail helper {exe}: {source}")]
    HelperStart {
        /// The helper executable.
        exe: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A setup step failed inside the helper or child; the command did not run.
    #[error("jail setup failed at {step}, so the command was not run: {detail}")]
    Setup {
        /// Which step.
        step: SetupStep,
        /// Why.
        detail: String,
    },
    /// Everything was enforced but the program could not be executed.
    #[error("cannot execute {program:?} in the jail: {detail}")]
    Exec {
        /// argv[0].
        program: String,
        /// Why.
        detail: String,
    },
    /// The helper was told to stop (e.g. SIGTERM); the command and its descendants were
    /// killed.
    #[error("the jail was cancelled; the command and its descendants were killed")]
    Cancelled,
    /// The helper did not report in time; it and the command's process group were killed.
    #[error(
        "the jail helper did not finish within the timeout plus {grace:?}; it and the command's process group were killed"
    )]
    HelperHung {
        /// Grace beyond the timeout.
        grace: Duration,
    },
    /// A spawned command was not set up and executed in time; the helper and the command
    /// were killed.
    #[error(
        "the jail did not start the command within {limit:?}; the helper and the command were killed"
    )]
    StartHung {
        /// How long the caller waited.
        limit: Duration,
    },
    /// A spawned command's stdin is closed: the caller closed it, or nothing reads it any
    /// more (the command closed it or ended).
    #[error("the command's stdin is closed (it was closed, or the command no longer reads it)")]
    StdinClosed,
    /// The helper ended without a report.
    #[error("the jail helper ended without a report ({status}); its stderr: {stderr}")]
    HelperLost {
        /// Its exit status.
        status: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// The helper's report was malformed.
    #[error("the jail helper sent a malformed report: {0}")]
    Protocol(#[from] serde_json::Error),
    /// The command's output pipes stayed open after the helper ended.
    #[error("a process still holds the command's output after the jail ended")]
    OutputHeld,
    /// Other I/O.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

fn list(missing: &[Missing]) -> String {
    missing
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
