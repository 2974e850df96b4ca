//! The `process` tool: background processes. A start runs a command in the sandbox
//! without waiting for it; later calls poll its output, write to its stdin, kill it or list
//! the session's processes. Only backends implementing
//! [`crate::sandbox::SpawnBackground`] serve it: the jail (`Jail::spawn`) and Docker (one
//! container per process).
//!
//! A start travels `ProcessStartRequest` → [`ProcessStartPlan`] →
//! [`ValidatedProcessStart`] (the exec checks, grant for `process`) → the workspace → the
//! exec approval gate (exactly as for `exec`) → [`Processes::start`]. The other calls are
//! checked by [`plan`]'s `validate_*` (grant first) and scoped to the grant's agent and
//! session by [`Processes::find`].
//!
//! | module | what |
//! |---|---|
//! | [`plan`] | requests → validated plans, process ids, the per-call limits (pure) |
//! | [`registry`] | the processes, their owners, the running limits, poll/kill waits, retention, shutdown |

pub mod plan;
pub mod registry;

pub use plan::{
    DEFAULT_TIMEOUT, MAX_TIMEOUT, MAX_WAIT, MAX_WRITE_BYTES, ProcessId, ProcessOwner,
    ProcessPlanError, ProcessStartPlan, ValidatedProcessStart,
};
pub use registry::{
    Entry, KEEP_ENDED, MAX_ENDED_PER_AGENT, MAX_RUNNING, MAX_RUNNING_PER_AGENT, Processes, Slot,
};

/// Bytes of unread output kept per stream of a background process (older bytes are
/// dropped and counted when nobody polls).
pub const OUTPUT_RING_BYTES: usize = 1024 * 1024;
/// How long a write waits for a full stdin pipe before answering with what it wrote.
pub const STDIN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a kill waits for the process (and everything it started) to be gone.
pub const KILL_WAIT: std::time::Duration = std::time::Duration::from_secs(20);
