//! A command that runs while the caller goes on. [`Jail::spawn`] starts it exactly like
//! [`Jail::run`] — same host check (fail closed), private directory, helper, setup steps,
//! timeout enforced by the helper, whole tree killed at the end — and returns a
//! [`JailProcess`] once the command runs. Its stdin is a pipe
//! ([`JailProcess::write_stdin`]), its output is buffered as it comes
//! ([`JailProcess::take_output`]), and [`JailProcess::kill`] (or dropping the handle) ends
//! it and everything it started.
//!
//! Threads per process: an *owner* that starts the helper and lives until the helper is
//! reaped (the helper's parent-death signal fires when the thread that started it exits,
//! so the process must not depend on the caller's thread), a reader per output stream and
//! one for the helper's report. Output is kept per stream in a ring of
//! `limits.output_bytes` unread bytes: when the reader falls behind, the oldest unread
//! bytes are dropped and counted, so memory stays bounded and the command never blocks on
//! a full pipe.
//!
//! Writing to stdin after the command stopped reading fails with `EPIPE`
//! ([`JailError::StdinClosed`]); the calling program must ignore `SIGPIPE` (Rust programs
//! do by default).

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::kill;
use nix::unistd::Pid;

use crate::error::JailError;
use crate::profile::JailProfile;
use crate::reap::SWEEP_LIMIT;
use crate::spawn::{
    BACKSTOP_GRACE, Jail, Scratch, above_stdio, check_host, plan_bytes, report_pipe,
};
use crate::wire::{Enforcement, ExitStatus, KILL_SIGNAL};

mod owner;

use owner::Owner;

/// How long [`Jail::spawn`] waits for the command to be set up and executed.
pub const START_LIMIT: Duration = Duration::from_secs(30);
/// After [`JailProcess::kill`], how long the helper gets to kill everything and report
/// before it is killed itself.
pub const KILL_GRACE: Duration = SWEEP_LIMIT.saturating_add(BACKSTOP_GRACE);

/// How a spawned command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessStatus {
    /// It exited with this code.
    Exited(i32),
    /// A signal killed it (e.g. 24 SIGXCPU, 25 SIGXFSZ, or one it sent itself).
    Signaled(i32),
    /// The wall-clock timeout passed; the jail killed it and all its descendants.
    TimedOut,
    /// [`JailProcess::kill`] (or dropping the handle) killed it and all its descendants.
    Killed,
}

impl From<ExitStatus> for ProcessStatus {
    fn from(status: ExitStatus) -> Self {
        match status {
            ExitStatus::Exited(code) => Self::Exited(code),
            ExitStatus::Signaled(signal) => Self::Signaled(signal),
            ExitStatus::TimedOut => Self::TimedOut,
        }
    }
}

/// How a spawned command ended, like [`crate::JailOutcome`] without the output (read it
/// with [`JailProcess::take_output`]). Nothing the command started is alive any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOutcome {
    /// Exit code, killing signal, timeout or kill.
    pub status: ProcessStatus,
    /// What was applied.
    pub enforcement: Enforcement,
    /// Processes still alive when the command ended (daemons, background jobs), killed.
    pub leftovers_killed: u32,
    /// Wall-clock time from [`Jail::spawn`] to the end.
    pub elapsed: Duration,
    /// Bytes the command wrote to stdout in all (read or dropped).
    pub stdout_bytes: u64,
    /// Bytes the command wrote to stderr in all.
    pub stderr_bytes: u64,
}

/// How a spawned call ended: an outcome, or why the jail failed after the start (shared,
/// so every waiter sees it).
pub type ProcessResult = Result<ProcessOutcome, Arc<JailError>>;

/// Output written since the previous [`JailProcess::take_output`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessOutput {
    /// New stdout bytes (at most the output limit).
    pub stdout: Vec<u8>,
    /// New stderr bytes.
    pub stderr: Vec<u8>,
    /// Stdout bytes written before `stdout` that were dropped because the reader fell
    /// behind by more than the limit.
    pub stdout_dropped: u64,
    /// The same for stderr.
    pub stderr_dropped: u64,
}

impl ProcessOutput {
    /// Whether nothing was written (or dropped) since the previous read.
    pub fn is_empty(&self) -> bool {
        self.stdout.is_empty()
            && self.stderr.is_empty()
            && self.stdout_dropped == 0
            && self.stderr_dropped == 0
    }
}

/// A command running in a jail. All methods take `&self`: share it (e.g. in an `Arc`)
/// between a reader, a writer and a killer. Dropping it kills the command.
pub struct JailProcess {
    shared: Arc<Shared>,
    helper: Pid,
    pid: Option<i32>,
    enforcement: Enforcement,
    started: Instant,
}

