//! `pincer sandbox exec` runs one command in a sandbox exactly as the exec tool will
//! (same profile, limits and enforcement), prints its output and exits with its status;
//! `pincer sandbox explain` reports what this host lets the jail enforce.
//!
//! Backends: the jail (`pincer-jail` on this host) and Docker (the executor's own Docker
//! backend: the request goes through the executor's plan validation and runs in one
//! throwaway container with the executor's posture and seccomp profile; the image comes
//! from `--image`, the engine from `DOCKER_HOST` or the local socket).
//!
//! Exit status of `exec`, for both backends: the command's own code; 128+N when signal N
//! killed it; 124 on timeout; 127 when the program could not be executed; 125 when the
//! sandbox refused or failed to set up (the command did not run). An interrupted Docker
//! call (SIGINT/SIGTERM) removes its container and exits 128+N.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use pincer_executor::grant::{StaticKeys, sign_claims};
use pincer_executor::workspace::PreparedWorkspace;
use pincer_executor::{
    DockerBackend, DockerSettings, ExecLimits, ExecOutcome, ExecPlan, ExecutorError, Sandbox,
    SandboxUser, SystemClock, ValidatedExecPlan,
};
use pincer_jail::{
    Access, ExitStatus, HostSupport, Jail, JailError, JailOutcome, JailProfile, JailUser, Network,
    Workspace, WorkspaceDir,
};
use pincer_proto::v1::{
    Argv, ExecRequest, GrantClaims, NetworkAccess, SandboxGrant, SandboxScope, WorkspaceAccess,
    exec_request,
};

use crate::CliError;

/// Exit status when the sandbox refused or failed (the command did not run).
pub const EXIT_SANDBOX_FAILED: u8 = 125;
/// Exit status when the program could not be executed.
pub const EXIT_NOT_EXECUTABLE: u8 = 127;
/// Exit status on timeout.
pub const EXIT_TIMED_OUT: u8 = 124;
/// Exit status for a usage error (as clap's).
pub const EXIT_USAGE: u8 = 2;

/// The Docker backend's defaults, the same as the executor's (`executor.docker.image`,
/// `memoryMb`, `pidsLimit`, `cpus`).
pub const DOCKER_IMAGE: &str = "pincer-sandbox:latest";
/// Memory (and memory+swap) limit of a Docker sandbox, in bytes (`memoryMb` 512).
pub const DOCKER_MEMORY_BYTES: u64 = 512 * 1024 * 1024;
/// Process limit of a Docker sandbox (`pidsLimit` 128).
pub const DOCKER_PIDS_LIMIT: u32 = 128;
/// CPU limit of a Docker sandbox in nano-CPUs (`cpus` 1.0).
pub const DOCKER_NANO_CPUS: u64 = 1_000_000_000;
/// Bytes of stdout and of stderr kept (as the jail path).
pub const OUTPUT_CAP: usize = 64 * 1024;

/// `pincer sandbox`.
#[derive(Debug, Clone, Subcommand)]
pub enum SandboxCommand {
    /// Run one command in a sandbox, print its output, exit with its status.
    Exec(SandboxExecArgs),
    /// Report what this host's kernel lets the jail enforce, and what it would enforce.
    Explain,
}

/// `pincer sandbox exec`.
#[derive(Debug, Clone, Args)]
pub struct SandboxExecArgs {
    /// Sandbox backend.
    #[arg(long, value_enum, default_value_t = Backend::Jail)]
    pub backend: Backend,
    /// Workspace directory the command may use (default: none; it runs in a private
    /// temporary directory).
    #[arg(long)]
    pub workspace: Option<PathBuf>,
    /// Workspace access (default: rw with --workspace).
    #[arg(long, value_enum, requires = "workspace")]
    pub access: Option<AccessArg>,
    /// Working directory, relative to the workspace.
    #[arg(long, default_value = "", requires = "workspace")]
    pub cwd: String,
    /// Network access: `none`, or `egress` (HTTP(S) through the guarded proxy only; jail
    /// backend).
    #[arg(long, value_enum, default_value_t = NetworkArg::None)]
    pub network: NetworkArg,
    /// With `--network egress`: re-allow a blocked network for the proxy (CIDR,
    /// repeatable), like `tools.webFetch.allowNetworks`.
    #[arg(long = "allow-network", value_name = "CIDR", requires = "network")]
    pub allow_network: Vec<pincer_runtime::cidr::IpCidr>,
    /// With `--network egress`: a port the proxy may connect to (repeatable; default 80
    /// and 443), like `tools.exec.egressPorts`.
    #[arg(long = "egress-port", value_name = "PORT", requires = "network")]
    pub egress_port: Vec<u16>,
    /// Wall-clock timeout in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Sandbox image (Docker backend only; default pincer-sandbox:latest, built by
    /// images/sandbox/build.sh).
    #[arg(long)]
    pub image: Option<String>,
    /// The command and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Sandbox backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Landlock + seccomp + rlimits + dropped uid (+ namespaces where allowed); no Docker.
    Jail,
    /// A throwaway container with the executor's posture (needs a Docker engine and the
    /// sandbox image).
    Docker,
}

