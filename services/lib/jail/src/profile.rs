//! What one jailed call may do: a validated [`JailProfile`].
//!
//! Every field is checked once, when the profile is built (or deserialised in the helper),
//! so the rest of the crate never sees an illegal state: the workspace root is an
//! existing, canonical directory; the working directory is a plain relative path that stays
//! inside it; argv is non-empty and free of NUL bytes; environment names are plain
//! identifiers and `HOME`/`TMPDIR` belong to the jail; limits are non-zero; core files are
//! always off; the network is always `none`; the user is never root.

use std::collections::BTreeMap;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `PATH` inside the jail unless the profile sets another.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// `LANG` inside the jail unless the profile sets another.
pub const DEFAULT_LANG: &str = "C.UTF-8";
/// The uid and gid the jail drops to when it is started as root (`nobody`).
pub const NOBODY: u32 = 65534;
/// Longest accepted timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// Timeout unless the profile sets another.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Most argv entries accepted.
pub const MAX_ARGS: usize = 4096;
/// Most bytes of argv plus environment accepted (well under the kernel's `ARG_MAX`).
pub const MAX_ARG_BYTES: usize = 256 * 1024;
/// Longest accepted working directory, in bytes.
pub const MAX_CWD_BYTES: usize = 4096;
/// Environment names the jail sets to the call's private temporary directory.
pub const SCRATCH_ENV: &[&str] = &["HOME", "TMPDIR"];
/// Environment names the jail sets itself (or, `NO_PROXY`, keeps unset): the caller may
/// not give them.
pub const RESERVED_ENV: &[&str] = &[
    "HOME",
    "TMPDIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// Why a profile was refused. Each message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// argv is empty or its program name is.
    #[error("the command is empty; give the program and its arguments")]
    EmptyCommand,
    /// An argument or environment value holds a NUL byte.
    #[error("{0} contains a NUL byte")]
    Nul(String),
    /// argv plus environment is too large.
    #[error("the command and environment are {0} bytes; the limit is {MAX_ARG_BYTES}")]
    TooLarge(usize),
    /// Too many arguments.
    #[error("the command has {0} arguments; the limit is {MAX_ARGS}")]
    TooManyArgs(usize),
    /// An environment name is not `[A-Za-z_][A-Za-z0-9_]*`.
    #[error("environment name {0:?} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)")]
    EnvName(String),
    /// `HOME`, `TMPDIR` or a proxy variable was given.
    #[error(
        "environment variable {0} is set by the jail (HOME and TMPDIR to its private temporary directory, the proxy variables by --network egress); leave it out"
    )]
    ReservedEnv(String),
    /// The timeout is zero or too long.
    #[error("timeout {0:?} is out of range; give 1 ms to 24 h")]
    Timeout(Duration),
    /// The workspace is not an existing directory.
    #[error("workspace {path}: {reason}")]
    Workspace {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The working directory is not a plain relative path inside the workspace.
    #[error("cwd {cwd:?}: {reason}")]
    Cwd {
        /// The cwd given.
        cwd: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The egress proxy's socket path is unusable.
    #[error("egress proxy socket {path}: {reason}")]
    ProxySocket {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// uid or gid 0 was asked for.
    #[error("the jail never runs as root (uid/gid 0); pick an unprivileged uid and gid")]
    RootUser,
}

/// How the jailed process may use the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    /// Read and execute only.
    ReadOnly,
    /// Read, write, create, remove, execute.
    ReadWrite,
}

/// A workspace directory the jail exposes: canonical, existing, with a working directory
/// inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceDir {
    root: PathBuf,
    access: Access,
    cwd: Vec<String>,
}

