//! Agents' workspaces on the host: `<root>/<agent_id>`, owned by the sandbox user so the
//! process in the sandbox can write there, plus the call's cwd below it.
//!
//! Directories below the root are created and opened with `openat(O_NOFOLLOW)` one
//! component at a time, so a symbolic link planted by an earlier sandboxed command can never
//! make the executor create or chown anything outside the workspace.

use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, fstat, mkdirat};
use nix::unistd::{Gid, Uid, fchown, getegid, geteuid};

use crate::ExecutorError;
use crate::plan::{AgentId, ValidatedExecPlan};

/// The uid and gid sandboxes run as when the executor runs as root.
pub const SANDBOX_UID: u32 = 10001;

/// The numeric user a sandboxed process runs as (never root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxUser {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl SandboxUser {
    /// [`SANDBOX_UID`] when this process is root (it can chown workspaces), otherwise this
    /// process's own uid:gid (so the workspaces it creates are writable in the sandbox).
    pub fn for_this_process() -> Self {
        let (uid, gid) = (geteuid().as_raw(), getegid().as_raw());
        if uid == 0 {
            Self {
                uid: SANDBOX_UID,
                gid: SANDBOX_UID,
            }
        } else {
            Self { uid, gid }
        }
    }

    /// The `uid:gid` form Docker takes.
    pub fn docker_user(self) -> String {
        format!("{}:{}", self.uid, self.gid)
    }
}

/// The host directory holding every agent's workspace.
#[derive(Debug, Clone)]
pub struct Workspaces {
    root: PathBuf,
    owner: SandboxUser,
}

/// A workspace ready for one call.
#[derive(Debug, Clone)]
pub struct PreparedWorkspace {
    /// The agent.
    pub agent_id: AgentId,
    /// `<root>/<agent_id>` on this host.
    pub agent_dir: PathBuf,
}

impl Workspaces {
    /// Workspaces under `root`, owned by `owner`.
    pub fn new(root: PathBuf, owner: SandboxUser) -> Self {
        Self { root, owner }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The user sandboxes run as.
    pub fn owner(&self) -> SandboxUser {
        self.owner
    }

    /// Creates `<root>/<agent_id>` and the plan's cwd below it when missing, owned by the
    /// sandbox user. Blocking (file system calls).
    pub fn prepare(&self, plan: &ValidatedExecPlan) -> Result<PreparedWorkspace, ExecutorError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source: std::io::Error| ExecutorError::Workspace { path, source }
        };
        // 0711: the sandbox user may pass through to its own workspace (the jail enters it
        // as that user) but cannot list the root; each workspace below is its own, 0700.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.root)
            .map_err(io(&self.root))?;
        let root = nix::fcntl::open(
            &self.root,
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io(&self.root)(e.into()))?;

        let agent_id = plan.agent_id().clone();
        let agent_dir = self.root.join(agent_id.as_str());
        let mut dir = match self.open_or_create(&root, agent_id.as_str()) {
            Ok(fd) => fd,
            Err(DirError::Open(e)) => return Err(io(&agent_dir)(e.into())),
            Err(DirError::Chown(e)) => return Err(self.ownership(&agent_dir, e)),
        };
        let mut path = agent_dir.clone();
        for part in plan.cwd().components() {
            path.push(part);
            dir = match self.open_or_create(&dir, part) {
                Ok(fd) => fd,
                Err(DirError::Open(Errno::ELOOP | Errno::ENOTDIR)) => {
                    return Err(ExecutorError::CwdNotDirectory {
                        cwd: plan.cwd().to_string(),
                    });
                }
                Err(DirError::Open(e)) => return Err(io(&path)(e.into())),
                Err(DirError::Chown(e)) => return Err(self.ownership(&path, e)),
            };
        }
        Ok(PreparedWorkspace {
            agent_id,
            agent_dir,
        })
    }

    /// Opens directory `name` in `parent` without following a symbolic link, creating it
    /// (0700) first if missing, and gives it to the sandbox user.
    fn open_or_create(&self, parent: &OwnedFd, name: &str) -> Result<OwnedFd, DirError> {
        match mkdirat(parent, name, Mode::S_IRWXU) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(DirError::Open(e)),
        }
        let fd = openat(
            parent,
            name,
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(DirError::Open)?;
        let stat = fstat(&fd).map_err(DirError::Open)?;
        if stat.st_uid != self.owner.uid || stat.st_gid != self.owner.gid {
            fchown(
                &fd,
                Some(Uid::from_raw(self.owner.uid)),
                Some(Gid::from_raw(self.owner.gid)),
            )
            .map_err(DirError::Chown)?;
        }
        Ok(fd)
    }

    fn ownership(&self, path: &Path, errno: Errno) -> ExecutorError {
        ExecutorError::WorkspaceOwnership {
            path: path.to_owned(),
            user: self.owner.docker_user(),
            source: errno.into(),
        }
    }
}

/// Which step on a workspace directory failed.
enum DirError {
    /// Creating or opening it (or it is a symlink / not a directory).
    Open(Errno),
    /// Giving it to the sandbox user.
    Chown(Errno),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::{FixedClock, testing};
    use crate::plan::{ExecLimits, ExecPlan};
    use pincer_proto::v1::{ExecRequest, exec_request};
    use std::time::Duration;

    fn plan(cwd: &str) -> ValidatedExecPlan {
        ExecPlan::from(ExecRequest {
            grant: Some(testing::grant(&["exec"], "s", "main", i64::MAX)),
            session_key: "s".into(),
            command: Some(exec_request::Command::Shell("true".into())),
            cwd: cwd.into(),
            timeout_ms: 0,
            env: Default::default(),
        })
        .validate(
            ExecLimits {
                max_timeout: Duration::from_secs(5),
            },
            &testing::keys(),
            &FixedClock(0),
        )
        .unwrap()
    }

    fn me() -> SandboxUser {
        SandboxUser {
            uid: geteuid().as_raw(),
            gid: getegid().as_raw(),
        }
    }

    #[test]
    fn creates_agent_dir_and_cwd() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = Workspaces::new(tmp.path().join("ws"), me());
        let prepared = ws.prepare(&plan("a/b")).unwrap();
        assert_eq!(prepared.agent_dir, tmp.path().join("ws/main"));
        assert!(tmp.path().join("ws/main/a/b").is_dir());
        // Idempotent.
        ws.prepare(&plan("a/b")).unwrap();
    }

    #[test]
    fn refuses_symlinks_inside_the_workspace() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let ws = Workspaces::new(tmp.path().join("ws"), me());
        ws.prepare(&plan("")).unwrap();
        std::os::unix::fs::symlink(&outside, tmp.path().join("ws/main/link")).unwrap();
        std::fs::write(tmp.path().join("ws/main/file"), b"x").unwrap();
        for cwd in ["link", "link/new", "file", "file/x"] {
            assert!(
                matches!(
                    ws.prepare(&plan(cwd)),
                    Err(ExecutorError::CwdNotDirectory { .. })
                ),
                "{cwd}"
            );
        }
        assert!(!outside.join("new").exists());
    }

    #[test]
    fn root_gets_a_non_root_sandbox_user() {
        let user = SandboxUser::for_this_process();
        assert_ne!(user.uid, 0);
        assert_ne!(user.gid, 0);
    }
}