/// Workspace access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccessArg {
    /// Read and execute only.
    Ro,
    /// Read and write.
    Rw,
}

/// Network access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetworkArg {
    /// No network.
    None,
    /// HTTP(S) through the guarded proxy (the SSRF guard of `pincer web fetch`) only.
    Egress,
}

/// Runs a `pincer sandbox` command.
pub async fn run(command: SandboxCommand) -> Result<ExitCode, CliError> {
    match command {
        SandboxCommand::Explain => {
            let host = tokio::task::spawn_blocking(|| HostSupport::probe().probe_namespaces())
                .await
                .map_err(std::io::Error::other)?;
            print!("{}", pincer_jail::explain::explain(&host));
            Ok(ExitCode::SUCCESS)
        }
        SandboxCommand::Exec(args) => exec(args).await,
    }
}

async fn exec(args: SandboxExecArgs) -> Result<ExitCode, CliError> {
    if args.network == NetworkArg::None
        && (!args.allow_network.is_empty() || !args.egress_port.is_empty())
    {
        eprintln!("pincer: --allow-network and --egress-port go with --network egress");
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    match args.backend {
        Backend::Docker => return exec_docker(args).await,
        Backend::Jail if args.image.is_some() => {
            eprintln!("pincer: --image is for --backend docker");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
        Backend::Jail => {}
    }
    let proxy = match CallProxy::for_args(&args) {
        Ok(proxy) => proxy,
        Err(code) => return Ok(code),
    };
    let network = match proxy
        .as_ref()
        .map(|p| pincer_jail::EgressProxy::new(&p.socket))
    {
        None => Network::None,
        Some(Ok(p)) => Network::Egress(p),
        Some(Err(e)) => {
            eprintln!("pincer: {e}");
            return Ok(ExitCode::from(EXIT_SANDBOX_FAILED));
        }
    };
    let profile = match profile(&args, network) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("pincer: {e}");
            return Ok(ExitCode::from(EXIT_SANDBOX_FAILED));
        }
    };
    warn_if_unwritable(&profile);
    // Blocking, and on a thread that lives for the whole call (see pincer_jail::spawn).
    let result = tokio::task::spawn_blocking(move || Jail::current_exe().run(&profile))
        .await
        .map_err(std::io::Error::other)?;
    drop(proxy);
    Ok(report(result))
}

/// The guarded proxy of one `--network egress` call, on a UNIX socket in a private
/// temporary directory; stopped and removed on drop.
struct CallProxy {
    socket: PathBuf,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl CallProxy {
    /// The call's proxy under `--network egress`, none otherwise; on failure, the exit
    /// code (after saying why).
    fn for_args(args: &SandboxExecArgs) -> Result<Option<Self>, ExitCode> {
        match args.network {
            NetworkArg::None => Ok(None),
            NetworkArg::Egress => Self::start(args).map(Some).map_err(|e| {
                eprintln!("pincer: cannot start the egress proxy: {e}");
                ExitCode::from(EXIT_SANDBOX_FAILED)
            }),
        }
    }

    fn start(args: &SandboxExecArgs) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("pincer-egress-")
            .tempdir()?;
        let socket = dir.path().join("proxy.sock");
        let listener = tokio::net::UnixListener::bind(&socket)?;
        // A Docker sandbox connects as its own user through a bind of the socket itself;
        // the directory (0700) keeps everyone else on this host out.
        std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
        let mut builder = pincer_egress::GuardedProxy::builder();
        for net in &args.allow_network {
            builder = builder.allow_network(*net);
        }
        if !args.egress_port.is_empty() {
            builder = builder.ports(args.egress_port.iter().copied());
        }
        let proxy = builder.build();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            if let Err(e) = proxy
                .serve_unix(listener, async {
                    let _ = stopped.await;
                })
                .await
            {
                eprintln!("pincer: the egress proxy stopped: {e}");
            }
        });
        Ok(Self {
            socket,
            _stop: stop,
            _dir: dir,
        })
    }
}

