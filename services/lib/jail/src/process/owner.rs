//! The owner thread of a spawned command: starts the helper, feeds it the plan, pumps the
//! output into the shared rings, answers [`Jail::spawn`] once the command runs, waits for
//! the helper (killing it at the backstop, or [`KILL_GRACE`] after a kill), reaps it under
//! the state lock, and publishes how the call ended.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;

use super::{KILL_GRACE, ProcessOutcome, ProcessStatus, Running, START_LIMIT, Shared, StartReply};
use crate::error::JailError;
use crate::reap::SWEEP_LIMIT;
use crate::spawn::{
    BACKSTOP_GRACE, Jail, OUTPUT_GRACE, Scratch, final_record, pid_of, report_lines, started_pid,
};
use crate::sys;
use crate::wire::HelperRecord;

/// The owner thread's belongings.
pub(super) struct Owner {
    pub(super) jail: Jail,
    pub(super) timeout: Duration,
    pub(super) plan: Vec<u8>,
    pub(super) scratch: Scratch,
    pub(super) report_r: OwnedFd,
    pub(super) report_w: OwnedFd,
    pub(super) stdin_r: OwnedFd,
    pub(super) shared: Arc<Shared>,
    pub(super) started: Instant,
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

impl Owner {
    pub(super) fn run(self, reply: StartReply) {
        let mut reply = Some(reply);
        let shared = Arc::clone(&self.shared);
        let (scratch, result) = self.supervise(&mut reply);
        let removed = scratch.remove().map_err(|source| JailError::Io {
            what: "removing the jail's private directory",
            source,
        });
        let result = result.and_then(|outcome| removed.map(|()| outcome));
        match reply.take() {
            // Never started: `spawn` returns the error.
            Some(tx) => {
                let error = result.err().unwrap_or(JailError::HelperLost {
                    status: "the helper reported an end before the command ran".into(),
                    stderr: String::new(),
                });
                let _ = tx.send(Err(error));
            }
            None => {
                shared.state().end = Some(result.map_err(Arc::new));
                shared.changed();
            }
        }
    }

    /// Runs the helper to its end; answers `reply` once the command runs.
    fn supervise(
        self,
        reply: &mut Option<StartReply>,
    ) -> (Scratch, Result<ProcessOutcome, JailError>) {
        let Self {
            jail,
            timeout,
            plan,
            scratch,
            report_r,
            report_w,
            stdin_r,
            shared,
            started,
        } = self;
        let mut helper = match jail.start_helper(&report_w, Some(&stdin_r)) {
            Ok(h) => h,
            Err(e) => return (scratch, Err(e)),
        };
        drop(report_w);
        drop(stdin_r);
        let helper_pid = pid_of(&helper);
        // The helper reads the whole plan first; if it died early its report explains.
        if let Some(mut stdin) = helper.stdin.take() {
            let _ = stdin.write_all(&plan);
        }
        let outputs = [
            helper
                .stdout
                .take()
                .map(|s| pump(Arc::clone(&shared), s, Stream::Stdout)),
            helper
                .stderr
                .take()
                .map(|s| pump(Arc::clone(&shared), s, Stream::Stderr)),
        ];
        let records = report_lines(report_r);
        let ctx = Supervisor {
            shared,
            helper_pid,
            started,
            backstop: started + timeout + SWEEP_LIMIT + BACKSTOP_GRACE,
        };
        let result = ctx.to_the_end(&mut helper, &records, outputs, reply);
        (scratch, result)
    }
}

struct Supervisor {
    shared: Arc<Shared>,
    helper_pid: Pid,
    started: Instant,
    backstop: Instant,
}

impl Supervisor {
    fn to_the_end(
        &self,
        helper: &mut std::process::Child,
        records: &Receiver<String>,
        outputs: [Option<Receiver<()>>; 2],
        reply: &mut Option<StartReply>,
    ) -> Result<ProcessOutcome, JailError> {
        let mut lines = Vec::new();
        if !self.until_running(records, &mut lines, reply) {
            self.hard_kill(&lines);
            let _ = self.reap(helper);
            return Err(JailError::StartHung { limit: START_LIMIT });
        }
        if !self.wait_helper() {
            self.hard_kill(&lines);
            let _ = self.reap(helper);
            return Err(JailError::HelperHung {
                grace: SWEEP_LIMIT + BACKSTOP_GRACE,
            });
        }
        let status = self.reap(helper).map_err(|source| JailError::Io {
            what: "waiting for the jail helper",
            source,
        })?;
        lines.extend(records.try_iter());
        while let Ok(line) = records.recv_timeout(OUTPUT_GRACE) {
            lines.push(line);
        }
        for done in outputs.into_iter().flatten() {
            drained(&done, &lines)?;
        }
        let (stdout_bytes, stderr_bytes, stderr_tail) = {
            let state = self.shared.state();
            let tail: Vec<u8> = state
                .stderr
                .buf
                .iter()
                .rev()
                .take(2000)
                .rev()
                .copied()
                .collect();
            (state.stdout.total, state.stderr.total, tail)
        };
        let Some(record) = final_record(&lines) else {
            return Err(JailError::HelperLost {
                status: status.to_string(),
                stderr: String::from_utf8_lossy(&stderr_tail).trim().to_owned(),
            });
        };
        let outcome = |status, enforcement, leftovers_killed| ProcessOutcome {
            status,
            enforcement,
            leftovers_killed,
            elapsed: self.started.elapsed(),
            stdout_bytes,
            stderr_bytes,
        };
        match record? {
            HelperRecord::Finished {
                status,
                enforcement,
                leftovers_killed,
            } => Ok(outcome(status.into(), enforcement, leftovers_killed)),
            HelperRecord::Killed {
                enforcement,
                leftovers_killed,
            } => Ok(outcome(
                ProcessStatus::Killed,
                enforcement,
                leftovers_killed,
            )),
            HelperRecord::SetupFailed { step, detail } => Err(JailError::Setup { step, detail }),
            HelperRecord::ExecFailed { program, detail } => {
                Err(JailError::Exec { program, detail })
            }
            HelperRecord::Cancelled
            | HelperRecord::Started { .. }
            | HelperRecord::Running { .. } => Err(JailError::Cancelled),
        }
    }

