//! The jail backend: each call runs in a `pincer-jail` jail (Landlock, seccomp, rlimits,
//! namespaces where the host allows them) on this host, without Docker. The executor
//! binary is its own jail helper (`main` calls `pincer_jail::run_helper_if_requested`).
//! The jail refuses, naming what is missing, when the kernel cannot enforce it.
//!
//! Background processes (the `process` tool) run in the same jail through
//! [`Jail::spawn`]: same profile, with the process's own timeout, an output ring of
//! [`crate::process::OUTPUT_RING_BYTES`] per stream, and a CPU limit as long as the
//! timeout (a server may be busy for most of its life).

use std::num::{NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pincer_jail::{
    Access, EgressProxy, ExitStatus, Jail, JailError, JailProcess, JailProfile, JailUser, Limits,
    Network, ProcessStatus, Workspace, WorkspaceDir,
};
use tokio::sync::Notify;

use crate::ExecutorError;
use crate::plan::ValidatedExecPlan;
use crate::process::OUTPUT_RING_BYTES;
use crate::sandbox::{
    BackgroundEnd, BackgroundOutput, BackgroundProcess, BackgroundState, ExecOutcome, Sandbox,
    SpawnBackground,
};
use crate::sandbox_egress::SandboxEgress;
use crate::workspace::{PreparedWorkspace, SandboxUser};

/// Runs calls in jails. Cheap to clone.
#[derive(Debug, Clone)]
pub struct JailBackend {
    jail: Arc<Jail>,
    user: SandboxUser,
    output_bytes: NonZeroUsize,
    egress: SandboxEgress,
}

impl JailBackend {
    /// Jails re-executing `helper` (normally `/proc/self/exe`), running commands as `user`,
    /// keeping `max_output_bytes` of stdout and of stderr each. Calls granted network
    /// egress are refused until [`Self::with_egress`] names the proxy.
    pub fn new(helper: PathBuf, user: SandboxUser, max_output_bytes: u32) -> Self {
        let output = usize::try_from(max_output_bytes).unwrap_or(usize::MAX);
        Self {
            jail: Arc::new(Jail::with_helper(helper)),
            user,
            output_bytes: NonZeroUsize::new(output).unwrap_or(NonZeroUsize::MIN),
            egress: SandboxEgress::Unavailable("this executor runs no egress proxy".into()),
        }
    }

    /// Commands granted egress reach the web through `egress`.
    pub fn with_egress(mut self, egress: SandboxEgress) -> Self {
        self.egress = egress;
        self
    }

    fn profile(
        &self,
        plan: &ValidatedExecPlan,
        workspace: &PreparedWorkspace,
    ) -> Result<JailProfile, ExecutorError> {
        let limits = Limits {
            output_bytes: self.output_bytes,
            ..Limits::default()
        };
        self.profile_with(plan, workspace, limits)
    }

    fn profile_with(
        &self,
        plan: &ValidatedExecPlan,
        workspace: &PreparedWorkspace,
        limits: Limits,
    ) -> Result<JailProfile, ExecutorError> {
        let access = if plan.workspace_read_only() {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        };
        let cwd = plan.cwd().to_string();
        let dir = WorkspaceDir::new(&workspace.agent_dir, access, &cwd)
            .map_err(|e| ExecutorError::Jail(e.to_string()))?;
        let user = JailUser::new(self.user.uid, self.user.gid)
            .map_err(|e| ExecutorError::Jail(e.to_string()))?;
        let mut builder = JailProfile::builder(plan.argv().iter().cloned());
        for (name, value) in plan.env() {
            builder = builder.env(name.clone(), value.clone());
        }
        if plan.egress() {
            let proxy = EgressProxy::new(self.egress.socket()?)
                .map_err(|e| ExecutorError::SandboxEgressUnavailable(e.to_string()))?;
            builder = builder.network(Network::Egress(proxy));
        }
        builder
            .workspace(Workspace::Dir(dir))
            .timeout(plan.timeout())
            .user(user)
            .limits(limits)
            .build()
            .map_err(|e| ExecutorError::Jail(e.to_string()))
    }
}

impl Sandbox for JailBackend {
    async fn run(
        &self,
        plan: ValidatedExecPlan,
        workspace: PreparedWorkspace,
    ) -> Result<ExecOutcome, ExecutorError> {
        let profile = self.profile(&plan, &workspace)?;
        let jail = Arc::clone(&self.jail);
        // The jail blocks for the whole call on its own thread.
        let outcome = tokio::task::spawn_blocking(move || jail.run(&profile))
            .await?
            .map_err(|e| ExecutorError::Jail(e.to_string()))?;
        let (exit_code, timed_out) = match outcome.status {
            ExitStatus::Exited(code) => (code, false),
            ExitStatus::Signaled(signal) => (128 + signal, false),
            ExitStatus::TimedOut => (124, true),
        };
        Ok(ExecOutcome {
            exit_code,
            output_truncated: outcome.stdout.truncated() || outcome.stderr.truncated(),
            stdout: outcome.stdout.bytes,
            stderr: outcome.stderr.bytes,
            timed_out,
            duration: outcome.elapsed,
        })
    }
}

impl SpawnBackground for JailBackend {
    fn spawn_background(
        &self,
        plan: &ValidatedExecPlan,
        workspace: &PreparedWorkspace,
        wake: Arc<Notify>,
    ) -> Result<Box<dyn BackgroundProcess>, ExecutorError> {
        let defaults = Limits::default();
        let cpu = NonZeroU64::new(plan.timeout().as_secs()).unwrap_or(defaults.cpu_seconds);
        let limits = Limits {
            output_bytes: NonZeroUsize::new(OUTPUT_RING_BYTES).unwrap_or(self.output_bytes),
            cpu_seconds: cpu.max(defaults.cpu_seconds),
            ..defaults
        };
        let profile = self.profile_with(plan, workspace, limits)?;
        let process = self
            .jail
            .spawn(&profile)
            .map_err(|e| ExecutorError::Jail(e.to_string()))?;
        process.on_change(move || wake.notify_waiters());
        Ok(Box::new(JailBackground {
            process,
            failed_after: OnceLock::new(),
        }))
    }
}

/// A background process in a jail.
struct JailBackground {
    process: JailProcess,
    /// When a jail failure was first seen (the jail does not time failures).
    failed_after: OnceLock<Duration>,
}

impl BackgroundProcess for JailBackground {
    fn take_output(&self) -> BackgroundOutput {
        let out = self.process.take_output();
        BackgroundOutput {
            stdout: out.stdout,
            stderr: out.stderr,
            stdout_dropped: out.stdout_dropped,
            stderr_dropped: out.stderr_dropped,
        }
    }

    fn write_stdin(&self, data: &[u8], wait: Duration) -> Result<usize, ExecutorError> {
        self.process.write_stdin(data, wait).map_err(|e| match e {
            JailError::StdinClosed => ExecutorError::StdinClosed,
            other => ExecutorError::Jail(other.to_string()),
        })
    }

    fn close_stdin(&self) {
        self.process.close_stdin();
    }

    fn kill(&self) {
        self.process.kill();
    }

    fn state(&self) -> BackgroundState {
        match self.process.try_wait() {
            Ok(None) => BackgroundState::Running,
            Ok(Some(outcome)) => BackgroundState::Ended {
                how: match outcome.status {
                    ProcessStatus::Exited(code) => BackgroundEnd::Exited(code),
                    ProcessStatus::Signaled(signal) => BackgroundEnd::Exited(128 + signal),
                    ProcessStatus::TimedOut => BackgroundEnd::TimedOut,
                    ProcessStatus::Killed => BackgroundEnd::Killed,
                },
                duration: outcome.elapsed,
            },
            Err(e) => BackgroundState::Ended {
                how: BackgroundEnd::Failed(e.to_string()),
                duration: *self
                    .failed_after
                    .get_or_init(|| self.process.started().elapsed()),
            },
        }
    }
}