fn profile(args: &SandboxExecArgs, network: Network) -> Result<JailProfile, JailError> {
    let workspace = match &args.workspace {
        None => Workspace::None,
        Some(dir) => {
            let access = match args.access.unwrap_or(AccessArg::Rw) {
                AccessArg::Ro => Access::ReadOnly,
                AccessArg::Rw => Access::ReadWrite,
            };
            Workspace::Dir(WorkspaceDir::new(dir, access, &args.cwd)?)
        }
    };
    Ok(JailProfile::builder(args.command.iter().cloned())
        .workspace(workspace)
        .network(network)
        .timeout(Duration::from_secs(args.timeout))
        .build()?)
}

/// As root the command runs as an unprivileged user; file permissions still apply, so say
/// so when that user does not own a read-write workspace.
fn warn_if_unwritable(profile: &JailProfile) {
    use std::os::unix::fs::MetadataExt;
    let Workspace::Dir(dir) = profile.workspace() else {
        return;
    };
    let user = JailUser::for_this_process();
    if dir.access() != Access::ReadWrite || !nix::unistd::geteuid().is_root() {
        return;
    }
    if let Ok(meta) = std::fs::metadata(dir.root())
        && meta.uid() != user.uid()
    {
        eprintln!(
            "pincer: note: the command runs as uid {} and {} belongs to uid {}; file permissions may refuse writes (chown it to {}:{} to allow them)",
            user.uid(),
            dir.root().display(),
            meta.uid(),
            user.uid(),
            user.gid()
        );
    }
}

fn report(result: Result<JailOutcome, JailError>) -> ExitCode {
    let outcome = match result {
        Ok(o) => o,
        Err(e @ JailError::Exec { .. }) => {
            eprintln!("pincer: {e}");
            return ExitCode::from(EXIT_NOT_EXECUTABLE);
        }
        Err(e) => {
            eprintln!("pincer: {e}");
            return ExitCode::from(EXIT_SANDBOX_FAILED);
        }
    };
    // Output first, so the command's own output is not interleaved with our notes.
    let _ = std::io::stdout().write_all(&outcome.stdout.bytes);
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().write_all(&outcome.stderr.bytes);
    for (name, captured) in [("stdout", &outcome.stdout), ("stderr", &outcome.stderr)] {
        if captured.truncated() {
            eprintln!(
                "pincer: {name} truncated: kept {} of {} bytes",
                captured.bytes.len(),
                captured.total_bytes
            );
        }
    }
    match outcome.status {
        ExitStatus::Exited(code) => ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX)),
        ExitStatus::Signaled(sig) => {
            eprintln!("pincer: the command was killed by signal {sig}");
            ExitCode::from(u8::try_from(128 + sig).unwrap_or(u8::MAX))
        }
        ExitStatus::TimedOut => {
            eprintln!("pincer: timed out; the command and everything it started were killed");
            ExitCode::from(EXIT_TIMED_OUT)
        }
    }
}

// ---------- Docker ----------

/// The session, turn and agent the CLI's one-off grant names.
const CLI_SESSION: &str = "cli:sandbox-exec";
const CLI_AGENT: &str = "cli";

/// Runs the command through the executor's Docker backend.
async fn exec_docker(args: SandboxExecArgs) -> Result<ExitCode, CliError> {
    let user = SandboxUser::for_this_process();
    let (plan, workspace, _temporary) = match docker_call(&args, user) {
        Ok(call) => call,
        Err(message) => {
            eprintln!("pincer: {message}");
            return Ok(ExitCode::from(EXIT_SANDBOX_FAILED));
        }
    };
    if args.workspace.is_some() && !plan.workspace_read_only() {
        warn_if_not_owned(&workspace.agent_dir, user.uid, user.gid);
    }
    let proxy = match CallProxy::for_args(&args) {
        Ok(proxy) => proxy,
        Err(code) => return Ok(code),
    };
    let egress = match &proxy {
        Some(p) => pincer_executor::sandbox_egress::SandboxEgress::Ready(p.socket.clone()),
        None => pincer_executor::sandbox_egress::SandboxEgress::Unavailable(
            "no --network egress".into(),
        ),
    };
    let backend = DockerBackend::with_egress(docker_settings(&args, user), egress);
    let result = tokio::select! {
        result = backend.run(plan, workspace) => result,
        signal = interrupted() => {
            // The call is abandoned: remove its container (and so everything in it) now
            // rather than leave it running until an executor's reaper finds it.
            if let Err(e) = backend.reap_own().await {
                eprintln!("pincer: cannot remove the sandbox container: {e}");
            }
            eprintln!("pincer: interrupted; the sandbox container was removed");
            return Ok(ExitCode::from(128 + signal));
        }
    };
    // `_temporary` (the private workspace, if any) is removed when this returns.
    Ok(report_docker(result))
}

