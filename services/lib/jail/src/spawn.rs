//! The caller's side: checks the host (fail closed), prepares the call's private
//! directory, starts the helper, feeds it the plan, captures output, and enforces a
//! backstop deadline in case the helper itself hangs.
//!
//! [`Jail::run`] blocks until the command and everything it started are gone; async
//! callers run it on a blocking thread (`spawn_blocking`). That thread must live for the
//! whole call: the helper's parent-death signal fires when the *thread* that started it
//! exits, which is also what makes the helper clean up if its caller dies.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::capture::{Captured, capture};
use crate::error::JailError;
use crate::probe::{HostSupport, Missing};
use crate::profile::{JailProfile, JailUser};
use crate::reap::SWEEP_LIMIT;
use crate::sys;
use crate::wire::{Enforcement, ExitStatus, HELPER_MARKER, HelperRecord, Plan};

/// How long past the timeout (plus the helper's sweep limit) the caller waits for the
/// helper before killing it.
pub const BACKSTOP_GRACE: Duration = Duration::from_secs(5);
/// How long the caller waits for the output pipes to close once the helper has ended.
pub const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// How a jailed command ended, with its capped output and what was enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailOutcome {
    /// Exit code, killing signal, or timeout.
    pub status: ExitStatus,
    /// Standard output (capped).
    pub stdout: Captured,
    /// Standard error (capped).
    pub stderr: Captured,
    /// What was applied.
    pub enforcement: Enforcement,
    /// Processes still alive when the command ended (daemons, background jobs), killed.
    pub leftovers_killed: u32,
    /// Wall-clock time of the whole call.
    pub elapsed: Duration,
}

/// Runs profiles. Cheap to create; holds no state between calls.
#[derive(Debug, Clone)]
pub struct Jail {
    helper: PathBuf,
    scratch_base: PathBuf,
}

impl Jail {
    /// Uses this binary as the helper (`/proc/self/exe`); its `main` must call
    /// [`crate::run_helper_if_requested`] first.
    pub fn current_exe() -> Self {
        Self::with_helper("/proc/self/exe")
    }

    /// Uses `helper` (a binary whose `main` calls [`crate::run_helper_if_requested`]).
    pub fn with_helper(helper: impl Into<PathBuf>) -> Self {
        Self {
            helper: helper.into(),
            scratch_base: std::env::temp_dir(),
        }
    }

    /// Creates each call's private directory under `dir` (default: the system temporary
    /// directory). The jail user must be able to reach it.
    pub fn scratch_base(mut self, dir: impl Into<PathBuf>) -> Self {
        self.scratch_base = dir.into();
        self
    }

    /// Runs `profile` and waits for it. Refuses (without running anything) when the host
    /// cannot enforce the jail.
    pub fn run(&self, profile: &JailProfile) -> Result<JailOutcome, JailError> {
        let started = Instant::now();
        check_host(profile)?;
        let scratch = Scratch::create(&self.scratch_base, profile.user())?;
        let result = self.run_in(profile, scratch.path(), started);
        let removed = scratch.remove();
        let outcome = result?;
        removed.map_err(|source| JailError::Io {
            what: "removing the jail's private directory",
            source,
        })?;
        Ok(outcome)
    }

