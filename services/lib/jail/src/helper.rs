//! The helper: the caller's binary re-executed with [`HELPER_MARKER`] as argv[1], so jail
//! setup runs in a fresh single-threaded process.
//!
//! The helper starts in its own session (the caller's `pre_exec` calls `setsid`), closes
//! every descriptor but stdin/stdout/stderr, the report pipe and (for a spawned command)
//! the command's stdin pipe, asks for SIGTERM if its caller dies, becomes a child
//! subreaper, reads the [`Plan`] from stdin, replaces stdin with the command's stdin pipe
//! or `/dev/null`, and forks the child ([`crate::child`]). It stays outside the jail as
//! the supervisor: it reports `Running` once the command was executed, enforces the
//! wall-clock timeout, kills the command's process group when the command ends, times out
//! or the caller sends [`KILL_SIGNAL`], then kills and reaps every remaining descendant
//! ([`crate::reap`]), and finally writes one [`HelperRecord`] to the report pipe.
//! Under network egress it also relays the command's proxy connections
//! ([`crate::egress`]) on threads of its own.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::{ForkResult, Pid};

use crate::wire::{
    ChildRecord, Enforcement, ExitStatus, HELPER_MARKER, HelperRecord, KILL_SIGNAL, MAX_PLAN_BYTES,
    Plan, SetupStep,
};
use crate::{child, egress, reap, sys};

/// If this process was started as the jail helper, runs the helper and exits; otherwise
/// returns at once. Call it first thing in `main` of every binary that runs jails (before
/// starting threads or an async runtime).
pub fn run_helper_if_requested() {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).map(OsString::as_os_str) != Some(OsStr::new(HELPER_MARKER)) {
        return;
    }
    let code = match helper_main(&args[2..]) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("pincer jail helper: {message}");
            2
        }
    };
    std::process::exit(code)
}

fn helper_main(args: &[OsString]) -> Result<(), String> {
    let (fd, parent, stdin) = match args {
        [fd, parent] => (fd, parent, None),
        [fd, parent, stdin] => (fd, parent, Some(stdin)),
        _ => {
            return Err(
                "usage: <binary> __pincer-jail-helper <report fd> <caller pid> [<stdin fd>]".into(),
            );
        }
    };
    let parent: i32 = parse(parent).ok_or("bad caller pid")?;
    let report = inherited(fd, "report")?;
    let stdin = stdin.map(|fd| inherited(fd, "stdin")).transpose()?;
    let mut keep = vec![report.as_raw_fd()];
    keep.extend(stdin.as_ref().map(AsRawFd::as_raw_fd));
    sys::close_fds_except(&keep);
    let mut report = File::from(report);
    let record = supervise(Pid::from_raw(parent), &mut report, stdin);
    send(&mut report, &record).map_err(|e| format!("writing the report: {e}"))
}

/// Takes the inherited descriptor named by `arg` and makes it close-on-exec (the child
/// gets the command's stdin through `dup2`, never under its original number).
fn inherited(arg: &OsStr, what: &str) -> Result<OwnedFd, String> {
    let fd: RawFd = parse(arg).ok_or_else(|| format!("bad {what} fd"))?;
    let owned = sys::take_inherited_fd(fd).map_err(|e| format!("{what} fd {fd}: {e}"))?;
    fcntl(&owned, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map_err(|e| format!("{what} fd {fd}: {e}"))?;
    Ok(owned)
}

fn send(report: &mut File, record: &HelperRecord) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(record)?;
    line.push(b'\n');
    report.write_all(&line)
}

fn parse<T: std::str::FromStr>(s: &OsStr) -> Option<T> {
    s.to_str()?.parse().ok()
}

fn failed(step: SetupStep, detail: impl ToString) -> HelperRecord {
    HelperRecord::SetupFailed {
        step,
        detail: detail.to_string(),
    }
}

