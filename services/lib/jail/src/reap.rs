//! Killing everything the command left behind.
//!
//! The helper is a child subreaper (`PR_SET_CHILD_SUBREAPER`): when a process below it
//! dies, that process's children are re-parented to the helper instead of init. So a
//! daemon that double-forks and calls `setsid` (leaving the command's process group)
//! still ends up as the helper's child. The sweep repeats "SIGKILL every child,
//! reap" until the helper has no children left; each round turns the next generation into
//! children of the helper. Leaving the tree would take `ptrace` or a new pid namespace,
//! both refused by the seccomp filter.
//!
//! Guarantee: when the helper reports, no process descended from the command is alive,
//! unless the sweep gave up after [`SWEEP_LIMIT`] (reported by the caller as an error).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// How long the sweep may take before giving up.
pub const SWEEP_LIMIT: Duration = Duration::from_secs(10);

/// The result of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// Distinct live processes killed besides the command itself.
    pub killed: u32,
    /// All children were reaped.
    pub complete: bool,
}

/// Ends the command `main` (a child of this process, possibly already exited but not yet
/// reaped, so its pid and process group id cannot have been reused): counts what else is
/// alive in its process group or among this process's children, SIGKILLs the group and
/// the command, reaps the command, then sweeps every remaining descendant.
pub fn end_command(main: Pid) -> (Result<WaitStatus, Errno>, Sweep) {
    let me = std::process::id();
    let main_raw = main.as_raw();
    let mut killed: HashSet<i32> = processes()
        .into_iter()
        .filter(|p| p.pid != main_raw && !p.zombie && (p.pgrp == main_raw || p.ppid == me))
        .map(|p| p.pid)
        .collect();
    let _ = killpg(main, Signal::SIGKILL);
    // Harmless when the command already exited: its exit status is kept.
    let _ = kill(main, Signal::SIGKILL);
    let status = loop {
        match waitpid(main, Some(WaitPidFlag::__WALL)) {
            Err(Errno::EINTR) | Ok(WaitStatus::StillAlive) => {}
            other => break other,
        }
    };
    let sweep = kill_descendants(me, &mut killed);
    (status, sweep)
}

/// Kills and reaps every child of this process (and, round by round, their descendants).
fn kill_descendants(me: u32, killed: &mut HashSet<i32>) -> Sweep {
    let started = Instant::now();
    let mut pause = Duration::from_micros(200);
    let done = |killed: &HashSet<i32>, complete| Sweep {
        killed: u32::try_from(killed.len()).unwrap_or(u32::MAX),
        complete,
    };
    loop {
        for p in processes()
            .into_iter()
            .filter(|p| p.ppid == me && !p.zombie)
        {
            if kill(Pid::from_raw(p.pid), Signal::SIGKILL).is_ok() {
                killed.insert(p.pid);
            }
        }
        // Reap whatever has died.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(_) | Err(Errno::EINTR) => {}
                Err(Errno::ECHILD) => return done(killed, true),
                Err(_) => break,
            }
        }
        if started.elapsed() > SWEEP_LIMIT {
            return done(killed, false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

struct Proc {
    pid: i32,
    ppid: u32,
    pgrp: i32,
    zombie: bool,
}

/// Every process visible in `/proc`.
fn processes() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (state, ppid, pgrp) = parse_stat(&stat)?;
            Some(Proc {
                pid,
                ppid,
                pgrp,
                zombie: state == 'Z',
            })
        })
        .collect()
}

/// `(state, ppid, pgrp)` from a `/proc/<pid>/stat` line. The command name may hold spaces
/// and parentheses, so fields are counted after the last `)`.
fn parse_stat(stat: &str) -> Option<(char, u32, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, ppid, pgrp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names_parse() {
        assert_eq!(
            parse_stat("123 (a) b) (c) S 42 120 123 0 -1"),
            Some(('S', 42, 120))
        );
        assert_eq!(parse_stat("7 (z) Z 1 7"), Some(('Z', 1, 7)));
        assert_eq!(parse_stat("garbage"), None);
    }
}