    fn run_in(
        &self,
        profile: &JailProfile,
        scratch: &Path,
        started: Instant,
    ) -> Result<JailOutcome, JailError> {
        let plan = plan_bytes(profile, scratch)?;
        let (report_r, report_w) = report_pipe()?;
        let mut helper = self.start_helper(&report_w, None)?;
        drop(report_w);
        let helper_pid = pid_of(&helper);

        // The helper reads the whole plan before anything else; if it died early the
        // write fails and its report (or lack of one) explains why.
        if let Some(mut stdin) = helper.stdin.take() {
            let _ = stdin.write_all(&plan);
        }
        let cap = profile.limits().output_bytes.get();
        let stdout = helper.stdout.take().map(|s| reader(s, cap));
        let stderr = helper.stderr.take().map(|s| reader(s, cap));
        let records = report_lines(report_r);

        let backstop = started + profile.timeout() + SWEEP_LIMIT + BACKSTOP_GRACE;
        let mut lines = Vec::new();
        let exited = wait_until(&mut helper, helper_pid, backstop);
        lines.extend(records.try_iter());
        if !exited {
            let _ = killpg(helper_pid, Signal::SIGKILL);
            let _ = kill(helper_pid, Signal::SIGKILL);
            if let Some(pid) = started_pid(&lines) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = helper.wait();
            return Err(JailError::HelperHung {
                grace: SWEEP_LIMIT + BACKSTOP_GRACE,
            });
        }
        let status = helper.wait().map_err(|source| JailError::Io {
            what: "waiting for the jail helper",
            source,
        })?;
        while let Ok(line) = records.recv_timeout(OUTPUT_GRACE) {
            lines.push(line);
        }
        let stdout = collect(stdout, &lines)?;
        let stderr = collect(stderr, &lines)?;

        match final_record(&lines) {
            None => Err(JailError::HelperLost {
                status: status.to_string(),
                stderr: String::from_utf8_lossy(&stderr.bytes).trim().to_owned(),
            }),
            Some(record) => match record? {
                HelperRecord::Finished {
                    status,
                    enforcement,
                    leftovers_killed,
                } => Ok(JailOutcome {
                    status,
                    stdout,
                    stderr,
                    enforcement,
                    leftovers_killed,
                    elapsed: started.elapsed(),
                }),
                HelperRecord::SetupFailed { step, detail } => {
                    Err(JailError::Setup { step, detail })
                }
                HelperRecord::ExecFailed { program, detail } => {
                    Err(JailError::Exec { program, detail })
                }
                HelperRecord::Cancelled
                | HelperRecord::Killed { .. }
                | HelperRecord::Started { .. }
                | HelperRecord::Running { .. } => Err(JailError::Cancelled),
            },
        }
    }

    /// Starts the helper with piped stdin (the plan), stdout and stderr, inheriting the
    /// report pipe's write end and, for a spawned command, its stdin pipe's read end.
    pub(crate) fn start_helper(
        &self,
        report_w: &OwnedFd,
        stdin_r: Option<&OwnedFd>,
    ) -> Result<std::process::Child, JailError> {
        let mut cmd = Command::new(&self.helper);
        cmd.arg(HELPER_MARKER)
            .arg(report_w.as_raw_fd().to_string())
            .arg(std::process::id().to_string());
        if let Some(fd) = stdin_r {
            cmd.arg(fd.as_raw_fd().to_string());
        }
        cmd.env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        sys::prepare_helper_command(
            &mut cmd,
            report_w.as_raw_fd(),
            stdin_r.map(AsRawFd::as_raw_fd),
        );
        cmd.spawn().map_err(|source| JailError::HelperStart {
            exe: self.helper.clone(),
            source,
        })
    }

    /// Where each call's private directory is created.
    pub(crate) fn scratch_dir(&self) -> &Path {
        &self.scratch_base
    }
}

/// Refuses (fail closed) when this host cannot enforce `profile`.
pub(crate) fn check_host(profile: &JailProfile) -> Result<(), JailError> {
    let host = HostSupport::probe();
    let mut missing = host.missing();
    let user = profile.user();
    if host.euid != 0 && host.euid != user.uid() {
        missing.push(Missing::User {
            wanted: user.uid(),
            euid: host.euid,
        });
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(JailError::Unenforceable(missing))
    }
}

/// The plan the helper reads, serialised.
pub(crate) fn plan_bytes(profile: &JailProfile, scratch: &Path) -> Result<Vec<u8>, JailError> {
    Ok(serde_json::to_vec(&Plan {
        profile: profile.clone(),
        scratch: scratch.to_owned(),
    })?)
}

/// The report pipe: `(read end, write end above stdio)`, both close-on-exec.
pub(crate) fn report_pipe() -> Result<(OwnedFd, OwnedFd), JailError> {
    let io = |what| move |source| JailError::Io { what, source };
    let (report_r, report_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| io("creating the report pipe")(e.into()))?;
    let report_w = above_stdio(report_w).map_err(io("moving the report pipe"))?;
    Ok((report_r, report_w))
}

/// The helper's pid (it fits: Linux pids are at most 2^22).
pub(crate) fn pid_of(helper: &std::process::Child) -> Pid {
    Pid::from_raw(i32::try_from(helper.id()).unwrap_or(i32::MAX))
}