impl WorkspaceDir {
    /// `root` (must exist and be a directory; symbolic links are resolved now) with
    /// `access`, running in `cwd`: a path relative to `root` (`""` for the root itself)
    /// that must exist and must not leave `root`, also through symbolic links.
    pub fn new(root: &Path, access: Access, cwd: &str) -> Result<Self, ProfileError> {
        let bad = |reason: String| ProfileError::Workspace {
            path: root.to_owned(),
            reason,
        };
        let canonical = root
            .canonicalize()
            .map_err(|e| bad(format!("cannot resolve it: {e}")))?;
        if !canonical.is_dir() {
            return Err(bad("not a directory".into()));
        }
        let parts = parse_cwd(cwd)?;
        let dir = parts.iter().fold(canonical.clone(), |p, c| p.join(c));
        let resolved = dir.canonicalize().map_err(|_| ProfileError::Cwd {
            cwd: cwd.to_owned(),
            reason: "does not exist in the workspace",
        })?;
        if !resolved.starts_with(&canonical) {
            return Err(ProfileError::Cwd {
                cwd: cwd.to_owned(),
                reason: "leaves the workspace through a symbolic link",
            });
        }
        if !resolved.is_dir() {
            return Err(ProfileError::Cwd {
                cwd: cwd.to_owned(),
                reason: "is not a directory",
            });
        }
        Ok(Self {
            root: canonical,
            access,
            cwd: parts,
        })
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The access granted.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The working directory (absolute, below [`root`](Self::root)).
    pub fn cwd(&self) -> PathBuf {
        self.cwd.iter().fold(self.root.clone(), |p, c| p.join(c))
    }

    /// The working directory relative to the root, `/`-joined (`""` for the root).
    pub fn relative_cwd(&self) -> String {
        self.cwd.join("/")
    }
}

/// Normalises a relative cwd: drops `.` and empty parts, folds `a/..`, refuses absolute
/// paths, climbing above the root and NUL bytes.
fn parse_cwd(raw: &str) -> Result<Vec<String>, ProfileError> {
    let refuse = |reason| ProfileError::Cwd {
        cwd: raw.to_owned(),
        reason,
    };
    if raw.contains('\0') {
        return Err(refuse("contains a NUL byte"));
    }
    if raw.len() > MAX_CWD_BYTES {
        return Err(refuse("is too long"));
    }
    if raw.starts_with('/') {
        return Err(refuse("is absolute; give a path relative to the workspace"));
    }
    let mut parts: Vec<String> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(refuse("climbs above the workspace with \"..\""));
                }
            }
            plain => parts.push(plain.to_owned()),
        }
    }
    Ok(parts)
}

/// Which workspace the jail exposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workspace {
    /// None: the command runs in its private temporary directory and sees no workspace.
    None,
    /// A directory, read-only or read-write.
    Dir(WorkspaceDir),
}

/// Resource limits (setrlimit). Core files are always disabled; there is no field for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// `RLIMIT_CPU`: CPU seconds (SIGXCPU at the limit, SIGKILL one second later).
    pub cpu_seconds: NonZeroU64,
    /// `RLIMIT_AS`: bytes of virtual address space.
    pub address_space_bytes: NonZeroU64,
    /// `RLIMIT_FSIZE`: largest file the process may write, in bytes (SIGXFSZ beyond).
    pub file_size_bytes: NonZeroU64,
    /// `RLIMIT_NOFILE`: open file descriptors.
    pub open_files: NonZeroU64,
    /// `RLIMIT_NPROC`: processes and threads of the jail's uid (counted per uid, so
    /// concurrent jails with the same uid share it).
    pub processes: NonZeroU64,
    /// Bytes of stdout and of stderr kept each; the rest is read and dropped.
    pub output_bytes: NonZeroUsize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu_seconds: NonZeroU64::MIN.saturating_add(59),
            address_space_bytes: NonZeroU64::MIN.saturating_add((1 << 30) - 1),
            file_size_bytes: NonZeroU64::MIN.saturating_add((64 << 20) - 1),
            open_files: NonZeroU64::MIN.saturating_add(255),
            processes: NonZeroU64::MIN.saturating_add(127),
            output_bytes: NonZeroUsize::MIN.saturating_add(64 * 1024 - 1),
        }
    }
}

/// Network access.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Network {
    /// No sockets but `AF_UNIX`, no TCP bind/connect, and (where the host allows) an empty
    /// network namespace.
    #[default]
    None,
    /// The web through a guarded proxy only: the command runs in a private network
    /// namespace whose only interface is loopback, where [`EGRESS_PROXY_ADDR`] is relayed
    /// by the helper (outside the jail) to the proxy's UNIX socket; `HTTP_PROXY` and
    /// friends point there. Nothing else is reachable: there is no route out of the
    /// namespace. A host that refuses the network namespace refuses the call.
    Egress(EgressProxy),
}

impl Network {
    /// The proxy, for [`Network::Egress`].
    pub fn egress(&self) -> Option<&EgressProxy> {
        match self {
            Self::None => None,
            Self::Egress(proxy) => Some(proxy),
        }
    }
}