/// Resolves with the signal number on SIGINT or SIGTERM (never, if neither can be watched).
async fn interrupted() -> u8 {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => 2,
        _ = term.recv() => 15,
    }
}

/// The executor's settings for one CLI call: its defaults, `--image`, `DOCKER_HOST`.
fn docker_settings(args: &SandboxExecArgs, user: SandboxUser) -> DockerSettings {
    DockerSettings {
        host: std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()),
        image: args
            .image
            .clone()
            .unwrap_or_else(|| DOCKER_IMAGE.to_owned()),
        memory_bytes: DOCKER_MEMORY_BYTES,
        pids_limit: DOCKER_PIDS_LIMIT,
        nano_cpus: DOCKER_NANO_CPUS,
        host_workspace_root: None,
        user,
        max_output_bytes: OUTPUT_CAP,
        reuse: pincer_executor::docker::ContainerReuse::PerCall,
    }
}

/// A private workspace for a call without `--workspace`, removed on drop.
struct TemporaryWorkspace(PathBuf);

impl Drop for TemporaryWorkspace {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!(
                "pincer: note: cannot remove the temporary workspace {}: {e}",
                self.0.display()
            );
        }
    }
}

/// The validated plan (through the executor's own validation, with a grant signed by a
/// key made for this call) and the workspace to mount.
fn docker_call(
    args: &SandboxExecArgs,
    user: SandboxUser,
) -> Result<
    (
        ValidatedExecPlan,
        PreparedWorkspace,
        Option<TemporaryWorkspace>,
    ),
    String,
> {
    // The executor's ceiling (600 s) is also this command's: refuse rather than cap silently.
    let max = pincer_executor::plan::MAX_TIMEOUT;
    if args.timeout == 0 || args.timeout > max.as_secs() {
        return Err(format!(
            "--timeout must be 1 to {} seconds with --backend docker (the executor's limit)",
            max.as_secs()
        ));
    }
    let timeout = Duration::from_secs(args.timeout);
    let read_only = args.access == Some(AccessArg::Ro);
    let plan = validate_plan(args, timeout, read_only).map_err(|e| e.to_string())?;
    let (dir, temporary) = match &args.workspace {
        Some(dir) => {
            let dir = dir
                .canonicalize()
                .map_err(|e| format!("workspace {}: cannot resolve it: {e}", dir.display()))?;
            if !dir.is_dir() {
                return Err(format!("workspace {}: not a directory", dir.display()));
            }
            (dir, None)
        }
        None => {
            let dir = temporary_dir(user)?;
            (dir.0.clone(), Some(dir))
        }
    };
    check_cwd(&dir, plan.cwd().components(), &args.cwd)?;
    let workspace = PreparedWorkspace {
        agent_id: plan.agent_id().clone(),
        agent_dir: dir,
    };
    Ok((plan, workspace, temporary))
}