/// The helper's report, line by line, read on a thread of its own.
pub(crate) fn report_lines(report_r: OwnedFd) -> mpsc::Receiver<String> {
    let (record_tx, records) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(std::fs::File::from(report_r)).lines() {
            let Ok(line) = line else { break };
            if record_tx.send(line).is_err() {
                break;
            }
        }
    });
    records
}

/// The helper's last record that says how the call ended (not `Started` or `Running`).
pub(crate) fn final_record(lines: &[String]) -> Option<Result<HelperRecord, serde_json::Error>> {
    lines
        .iter()
        .rev()
        .map(|l| serde_json::from_str::<HelperRecord>(l))
        .find(|r| {
            !matches!(
                r,
                Ok(HelperRecord::Started { .. } | HelperRecord::Running { .. })
            )
        })
}

type Reader = mpsc::Receiver<std::io::Result<Captured>>;

fn reader(stream: impl std::io::Read + Send + 'static, cap: usize) -> Reader {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(capture(stream, cap));
    });
    rx
}

/// Waits for a reader; once the helper has ended every writer should be gone. If one is
/// not, kill the command's process group once more and give it another grace period.
fn collect(reader: Option<Reader>, lines: &[String]) -> Result<Captured, JailError> {
    let Some(rx) = reader else {
        return Ok(Captured::default());
    };
    let result = match rx.recv_timeout(OUTPUT_GRACE) {
        Ok(r) => r,
        Err(_) => {
            if let Some(pid) = started_pid(lines) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            rx.recv_timeout(OUTPUT_GRACE)
                .map_err(|_| JailError::OutputHeld)?
        }
    };
    result.map_err(|source| JailError::Io {
        what: "reading the command's output",
        source,
    })
}

pub(crate) fn started_pid(lines: &[String]) -> Option<i32> {
    lines.iter().find_map(|l| match serde_json::from_str(l) {
        Ok(HelperRecord::Started { pid }) => Some(pid),
        _ => None,
    })
}

/// Whether the helper exited before `deadline` (not reaped).
pub(crate) fn wait_until(helper: &mut std::process::Child, pid: Pid, deadline: Instant) -> bool {
    if let Ok(pidfd) = sys::pidfd_open(pid.as_raw()) {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let ms = i32::try_from(left.as_millis().saturating_add(1)).unwrap_or(i32::MAX);
            let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            match poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(n) if n > 0 => return true,
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => break,
            }
        }
    }
    loop {
        match helper.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => return false,
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Makes sure the descriptor is not 0, 1 or 2 (where the child's stdio goes).
pub(crate) fn above_stdio(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    let raw = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(3))?;
    sys::take_inherited_fd(raw).map_err(Into::into)
}

/// The call's private directory (`HOME`, `TMPDIR`, and the cwd without a workspace):
/// `mkdtemp` (0700) under the base, owned by the jail user, removed afterwards.
pub(crate) struct Scratch {
    path: PathBuf,
    removed: bool,
}

impl Scratch {
    pub(crate) fn create(base: &Path, user: JailUser) -> Result<Self, JailError> {
        let fail = |source: std::io::Error| JailError::Scratch {
            dir: base.to_owned(),
            source,
        };
        let path =
            nix::unistd::mkdtemp(&base.join("pincer-jail-XXXXXX")).map_err(|e| fail(e.into()))?;
        let scratch = Self {
            path,
            removed: false,
        };
        if nix::unistd::geteuid().is_root() {
            nix::unistd::chown(
                &scratch.path,
                Some(nix::unistd::Uid::from_raw(user.uid())),
                Some(nix::unistd::Gid::from_raw(user.gid())),
            )
            .map_err(|e| fail(e.into()))?;
        }
        Ok(scratch)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn remove(mut self) -> std::io::Result<()> {
        self.removed = true;
        remove_tree(&self.path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.removed {
            let _ = remove_tree(&self.path);
        }
    }
}

/// `remove_dir_all` (which never follows symbolic links), after making directories the
/// command locked (e.g. mode 000) accessible again.
fn remove_tree(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            unlock_dirs(path);
            std::fs::remove_dir_all(path)
        }
    }
}

fn unlock_dirs(dir: &Path) {
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                unlock_dirs(&entry.path());
            }
        }
    }
}
