//! The jail backend: each call runs in a `pincer-jail` jail (Landlock, seccomp, rlimits,
//! namespaces where the host allows them) on this host, without Docker. The executor
//! binary is its own jail helper (`main` calls `pincer_jail::run_helper_if_requested`).
//! The jail refuses, naming what is missing, when the kernel cannot enforce it.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;

use pincer_jail::{
    Access, ExitStatus, Jail, JailProfile, JailUser, Limits, Workspace, WorkspaceDir,
};

use crate::ExecutorError;
use crate::plan::ValidatedExecPlan;
use crate::sandbox::{ExecOutcome, Sandbox};
use crate::workspace::{PreparedWorkspace, SandboxUser};

/// Runs calls in jails. Cheap to clone.
#[derive(Debug, Clone)]
pub struct JailBackend {
    jail: Arc<Jail>,
    user: SandboxUser,
    output_bytes: NonZeroUsize,
}

impl JailBackend {
    /// Jails re-executing `helper` (normally `/proc/self/exe`), running commands as `user`,
    /// keeping `max_output_bytes` of stdout and of stderr each.
    pub fn new(helper: PathBuf, user: SandboxUser, max_output_bytes: u32) -> Self {
        let output = usize::try_from(max_output_bytes).unwrap_or(usize::MAX);
        Self {
            jail: Arc::new(Jail::with_helper(helper)),
            user,
            output_bytes: NonZeroUsize::new(output).unwrap_or(NonZeroUsize::MIN),
        }
    }

    fn profile(
        &self,
        plan: &ValidatedExecPlan,
        workspace: &PreparedWorkspace,
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
        builder
            .workspace(Workspace::Dir(dir))
            .timeout(plan.timeout())
            .user(user)
            .limits(Limits {
                output_bytes: self.output_bytes,
                ..Limits::default()
            })
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