/// Where the jail's command reaches the guarded proxy, inside its own network namespace.
pub const EGRESS_PROXY_ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 3128);
/// The proxy URL the command gets in `HTTP_PROXY`, `HTTPS_PROXY` and their lower-case
/// twins under [`Network::Egress`].
pub const EGRESS_PROXY_URL: &str = "http://127.0.0.1:3128";
/// The variables set to [`EGRESS_PROXY_URL`] under [`Network::Egress`].
pub const PROXY_ENV: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];
/// The longest UNIX socket path the kernel takes (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The guarded proxy's listening UNIX socket (on the host, outside the jail; only the
/// helper connects to it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PathBuf", into = "PathBuf")]
pub struct EgressProxy {
    socket: PathBuf,
}

impl EgressProxy {
    /// The proxy listening at `socket`: an absolute path short enough for `sun_path`.
    pub fn new(socket: impl Into<PathBuf>) -> Result<Self, ProfileError> {
        let socket = socket.into();
        let bad = |reason| {
            Err(ProfileError::ProxySocket {
                path: socket.clone(),
                reason,
            })
        };
        if !socket.is_absolute() {
            return bad("give an absolute path");
        }
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return bad("longer than the 107 bytes a UNIX socket path may have");
        }
        if socket.as_os_str().as_encoded_bytes().contains(&0) {
            return bad("contains a NUL byte");
        }
        Ok(Self { socket })
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl TryFrom<PathBuf> for EgressProxy {
    type Error = ProfileError;
    fn try_from(p: PathBuf) -> Result<Self, Self::Error> {
        Self::new(p)
    }
}

impl From<EgressProxy> for PathBuf {
    fn from(p: EgressProxy) -> Self {
        p.socket
    }
}

/// The unprivileged user the command runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "(u32, u32)", into = "(u32, u32)")]
pub struct JailUser {
    uid: u32,
    gid: u32,
}

impl JailUser {
    /// `uid:gid`; never 0.
    pub fn new(uid: u32, gid: u32) -> Result<Self, ProfileError> {
        if uid == 0 || gid == 0 {
            return Err(ProfileError::RootUser);
        }
        Ok(Self { uid, gid })
    }

    /// `nobody` (65534:65534).
    pub fn nobody() -> Self {
        Self {
            uid: NOBODY,
            gid: NOBODY,
        }
    }

    /// [`nobody`](Self::nobody) when this process is root (it can switch users), else this
    /// process's own uid:gid (it cannot).
    pub fn for_this_process() -> Self {
        let (uid, gid) = (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        Self::new(uid, gid).unwrap_or_else(|_| Self::nobody())
    }

    /// The uid.
    pub fn uid(self) -> u32 {
        self.uid
    }

    /// The gid.
    pub fn gid(self) -> u32 {
        self.gid
    }
}

impl TryFrom<(u32, u32)> for JailUser {
    type Error = ProfileError;
    fn try_from((uid, gid): (u32, u32)) -> Result<Self, Self::Error> {
        Self::new(uid, gid)
    }
}

impl From<JailUser> for (u32, u32) {
    fn from(u: JailUser) -> Self {
        (u.uid, u.gid)
    }
}

/// One validated call: what to run, where, as whom, for how long, with what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawProfile", into = "RawProfile")]
pub struct JailProfile {
    argv: Vec<String>,
    workspace: Workspace,
    env: BTreeMap<String, String>,
    timeout: Duration,
    limits: Limits,
    network: Network,
    user: JailUser,
}

impl JailProfile {
    /// Starts a profile for `argv` (program first; a name without `/` is looked up in the
    /// jail's `PATH`). Defaults: no workspace, [`DEFAULT_TIMEOUT`], [`Limits::default`],
    /// [`JailUser::for_this_process`], `PATH` and `LANG` only.
    pub fn builder<I, S>(argv: I) -> JailProfileBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        JailProfileBuilder {
            argv: argv.into_iter().map(Into::into).collect(),
            workspace: Workspace::None,
            env: BTreeMap::new(),
            timeout: DEFAULT_TIMEOUT,
            limits: Limits::default(),
            network: Network::None,
            user: JailUser::for_this_process(),
        }
    }