/// `ExecRequest` → `ExecPlan::validate`, as the executor's service does, with a one-off
/// grant for `exec` on this call's session.
fn validate_plan(
    args: &SandboxExecArgs,
    timeout: Duration,
    read_only: bool,
) -> Result<ValidatedExecPlan, ExecutorError> {
    use pincer_executor::Clock;
    let key = pincer_identity::DeviceKey::generate();
    let expires = SystemClock
        .now_ms()
        .saturating_add(i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX))
        .saturating_add(60_000);
    let access = if read_only {
        WorkspaceAccess::ReadOnly
    } else {
        WorkspaceAccess::ReadWrite
    };
    let grant = sign_claims(
        &key,
        &GrantClaims {
            turn_id: "cli".into(),
            session_key: CLI_SESSION.into(),
            agent_id: CLI_AGENT.into(),
            allowed_tools: vec!["exec".into()],
            expires_at_ms: expires,
            workspace_access: access.into(),
            network: NetworkAccess::None.into(),
            sandbox: Some(SandboxGrant {
                network: match args.network {
                    NetworkArg::None => NetworkAccess::None,
                    NetworkArg::Egress => NetworkAccess::Egress,
                }
                .into(),
                scope: SandboxScope::Call.into(),
            }),
            ..Default::default()
        },
    );
    let request = ExecRequest {
        grant: Some(grant),
        session_key: CLI_SESSION.into(),
        command: Some(exec_request::Command::Argv(Argv {
            args: args.command.clone(),
        })),
        cwd: args.cwd.clone(),
        timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
        ..Default::default()
    };
    ExecPlan::from(request).validate(
        ExecLimits {
            max_timeout: timeout,
        },
        &StaticKeys::default().with(key.public_key()),
        &SystemClock,
    )
}

/// A fresh 0700 directory under the temporary directory, owned by the sandbox user.
fn temporary_dir(user: SandboxUser) -> Result<TemporaryWorkspace, String> {
    use std::os::unix::fs::DirBuilderExt;
    let dir =
        std::env::temp_dir().join(format!("pincer-sandbox-{}", uuid::Uuid::new_v4().simple()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot create a temporary workspace {}: {e}", dir.display()))?;
    let dir = TemporaryWorkspace(dir);
    let owned = nix::unistd::geteuid().as_raw() == user.uid;
    if !owned {
        nix::unistd::chown(
            &dir.0,
            Some(nix::unistd::Uid::from_raw(user.uid)),
            Some(nix::unistd::Gid::from_raw(user.gid)),
        )
        .map_err(|e| {
            format!(
                "cannot give the temporary workspace to the sandbox user {}: {e}",
                user.docker_user()
            )
        })?;
    }
    Ok(dir)
}

/// The cwd (already normalised by the plan) must exist below `root` and pass through no
/// symbolic link: the engine would otherwise create it, or resolve a link the command
/// planted.
fn check_cwd(root: &Path, parts: &[String], raw: &str) -> Result<(), String> {
    use nix::fcntl::{OFlag, open, openat};
    use nix::sys::stat::Mode;
    let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let mut dir: OwnedFd = open(root, flags, Mode::empty())
        .map_err(|e| format!("workspace {}: {e}", root.display()))?;
    for part in parts {
        dir = openat(&dir, part.as_str(), flags, Mode::empty()).map_err(|e| match e {
            nix::errno::Errno::ENOENT => format!("cwd {raw:?} does not exist in the workspace"),
            nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR => format!(
                "cwd {raw:?} passes through a symbolic link or a file; use a plain directory"
            ),
            other => format!("cwd {raw:?}: {other}"),
        })?;
    }
    Ok(())
}

/// A read-write workspace the sandbox user does not own may refuse writes: say so.
fn warn_if_not_owned(dir: &Path, uid: u32, gid: u32) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(meta) = std::fs::metadata(dir)
        && meta.uid() != uid
    {
        eprintln!(
            "pincer: note: the command runs as uid {uid} and {} belongs to uid {}; file permissions may refuse writes (chown it to {uid}:{gid} to allow them)",
            dir.display(),
            meta.uid(),
        );
    }
}

fn report_docker(result: Result<ExecOutcome, ExecutorError>) -> ExitCode {
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            eprintln!("pincer: {e}");
            if matches!(e, ExecutorError::ImageMissing { .. }) {
                eprintln!("pincer: or name another image with --image");
            }
            return ExitCode::from(EXIT_SANDBOX_FAILED);
        }
    };
    // Output first, so the command's own output is not interleaved with our notes.
    let _ = std::io::stdout().write_all(&outcome.stdout);
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().write_all(&outcome.stderr);
    if outcome.output_truncated {
        eprintln!(
            "pincer: output truncated: kept the first {OUTPUT_CAP} bytes of stdout and of stderr"
        );
    }
    if outcome.timed_out {
        eprintln!("pincer: timed out; the sandbox container and everything in it were killed");
        return ExitCode::from(EXIT_TIMED_OUT);
    }
    // The engine reports a signal death as 128+N, like a shell; 127 when the program could
    // not be started (the reason is on stderr).
    ExitCode::from(u8::try_from(outcome.exit_code).unwrap_or(u8::MAX))
}