    /// Reads the report until the command runs (answering `reply`) or the call is over.
    /// `false` when neither happened within [`START_LIMIT`].
    fn until_running(
        &self,
        records: &Receiver<String>,
        lines: &mut Vec<String>,
        reply: &mut Option<StartReply>,
    ) -> bool {
        let deadline = (self.started + START_LIMIT).min(self.backstop);
        let mut pid = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match records.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => return false,
                // The helper closed its report: it has ended.
                Err(RecvTimeoutError::Disconnected) => return true,
            };
            let record = serde_json::from_str::<HelperRecord>(&line);
            lines.push(line);
            match record {
                Ok(HelperRecord::Started { pid: p }) => pid = Some(p),
                Ok(HelperRecord::Running { enforcement }) => {
                    if let Some(tx) = reply.take() {
                        let _ = tx.send(Ok(Running {
                            helper: self.helper_pid,
                            pid,
                            enforcement,
                        }));
                    }
                    return true;
                }
                // A final record (or garbage): the call is over.
                _ => return true,
            }
        }
    }

    /// Whether the helper ended (unreaped) before the backstop, or before the kill grace
    /// once a kill was asked for.
    fn wait_helper(&self) -> bool {
        let pidfd = sys::pidfd_open(self.helper_pid.as_raw()).ok();
        loop {
            let now = Instant::now();
            let mut deadline = self.backstop;
            if let Some(at) = self.shared.state().kill_requested {
                deadline = deadline.min(at + KILL_GRACE);
            }
            if now >= deadline {
                return false;
            }
            // Re-check the kill deadline at least every second.
            let slice = deadline.min(now + Duration::from_secs(1));
            if exited_by(self.helper_pid, pidfd.as_ref(), slice) {
                return true;
            }
        }
    }

    /// Reaps the helper under the state lock, so [`JailProcess::kill`] never signals a
    /// reused pid.
    fn reap(&self, helper: &mut std::process::Child) -> std::io::Result<std::process::ExitStatus> {
        let mut state = self.shared.state();
        let status = helper.wait();
        state.helper_reaped = true;
        status
    }

    /// The helper did not finish: kill its session and the command's group.
    fn hard_kill(&self, lines: &[String]) {
        let _ = killpg(self.helper_pid, Signal::SIGKILL);
        let _ = kill(self.helper_pid, Signal::SIGKILL);
        if let Some(pid) = started_pid(lines) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Whether `pid` (a child, left unreaped) exited before `deadline`.
fn exited_by(pid: Pid, pidfd: Option<&OwnedFd>, deadline: Instant) -> bool {
    let ms = |d: Instant| {
        let left = d.saturating_duration_since(Instant::now());
        let ms = i32::try_from(left.as_millis().saturating_add(1)).unwrap_or(i32::MAX);
        PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
    };
    if let Some(fd) = pidfd {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        return matches!(poll(&mut fds, ms(deadline)), Ok(n) if n > 0);
    }
    // Kernels before 5.3: look without reaping.
    loop {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::Pid(pid), flags) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
            Ok(_) | Err(_) => return true,
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads `stream` into the shared ring until end-of-file; the receiver gets `()` then.
fn pump(
    shared: Arc<Shared>,
    mut stream: impl Read + Send + 'static,
    which: Stream,
) -> Receiver<()> {
    let (done, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            let n = match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            {
                let mut state = shared.state();
                match which {
                    Stream::Stdout => state.stdout.push(&chunk[..n]),
                    Stream::Stderr => state.stderr.push(&chunk[..n]),
                }
            }
            shared.changed();
        }
        let _ = done.send(());
    });
    rx
}

/// Waits for an output stream to end; once the helper has ended every writer should be
/// gone. If one is not, kill the command's group once more and give it another grace.
fn drained(done: &Receiver<()>, lines: &[String]) -> Result<(), JailError> {
    match done.recv_timeout(OUTPUT_GRACE) {
        Ok(()) | Err(RecvTimeoutError::Disconnected) => return Ok(()),
        Err(RecvTimeoutError::Timeout) => {}
    }
    if let Some(pid) = started_pid(lines) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    match done.recv_timeout(OUTPUT_GRACE) {
        Ok(()) | Err(RecvTimeoutError::Disconnected) => Ok(()),
        Err(RecvTimeoutError::Timeout) => Err(JailError::OutputHeld),
    }
}