impl std::fmt::Debug for JailProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JailProcess")
            .field("helper", &self.helper)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

type Notifier = Arc<dyn Fn() + Send + Sync>;

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stdin: Mutex<Option<File>>,
    notifier: Mutex<Option<Notifier>>,
}

struct State {
    stdout: Ring,
    stderr: Ring,
    end: Option<ProcessResult>,
    helper_reaped: bool,
    kill_requested: Option<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Wakes waiters; the notifier runs without any lock of ours held.
    fn changed(&self) {
        self.changed.notify_all();
        let notifier = lock(&self.notifier).clone();
        if let Some(notify) = notifier {
            notify();
        }
    }
}

/// Unread bytes of one stream, at most `cap`; older bytes are dropped first.
struct Ring {
    buf: VecDeque<u8>,
    cap: usize,
    dropped: u64,
    total: u64,
}

impl Ring {
    fn new(cap: usize) -> Self {
        Self {
            buf: VecDeque::new(),
            cap,
            dropped: 0,
            total: 0,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        self.total += chunk.len() as u64;
        let keep = &chunk[chunk.len().saturating_sub(self.cap)..];
        let skipped = chunk.len() - keep.len();
        let over = (self.buf.len() + keep.len()).saturating_sub(self.cap);
        self.buf.drain(..over);
        self.buf.extend(keep);
        self.dropped += (over + skipped) as u64;
    }

    fn take(&mut self) -> (Vec<u8>, u64) {
        (
            self.buf.drain(..).collect(),
            std::mem::take(&mut self.dropped),
        )
    }

    fn pending(&self) -> bool {
        !self.buf.is_empty() || self.dropped > 0
    }
}

/// What the owner thread tells [`Jail::spawn`] once the command runs.
struct Running {
    helper: Pid,
    pid: Option<i32>,
    enforcement: Enforcement,
}

type StartReply = SyncSender<Result<Running, JailError>>;

impl Jail {
    /// Starts `profile` and returns once the command runs (set up and executed), without
    /// waiting for it to end. Refuses (without running anything) when the host cannot
    /// enforce the jail; setup and exec failures are returned here too, after cleanup.
    pub fn spawn(&self, profile: &JailProfile) -> Result<JailProcess, JailError> {
        let started = Instant::now();
        check_host(profile)?;
        let scratch = Scratch::create(self.scratch_dir(), profile.user())?;
        let plan = plan_bytes(profile, scratch.path())?;
        let io = |what| move |source| JailError::Io { what, source };
        let (report_r, report_w) = report_pipe()?;
        let (stdin_r, stdin_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
            .map_err(|e| io("creating the stdin pipe")(e.into()))?;
        let stdin_r = above_stdio(stdin_r).map_err(io("moving the stdin pipe"))?;
        // Writes never block the caller: a full pipe is waited for with a deadline.
        fcntl(&stdin_w, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .map_err(|e| io("configuring the stdin pipe")(e.into()))?;
        let cap = profile.limits().output_bytes.get();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                stdout: Ring::new(cap),
                stderr: Ring::new(cap),
                end: None,
                helper_reaped: false,
                kill_requested: None,
            }),
            changed: Condvar::new(),
            stdin: Mutex::new(Some(File::from(stdin_w))),
            notifier: Mutex::new(None),
        });
        let owner = Owner {
            jail: self.clone(),
            timeout: profile.timeout(),
            plan,
            scratch,
            report_r,
            report_w,
            stdin_r,
            shared: Arc::clone(&shared),
            started,
        };
        let (reply, answer) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("pincer-jail-owner".into())
            .spawn(move || owner.run(reply))
            .map_err(io("starting the jail's owner thread"))?;
        match answer.recv() {
            Ok(Ok(running)) => Ok(JailProcess {
                shared,
                helper: running.helper,
                pid: running.pid,
                enforcement: running.enforcement,
                started,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(JailError::HelperLost {
                status: "the jail's owner thread ended without an answer".into(),
                stderr: String::new(),
            }),
        }
    }
}

impl JailProcess {
    /// The command's pid (also its process group id), when the helper reported it.
    pub fn pid(&self) -> Option<i32> {
        self.pid
    }

    /// What was applied to the command.
    pub fn enforcement(&self) -> &Enforcement {
        &self.enforcement
    }