fn supervise(parent: Pid, report: &mut File, stdin: Option<OwnedFd>) -> HelperRecord {
    let started = Instant::now();
    let signals = match prepare(parent) {
        Ok(Some(fd)) => fd,
        Ok(None) => return HelperRecord::Cancelled,
        Err(e) => return failed(SetupStep::Helper, e),
    };
    let piped = stdin.is_some();
    let plan = match read_plan(stdin) {
        Ok(plan) => plan,
        Err(e) => return failed(SetupStep::Plan, e),
    };
    let deadline = started + plan.profile.timeout();
    let (record_r, record_w) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return failed(SetupStep::Helper, e),
    };
    let proxy = plan
        .profile
        .network()
        .egress()
        .map(|p| p.socket().to_owned());
    let (handoff, child_handoff) = match proxy.as_ref().map(|_| egress::channel()).transpose() {
        Ok(Some((helper_end, child_end))) => (Some(helper_end), Some(child_end)),
        Ok(None) => (None, None),
        Err(e) => return failed(SetupStep::Network, e),
    };
    let me = nix::unistd::getpid();
    let child = match sys::fork_single_threaded() {
        Err(e) => return failed(SetupStep::Fork, e),
        Ok(ForkResult::Child) => {
            drop(record_r);
            drop(signals);
            drop(handoff);
            child::run(&plan, me, record_w, child_handoff)
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(record_w);
    drop(child_handoff);
    if piped {
        // Only the command (and what it starts) may hold its stdin, so that the caller's
        // writes fail once they are all gone. Best effort: the helper exits right after
        // them anyway.
        let _ = File::open("/dev/null").map(nix::unistd::dup2_stdin);
    }
    // Best effort: the caller uses it only to kill the group should this helper hang.
    let _ = send(
        report,
        &HelperRecord::Started {
            pid: child.as_raw(),
        },
    );

    let applied = match read_child_records(&record_r, signals.as_fd(), deadline) {
        Ok(applied) => applied,
        Err(record) => {
            let _ = reap::end_command(child);
            return record;
        }
    };
    // The command runs; its connections to the relay wait in the listener's backlog.
    if let (Some(handoff), Some(proxy)) = (handoff, proxy) {
        let relayed = egress::receive(&handoff)
            .and_then(|listener| egress::relay(listener, proxy).map_err(|e| e.to_string()));
        if let Err(e) = relayed {
            let _ = reap::end_command(child);
            return failed(SetupStep::Network, e);
        }
    }
    // Best effort, like `Started`: a spawning caller waits for it; `run` ignores it.
    let _ = send(
        report,
        &HelperRecord::Running {
            enforcement: applied.clone(),
        },
    );
    let ended = wait_for(child, &signals, deadline);
    let (status, sweep) = reap::end_command(child);
    if !sweep.complete {
        return failed(
            SetupStep::Deadline,
            "processes left by the command could not all be killed",
        );
    }
    let status = match (ended, status) {
        (Ended::Signal, _) => return HelperRecord::Cancelled,
        (Ended::Killed, _) => {
            return HelperRecord::Killed {
                enforcement: applied,
                leftovers_killed: sweep.killed,
            };
        }
        (Ended::Deadline, _) => ExitStatus::TimedOut,
        (Ended::Exited, Ok(WaitStatus::Exited(_, code))) => ExitStatus::Exited(code),
        (Ended::Exited, Ok(WaitStatus::Signaled(_, sig, _))) => ExitStatus::Signaled(sig as i32),
        (Ended::Exited, other) => {
            return failed(
                SetupStep::Helper,
                format!("unexpected wait result {other:?}"),
            );
        }
    };
    finished(status, applied, sweep.killed)
}

fn finished(status: ExitStatus, enforcement: Enforcement, leftovers_killed: u32) -> HelperRecord {
    HelperRecord::Finished {
        status,
        enforcement,
        leftovers_killed,
    }
}

/// Parent-death signal, blocked stop signals (and [`KILL_SIGNAL`]) on a signalfd, child
/// subreaper. `Ok(None)`: the caller is already gone.
fn prepare(parent: Pid) -> Result<Option<SignalFd>, Errno> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
    if nix::unistd::getppid() != parent {
        return Ok(None);
    }
    let mut mask = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, KILL_SIGNAL] {
        mask.add(s);
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)?;
    let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
    nix::sys::prctl::set_child_subreaper(true)?;
    Ok(Some(fd))
}

