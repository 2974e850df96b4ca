//! Fixtures shared by the jail's integration tests: a directory tree with the workspace,
//! "another session's" workspace and a config file, owned so that only the jail (not file
//! permissions) stands between the jailed command and them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pincer_jail::{
    Access, Jail, JailOutcome, JailProfile, JailUser, Workspace, WorkspaceDir,
    profile::JailProfileBuilder,
};

/// A secret that must never appear in a jailed command's output.
pub const CANARY: &str = "pincer-canary-7f3a9c";

pub fn jail() -> Jail {
    Jail::with_helper(env!("CARGO_BIN_EXE_pincer-jail-helper"))
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `base/` (0777, so file permissions never stop a write there),
/// `base/ws/` (the workspace), `base/other/secret.txt` (another session's workspace) and
/// `base/state/pincer.json5` (a config file); everything owned by the jail user and
/// world-readable, so only the jail can keep the command out.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub base: PathBuf,
    pub ws: PathBuf,
    pub other: PathBuf,
    pub secret: PathBuf,
    pub config: PathBuf,
    pub user: JailUser,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with_user(JailUser::for_this_process())
    }

    pub fn with_user(user: JailUser) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let ws = base.join("ws");
        let other = base.join("other");
        let state = base.join("state");
        for d in [&ws, &other, &state] {
            std::fs::create_dir(d).unwrap();
        }
        let secret = other.join("secret.txt");
        std::fs::write(&secret, format!("{CANARY}-other-session\n")).unwrap();
        let config = state.join("pincer.json5");
        std::fs::write(&config, format!("{{ token: \"{CANARY}-config\" }}\n")).unwrap();
        let fx = Self {
            dir,
            base: base.clone(),
            ws,
            other,
            secret,
            config,
            user,
        };
        for p in [&fx.ws, &fx.other, &state, &fx.secret, &fx.config] {
            fx.give(p);
        }
        chmod(&base, 0o777);
        for d in [&fx.ws, &fx.other, &state] {
            chmod(d, 0o755);
        }
        for f in [&fx.secret, &fx.config] {
            chmod(f, 0o644);
        }
        fx
    }

    /// Hands `path` to the jail user (when root).
    pub fn give(&self, path: &Path) {
        if is_root() {
            nix::unistd::chown(
                path,
                Some(nix::unistd::Uid::from_raw(self.user.uid())),
                Some(nix::unistd::Gid::from_raw(self.user.gid())),
            )
            .unwrap();
        }
    }

    pub fn workspace(&self, access: Access) -> Workspace {
        Workspace::Dir(WorkspaceDir::new(&self.ws, access, "").unwrap())
    }

    /// A read-write profile in the workspace with a 20 s timeout.
    pub fn profile<S: Into<String>>(
        &self,
        argv: impl IntoIterator<Item = S>,
    ) -> JailProfileBuilder {
        JailProfile::builder(argv)
            .workspace(self.workspace(Access::ReadWrite))
            .timeout(Duration::from_secs(20))
            .user(self.user)
    }

    pub fn run<S: Into<String>>(&self, argv: impl IntoIterator<Item = S>) -> JailOutcome {
        jail().run(&self.profile(argv).build().unwrap()).unwrap()
    }

    pub fn sh(&self, script: &str) -> JailOutcome {
        self.run(["/bin/sh", "-c", script])
    }

    pub fn py(&self, code: &str) -> JailOutcome {
        self.run(["/usr/bin/python3", "-c", code])
    }
}

pub fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

pub fn out(o: &JailOutcome) -> String {
    String::from_utf8_lossy(&o.stdout.bytes).into_owned()
}

pub fn err(o: &JailOutcome) -> String {
    String::from_utf8_lossy(&o.stderr.bytes).into_owned()
}

/// Python that calls `syscall(nr, args…)` and prints `OK` or the errno name.
pub fn syscall_py(nr: libc::c_long, args: &[i64]) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("ctypes.c_long({a})")).collect();
    format!(
        "import ctypes, errno\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         r = libc.syscall(ctypes.c_long({nr}){sep}{args})\n\
         e = ctypes.get_errno()\n\
         print('OK' if r != -1 else errno.errorcode.get(e, str(e)))\n",
        sep = if args.is_empty() { "" } else { ", " },
        args = args.join(", "),
    )
}

/// Runs Python outside any jail (for controls that are harmless by construction, e.g. a
/// system call with an invalid pointer), stdin from /dev/null.
pub fn bare_py(code: &str) -> String {
    let out = std::process::Command::new("/usr/bin/python3")
        .args(["-c", code])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Whether a process with this pid exists (zombies included).
pub fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// Pids of live processes owned by `uid`.
pub fn processes_of(uid: u32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("Uid:"))
                        .map(|l| l.split_whitespace().nth(1) == Some(&uid.to_string()))
                })
                .unwrap_or(false)
        })
        .collect()
}