    /// When [`Jail::spawn`] was called.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Calls `notify` (on one of the process's threads, without locks held) whenever new
    /// output arrives, a stream ends, or the process ends. Replaces an earlier notifier.
    /// Events before the call are not replayed: check [`take_output`](Self::take_output)
    /// and [`try_wait`](Self::try_wait) after setting it.
    pub fn on_change(&self, notify: impl Fn() + Send + Sync + 'static) {
        *lock(&self.shared.notifier) = Some(Arc::new(notify));
    }

    /// The output written since the previous call (and what was dropped before it).
    pub fn take_output(&self) -> ProcessOutput {
        let mut state = self.shared.state();
        let (stdout, stdout_dropped) = state.stdout.take();
        let (stderr, stderr_dropped) = state.stderr.take();
        ProcessOutput {
            stdout,
            stderr,
            stdout_dropped,
            stderr_dropped,
        }
    }

    /// Waits up to `timeout` until there is unread output or the process has ended;
    /// returns whether either is the case.
    pub fn wait_output(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state();
        loop {
            if state.stdout.pending() || state.stderr.pending() || state.end.is_some() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Writes `data` to the command's stdin, waiting up to `timeout` while the pipe is
    /// full; returns how many bytes were written (fewer than `data.len()` when the command
    /// did not read them in time). [`JailError::StdinClosed`] when stdin was closed or
    /// nothing reads it any more.
    pub fn write_stdin(&self, data: &[u8], timeout: Duration) -> Result<usize, JailError> {
        let deadline = Instant::now() + timeout;
        let mut stdin = lock(&self.shared.stdin);
        let Some(pipe) = stdin.as_mut() else {
            return Err(JailError::StdinClosed);
        };
        let mut written = 0;
        while written < data.len() {
            match pipe.write(&data[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    let ms = i32::try_from(left.as_millis().saturating_add(1)).unwrap_or(i32::MAX);
                    let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLOUT)];
                    match poll(
                        &mut fds,
                        PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
                    ) {
                        Ok(_) | Err(Errno::EINTR) => {}
                        Err(e) => {
                            return Err(JailError::Io {
                                what: "waiting to write to the command's stdin",
                                source: e.into(),
                            });
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    *stdin = None;
                    return Err(JailError::StdinClosed);
                }
                Err(source) => {
                    return Err(JailError::Io {
                        what: "writing to the command's stdin",
                        source,
                    });
                }
            }
        }
        Ok(written)
    }

    /// Closes the command's stdin (it reads end-of-file). Idempotent.
    pub fn close_stdin(&self) {
        lock(&self.shared.stdin).take();
    }

    /// Kills the command and everything it started (the helper does it and reports
    /// [`ProcessStatus::Killed`]); returns at once. Nothing happens when it has ended.
    pub fn kill(&self) {
        let mut state = self.shared.state();
        if state.helper_reaped || state.end.is_some() {
            return;
        }
        // The helper is the owner thread's child and is reaped only under this lock, so
        // its pid cannot have been reused.
        let _ = kill(self.helper, KILL_SIGNAL);
        state.kill_requested.get_or_insert_with(Instant::now);
    }

    /// How the process ended, or `Ok(None)` while it runs.
    pub fn try_wait(&self) -> Result<Option<ProcessOutcome>, Arc<JailError>> {
        self.shared.state().end.clone().transpose()
    }

    /// Waits for the end.
    pub fn wait(&self) -> ProcessResult {
        let mut state = self.shared.state();
        loop {
            if let Some(end) = &state.end {
                return end.clone();
            }
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Waits up to `timeout` for the end; `Ok(None)` when it still runs.
    pub fn wait_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<ProcessOutcome>, Arc<JailError>> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state();
        loop {
            if let Some(end) = &state.end {
                return end.clone().map(Some);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for JailProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_bytes_and_counts_the_rest() {
        let mut r = Ring::new(5);
        r.push(b"abc");
        assert_eq!(r.take(), (b"abc".to_vec(), 0));
        assert!(!r.pending());
        r.push(b"defg");
        r.push(b"hij");
        assert_eq!(r.take(), (b"fghij".to_vec(), 2));
        r.push(b"0123456789");
        assert_eq!(r.take(), (b"56789".to_vec(), 5));
        assert_eq!(r.total, 20);
        r.push(b"");
        assert!(!r.pending());
    }

    #[test]
    fn statuses_map() {
        assert_eq!(
            ProcessStatus::from(ExitStatus::Exited(3)),
            ProcessStatus::Exited(3)
        );
        assert_eq!(
            ProcessStatus::from(ExitStatus::TimedOut),
            ProcessStatus::TimedOut
        );
        assert!(ProcessOutput::default().is_empty());
    }
}