    /// The command, program first.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The workspace.
    pub fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    /// The environment the command gets, except `HOME` and `TMPDIR` (set per call to the
    /// jail's private temporary directory).
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// The wall-clock timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The resource limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The user the command runs as.
    pub fn user(&self) -> JailUser {
        self.user
    }
}

/// Builds a [`JailProfile`]; [`build`](Self::build) validates.
#[derive(Debug, Clone)]
pub struct JailProfileBuilder {
    argv: Vec<String>,
    workspace: Workspace,
    env: BTreeMap<String, String>,
    timeout: Duration,
    limits: Limits,
    network: Network,
    user: JailUser,
}

impl JailProfileBuilder {
    /// The network (default: none).
    pub fn network(mut self, network: Network) -> Self {
        self.network = network;
        self
    }

    /// The workspace (default: none).
    pub fn workspace(mut self, workspace: Workspace) -> Self {
        self.workspace = workspace;
        self
    }

    /// The wall-clock timeout (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The resource limits (default [`Limits::default`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The user (default [`JailUser::for_this_process`]).
    pub fn user(mut self, user: JailUser) -> Self {
        self.user = user;
        self
    }

    /// Adds (or, for `PATH` and `LANG`, replaces) an environment variable.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Validates everything.
    pub fn build(self) -> Result<JailProfile, ProfileError> {
        let Some(program) = self.argv.first() else {
            return Err(ProfileError::EmptyCommand);
        };
        if program.is_empty() {
            return Err(ProfileError::EmptyCommand);
        }
        if self.argv.len() > MAX_ARGS {
            return Err(ProfileError::TooManyArgs(self.argv.len()));
        }
        if let Some(i) = self.argv.iter().position(|a| a.contains('\0')) {
            return Err(ProfileError::Nul(format!("argument {i}")));
        }
        let mut env = BTreeMap::from([
            ("PATH".to_owned(), DEFAULT_PATH.to_owned()),
            ("LANG".to_owned(), DEFAULT_LANG.to_owned()),
        ]);
        for (name, value) in self.env {
            if RESERVED_ENV.contains(&name.as_str()) {
                return Err(ProfileError::ReservedEnv(name));
            }
            if !is_env_name(&name) {
                return Err(ProfileError::EnvName(name));
            }
            if value.contains('\0') {
                return Err(ProfileError::Nul(format!("environment variable {name}")));
            }
            env.insert(name, value);
        }
        let size: usize = self.argv.iter().map(|a| a.len() + 1).sum::<usize>()
            + env
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>();
        if size > MAX_ARG_BYTES {
            return Err(ProfileError::TooLarge(size));
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(ProfileError::Timeout(self.timeout));
        }
        Ok(JailProfile {
            argv: self.argv,
            workspace: self.workspace,
            env,
            timeout: self.timeout,
            limits: self.limits,
            network: self.network,
            user: self.user,
        })
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// The wire form of a profile (helper plan). Deserialising it re-runs every check.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    argv: Vec<String>,
    workspace: Option<RawWorkspace>,
    env: BTreeMap<String, String>,
    timeout_ms: u64,
    limits: Limits,
    network: Network,
    user: JailUser,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkspace {
    root: PathBuf,
    access: Access,
    cwd: String,
}

impl From<JailProfile> for RawProfile {
    fn from(p: JailProfile) -> Self {
        let workspace = match p.workspace {
            Workspace::None => None,
            Workspace::Dir(d) => Some(RawWorkspace {
                cwd: d.relative_cwd(),
                root: d.root,
                access: d.access,
            }),
        };
        Self {
            argv: p.argv,
            workspace,
            env: p.env,
            timeout_ms: u64::try_from(p.timeout.as_millis()).unwrap_or(u64::MAX),
            limits: p.limits,
            network: p.network,
            user: p.user,
        }
    }
}

impl TryFrom<RawProfile> for JailProfile {
    type Error = ProfileError;
    fn try_from(raw: RawProfile) -> Result<Self, Self::Error> {
        let workspace = match raw.workspace {
            None => Workspace::None,
            Some(w) => Workspace::Dir(WorkspaceDir::new(&w.root, w.access, &w.cwd)?),
        };
        let mut builder = JailProfile::builder(raw.argv)
            .workspace(workspace)
            .timeout(Duration::from_millis(raw.timeout_ms))
            .limits(raw.limits)
            .network(raw.network)
            .user(raw.user);
        for (k, v) in raw.env {
            builder = builder.env(k, v);
        }
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(argv: &[&str]) -> JailProfileBuilder {
        JailProfile::builder(argv.iter().copied())
    }

    #[test]
    fn defaults_are_minimal() {
        let p = profile(&["true"]).build().unwrap();
        assert_eq!(
            p.env().keys().collect::<Vec<_>>(),
            ["LANG", "PATH"],
            "only PATH and LANG (HOME/TMPDIR are added per call)"
        );
        assert_eq!(p.network(), &Network::None);
        assert_eq!(p.workspace(), &Workspace::None);
        assert_eq!(p.limits().output_bytes.get(), 64 * 1024);
        assert_eq!(p.limits().processes.get(), 128);
        assert_eq!(p.limits().cpu_seconds.get(), 60);
    }

    #[test]
    fn refuses_bad_commands_and_env() {
        assert_eq!(profile(&[]).build(), Err(ProfileError::EmptyCommand));
        assert_eq!(profile(&[""]).build(), Err(ProfileError::EmptyCommand));
        assert!(matches!(
            profile(&["a", "b\0c"]).build(),
            Err(ProfileError::Nul(_))
        ));
        for name in ["HOME", "TMPDIR"] {
            assert_eq!(
                profile(&["x"]).env(name, "/").build(),
                Err(ProfileError::ReservedEnv(name.into()))
            );
        }
        for name in ["", "1A", "A-B", "A=B", "A B"] {
            assert_eq!(
                profile(&["x"]).env(name, "v").build(),
                Err(ProfileError::EnvName(name.into()))
            );
        }
        assert!(matches!(
            profile(&["x"]).env("A", "a\0").build(),
            Err(ProfileError::Nul(_))
        ));
        let huge = "x".repeat(MAX_ARG_BYTES);
        assert!(matches!(
            profile(&["x", &huge]).build(),
            Err(ProfileError::TooLarge(_))
        ));
        let p = profile(&["x"])
            .env("PATH", "/bin")
            .env("FOO_1", "v")
            .build();
        let p = p.unwrap();
        assert_eq!(p.env()["PATH"], "/bin");
        assert_eq!(p.env()["FOO_1"], "v");
    }

    #[test]
    fn refuses_bad_timeouts_and_root() {
        for t in [Duration::ZERO, MAX_TIMEOUT + Duration::from_millis(1)] {
            assert_eq!(
                profile(&["x"]).timeout(t).build(),
                Err(ProfileError::Timeout(t))
            );
        }
        assert_eq!(JailUser::new(0, 5), Err(ProfileError::RootUser));
        assert_eq!(JailUser::new(5, 0), Err(ProfileError::RootUser));
        assert_ne!(JailUser::for_this_process().uid(), 0);
    }

    #[test]
    fn cwd_stays_inside_the_workspace() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ws/a/b")).unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), dir.path().join("ws/a/out"))
            .unwrap();
        let ws = dir.path().join("ws");
        let ok = WorkspaceDir::new(&ws, Access::ReadWrite, "a/./b/../b/").unwrap();
        assert_eq!(ok.relative_cwd(), "a/b");
        assert_eq!(ok.cwd(), ws.canonicalize().unwrap().join("a/b"));
        for bad in ["/etc", "..", "a/../..", "a/out", "missing", "a\0"] {
            assert!(
                matches!(
                    WorkspaceDir::new(&ws, Access::ReadOnly, bad),
                    Err(ProfileError::Cwd { .. })
                ),
                "{bad:?} accepted"
            );
        }
        assert!(matches!(
            WorkspaceDir::new(&dir.path().join("nope"), Access::ReadOnly, ""),
            Err(ProfileError::Workspace { .. })
        ));
    }

    #[test]
    fn the_wire_form_revalidates() {
        let dir = tempfile::tempdir().unwrap();
        let ws = WorkspaceDir::new(dir.path(), Access::ReadOnly, "").unwrap();
        let p = profile(&["ls", "-l"])
            .workspace(Workspace::Dir(ws))
            .env("X", "1")
            .timeout(Duration::from_millis(1500))
            .build()
            .unwrap();
        let json = serde_json::to_string(&p).unwrap();
        let back: JailProfile = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        let tampered = json.replace("\"X\"", "\"HOME\"");
        assert!(serde_json::from_str::<JailProfile>(&tampered).is_err());
        let rooted = json.replace("\"user\":[", "\"user\":[0,0],\"x\":[");
        assert!(serde_json::from_str::<JailProfile>(&rooted).is_err());
    }
}
