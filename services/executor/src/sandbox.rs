//! What every sandbox backend implements ([`Sandbox`]) and returns ([`ExecOutcome`]), and
//! the output cap they share ([`CappedOutput`]). Backends that can also run a call in the
//! background (the `process` tool) implement [`SpawnBackground`], whose handle is a
//! [`BackgroundProcess`] (both the jail and Docker).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pincer_proto::v1::ExecResponse;
use tokio::sync::Notify;

use crate::ExecutorError;
use crate::plan::ValidatedExecPlan;
use crate::workspace::PreparedWorkspace;

/// A sandbox backend: runs one validated call in the prepared workspace. The posture
/// (network, mounts, user, limits) is the backend's code, never the caller's input.
pub trait Sandbox: Send + Sync + 'static {
    /// Runs the call to completion or to its timeout. A timeout is an `Ok` outcome with
    /// `timed_out`; errors are for calls that could not run at all.
    fn run(
        &self,
        plan: ValidatedExecPlan,
        workspace: PreparedWorkspace,
    ) -> impl Future<Output = Result<ExecOutcome, ExecutorError>> + Send;
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutcome {
    /// The exit code; -1 when the process was killed at the timeout.
    pub exit_code: i32,
    /// Standard output, at most the cap.
    pub stdout: Vec<u8>,
    /// Standard error, at most the cap.
    pub stderr: Vec<u8>,
    /// The wall-clock limit was reached and the sandbox was killed.
    pub timed_out: bool,
    /// Output past the cap was discarded.
    pub output_truncated: bool,
    /// Wall-clock time from start to exit.
    pub duration: Duration,
}

impl From<ExecOutcome> for ExecResponse {
    fn from(o: ExecOutcome) -> Self {
        Self {
            exit_code: o.exit_code,
            stdout: o.stdout,
            stderr: o.stderr,
            timed_out: o.timed_out,
            output_truncated: o.output_truncated,
            duration_ms: u64::try_from(o.duration.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// A backend that can start a call without waiting for it (the `process` tool). The
/// posture is the same as for [`Sandbox::run`]; only the lifetime differs.
pub trait SpawnBackground: Send + Sync + 'static {
    /// Starts `plan` in `workspace` and returns once the command runs (or could not be
    /// started). Blocking: call it on the blocking pool. `wake` is notified whenever output
    /// arrives or the process ends.
    fn spawn_background(
        &self,
        plan: &ValidatedExecPlan,
        workspace: &PreparedWorkspace,
        wake: Arc<Notify>,
    ) -> Result<Box<dyn BackgroundProcess>, ExecutorError>;
}

/// A command running in the background. Dropping it kills the command and everything it
/// started.
pub trait BackgroundProcess: Send + Sync {
    /// Output written since the previous call; what did not fit the backend's buffer is
    /// counted as dropped.
    fn take_output(&self) -> BackgroundOutput;
    /// Writes `data` to the command's stdin, waiting up to `wait` while the pipe is full;
    /// returns the bytes written. Blocking. [`ExecutorError::StdinClosed`] once stdin was
    /// closed or nothing reads it.
    fn write_stdin(&self, data: &[u8], wait: Duration) -> Result<usize, ExecutorError>;
    /// Closes the command's stdin.
    fn close_stdin(&self);
    /// Asks for the command and everything it started to be killed; returns at once.
    fn kill(&self);
    /// Running, or how it ended. Once ended, every output byte has been buffered.
    fn state(&self) -> BackgroundState;
}

/// Output of a background process since the previous read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackgroundOutput {
    /// New stdout bytes.
    pub stdout: Vec<u8>,
    /// New stderr bytes.
    pub stderr: Vec<u8>,
    /// Stdout bytes before `stdout` that were dropped (nobody read them in time).
    pub stdout_dropped: u64,
    /// Stderr bytes before `stderr` that were dropped.
    pub stderr_dropped: u64,
}

impl BackgroundOutput {
    /// Whether there is nothing new.
    pub fn is_empty(&self) -> bool {
        self.stdout.is_empty()
            && self.stderr.is_empty()
            && self.stdout_dropped == 0
            && self.stderr_dropped == 0
    }
}

/// Where a background process is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackgroundState {
    /// Still running (possibly being killed).
    Running,
    /// Ended; nothing it started is alive.
    Ended {
        /// How.
        how: BackgroundEnd,
        /// From the start to the end.
        duration: Duration,
    },
}

/// How a background process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackgroundEnd {
    /// On its own: the exit code, or 128+N when signal N ended it.
    Exited(i32),
    /// Killed at its wall-clock limit.
    TimedOut,
    /// Killed on request (or at shutdown).
    Killed,
    /// The sandbox failed after the start (the message says why).
    Failed(String),
}

/// One output stream kept up to `cap` bytes; later bytes are counted and dropped, so the
/// reader keeps draining and the process never blocks on a full pipe.
#[derive(Debug, Clone)]
pub struct CappedOutput {
    cap: usize,
    kept: Vec<u8>,
    dropped: u64,
}

impl CappedOutput {
    /// An empty buffer keeping at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            kept: Vec::new(),
            dropped: 0,
        }
    }

    /// Appends `chunk`, keeping what fits.
    pub fn push(&mut self, chunk: &[u8]) {
        let room = self.cap.saturating_sub(self.kept.len());
        let take = room.min(chunk.len());
        self.kept.extend_from_slice(&chunk[..take]);
        self.dropped += (chunk.len() - take) as u64;
    }

    /// Whether anything was dropped.
    pub fn truncated(&self) -> bool {
        self.dropped > 0
    }

    /// Bytes dropped past the cap.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The kept bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_the_cap() {
        let mut out = CappedOutput::new(5);
        out.push(b"abc");
        assert!(!out.truncated());
        out.push(b"defg");
        out.push(b"hij");
        assert!(out.truncated());
        assert_eq!(out.dropped(), 5);
        assert_eq!(out.into_bytes(), b"abcde");
    }

    #[test]
    fn exact_fit_is_not_truncated() {
        let mut out = CappedOutput::new(3);
        out.push(b"abc");
        out.push(b"");
        assert!(!out.truncated());
        assert_eq!(out.into_bytes(), b"abc");
    }

    #[test]
    fn outcome_maps_to_the_wire() {
        let resp = ExecResponse::from(ExecOutcome {
            exit_code: -1,
            stdout: b"o".to_vec(),
            stderr: vec![],
            timed_out: true,
            output_truncated: false,
            duration: Duration::from_millis(1500),
        });
        assert_eq!(resp.exit_code, -1);
        assert!(resp.timed_out);
        assert_eq!(resp.duration_ms, 1500);
    }
}