/// Reads the plan from stdin, then makes stdin what the command gets: its stdin pipe when
/// the caller passed one, else `/dev/null`.
fn read_plan(stdin: Option<OwnedFd>) -> Result<Plan, String> {
    let mut raw = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_PLAN_BYTES)
        .read_to_end(&mut raw)
        .map_err(|e| e.to_string())?;
    let plan: Plan = serde_json::from_slice(&raw).map_err(|e| e.to_string())?;
    match stdin {
        Some(pipe) => nix::unistd::dup2_stdin(pipe).map_err(|e| e.to_string())?,
        None => {
            let null = File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
            nix::unistd::dup2_stdin(null).map_err(|e| e.to_string())?;
        }
    }
    Ok(plan)
}

/// Reads the child's setup records until the pipe closes (exec succeeded or the child
/// gave up). `Err` carries the record to report.
fn read_child_records(
    pipe: &OwnedFd,
    signals: BorrowedFd<'_>,
    deadline: Instant,
) -> Result<Enforcement, HelperRecord> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match wait_readable(&[pipe.as_fd(), signals], deadline) {
            Ok(Wake::Ready(0)) => {}
            Ok(Wake::Ready(_)) => return Err(HelperRecord::Cancelled),
            Ok(Wake::Deadline) => {
                return Err(failed(SetupStep::Deadline, "setup outlasted the timeout"));
            }
            Err(e) => return Err(failed(SetupStep::Helper, e)),
        }
        match nix::unistd::read(pipe, &mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(e) => return Err(failed(SetupStep::Helper, e)),
        }
    }
    let mut applied = None;
    for line in buf.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<ChildRecord>(line) {
            Ok(ChildRecord::Applied(e)) => applied = Some(e),
            Ok(ChildRecord::Failed { step, detail }) => {
                return Err(HelperRecord::SetupFailed { step, detail });
            }
            Ok(ChildRecord::ExecFailed { program, detail }) => {
                return Err(HelperRecord::ExecFailed { program, detail });
            }
            Err(e) => return Err(failed(SetupStep::Process, format!("bad record: {e}"))),
        }
    }
    applied.ok_or_else(|| failed(SetupStep::Process, "the child died during setup"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Exited,
    Deadline,
    /// A stop signal (SIGTERM, SIGINT, SIGHUP): cancelled.
    Signal,
    /// [`KILL_SIGNAL`]: the caller asked for the command to be killed.
    Killed,
}

/// Which signal woke the helper.
fn stop_reason(signals: &SignalFd) -> Ended {
    match signals.read_signal() {
        Ok(Some(info)) if info.ssi_signo == KILL_SIGNAL as u32 => Ended::Killed,
        _ => Ended::Signal,
    }
}

enum Wake {
    Ready(usize),
    Deadline,
}

fn wait_readable(fds: &[BorrowedFd<'_>], deadline: Instant) -> Result<Wake, Errno> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Wake::Deadline);
        }
        let ms = i32::try_from(left.as_millis().saturating_add(1)).unwrap_or(i32::MAX);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        let mut pfds: Vec<PollFd<'_>> = fds
            .iter()
            .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
            .collect();
        match poll(&mut pfds, timeout) {
            Ok(0) | Err(Errno::EINTR) => {}
            Ok(_) => {
                if let Some(i) = pfds
                    .iter()
                    .position(|p| p.revents().is_some_and(|r| !r.is_empty()))
                {
                    return Ok(Wake::Ready(i));
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Waits until the child exits (left unreaped, so its pid and process group id stay
/// reserved), the deadline passes, or a stop or kill signal arrives.
fn wait_for(child: Pid, signals: &SignalFd, deadline: Instant) -> Ended {
    if let Ok(pidfd) = sys::pidfd_open(child.as_raw()) {
        return match wait_readable(&[pidfd.as_fd(), signals.as_fd()], deadline) {
            Ok(Wake::Ready(0)) => Ended::Exited,
            Ok(Wake::Ready(_)) => stop_reason(signals),
            Ok(Wake::Deadline) | Err(_) => Ended::Deadline,
        };
    }
    // Kernels before 5.3: poll the child's state.
    let tick = std::time::Duration::from_millis(5);
    loop {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::Pid(child), flags) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
            Ok(_) | Err(_) => return Ended::Exited,
        }
        match wait_readable(&[signals.as_fd()], deadline.min(Instant::now() + tick)) {
            Ok(Wake::Ready(_)) => return stop_reason(signals),
            Ok(Wake::Deadline) if Instant::now() >= deadline => return Ended::Deadline,
            Ok(Wake::Deadline) | Err(_) => {}
        }
    }
}
