//! What crosses process boundaries: the plan (caller → helper, on the helper's stdin), the
//! child's setup record (child → helper, on a close-on-exec pipe) and the helper's report
//! (helper → caller, on an inherited pipe). All JSON, one value per line. A spawned
//! command's stdin is a separate pipe, passed to the helper as a descriptor number
//! ([`HELPER_MARKER`] `<report fd> <caller pid> [<stdin fd>]`).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::profile::JailProfile;

/// argv[1] that makes a binary act as the jail helper.
pub const HELPER_MARKER: &str = "__pincer-jail-helper";
/// Largest plan the helper reads.
pub const MAX_PLAN_BYTES: u64 = 4 << 20;
/// The signal a caller sends the helper to kill a spawned command and everything it
/// started (SIGTERM, SIGINT and SIGHUP cancel; this one reports [`HelperRecord::Killed`]).
pub const KILL_SIGNAL: nix::sys::signal::Signal = nix::sys::signal::Signal::SIGUSR1;

/// What the helper is asked to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The validated profile (re-validated on deserialisation).
    pub profile: JailProfile,
    /// The call's private temporary directory (created by the caller).
    pub scratch: PathBuf,
}

/// A namespace the jail entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Namespace {
    /// User namespace (only when not started as root).
    User,
    /// Network namespace: no interfaces but a down loopback.
    Net,
    /// System V IPC namespace.
    Ipc,
    /// Host name namespace.
    Uts,
}

/// What was actually applied to the command, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enforcement {
    /// The command ran in its own session; the helper is its child subreaper.
    pub session_and_subreaper: bool,
    /// Namespaces entered (empty when the host refused them).
    pub namespaces: Vec<Namespace>,
    /// Why namespaces were not entered, when they were not.
    pub namespaces_refused: Option<String>,
    /// Resource limits set (always, or the call fails).
    pub rlimits: bool,
    /// The uid the command ran as.
    pub uid: u32,
    /// The gid the command ran as (supplementary groups: none when started as root).
    pub gid: u32,
    /// `PR_SET_NO_NEW_PRIVS` set.
    pub no_new_privs: bool,
    /// Landlock ABI the ruleset was built for.
    pub landlock_abi: u8,
    /// TCP bind/connect denied by Landlock (ABI 4+).
    pub landlock_tcp: bool,
    /// Abstract sockets and signals scoped by Landlock (ABI 6+).
    pub landlock_scopes: bool,
    /// The seccomp filter installed.
    pub seccomp: bool,
    /// The web only through the guarded proxy's relay ([`crate::Network::Egress`]);
    /// false: no network at all.
    #[serde(default)]
    pub egress_relay: bool,
}

/// A step of the jail's setup, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetupStep {
    /// Reading the plan.
    Plan,
    /// Helper housekeeping (signals, subreaper, descriptors).
    Helper,
    /// Forking the child.
    Fork,
    /// Parent-death signal, process group, signal mask.
    Process,
    /// Entering namespaces.
    Namespaces,
    /// Network egress (loopback, the relay's socket).
    Network,
    /// setrlimit.
    Rlimits,
    /// setgroups/setgid/setuid.
    User,
    /// chdir.
    Cwd,
    /// PR_SET_NO_NEW_PRIVS.
    NoNewPrivs,
    /// Landlock.
    Landlock,
    /// Seccomp.
    Seccomp,
    /// The setup did not finish within the timeout.
    Deadline,
}

impl fmt::Display for SetupStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::Plan => "reading the plan",
            Self::Helper => "preparing the helper",
            Self::Fork => "fork",
            Self::Process => "process setup",
            Self::Namespaces => "namespaces",
            Self::Network => "network egress",
            Self::Rlimits => "resource limits",
            Self::User => "dropping to the jail user",
            Self::Cwd => "entering the working directory",
            Self::NoNewPrivs => "PR_SET_NO_NEW_PRIVS",
            Self::Landlock => "Landlock",
            Self::Seccomp => "seccomp",
            Self::Deadline => "setup deadline",
        };
        f.write_str(s)
    }
}

/// Child → helper, one per line, before `execve` (the pipe closes on exec).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ChildRecord {
    /// Setup finished; `execve` comes next.
    Applied(Enforcement),
    /// Setup failed; the command never ran.
    Failed {
        /// Where.
        step: SetupStep,
        /// Why.
        detail: String,
    },
    /// `execve` failed for every candidate path.
    ExecFailed {
        /// argv[0].
        program: String,
        /// Why (errno text).
        detail: String,
    },
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatus {
    /// It exited with this code.
    Exited(i32),
    /// A signal killed it (e.g. 9 SIGKILL, 24 SIGXCPU, 25 SIGXFSZ).
    Signaled(i32),
    /// The wall-clock timeout passed; the jail killed it and all its descendants.
    TimedOut,
}

/// Helper → caller, on the report pipe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum HelperRecord {
    /// The command's process (also its process group id).
    Started {
        /// pid.
        pid: i32,
    },
    /// Setup finished and the command was executed; it runs now.
    Running {
        /// What was applied.
        enforcement: Enforcement,
    },
    /// The command ran.
    Finished {
        /// How it ended.
        status: ExitStatus,
        /// What was applied.
        enforcement: Enforcement,
        /// Descendants still alive after it ended (daemons, background jobs), all killed.
        leftovers_killed: u32,
    },
    /// The command never ran.
    SetupFailed {
        /// Where.
        step: SetupStep,
        /// Why.
        detail: String,
    },
    /// The program could not be executed.
    ExecFailed {
        /// argv[0].
        program: String,
        /// Why.
        detail: String,
    },
    /// The helper was told to stop (SIGTERM/SIGINT/SIGHUP or its caller died); everything
    /// was killed.
    Cancelled,
    /// The caller asked for the command to be killed ([`KILL_SIGNAL`]); it and everything it
    /// started were killed.
    Killed {
        /// What was applied.
        enforcement: Enforcement,
        /// Descendants killed besides the command itself.
        leftovers_killed: u32,
    },
}
