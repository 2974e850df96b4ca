//! `pincer sandbox exec` runs one command in a sandbox exactly as the exec tool will
//! (same profile, limits and enforcement), prints its output and exits with its status;
//! `pincer sandbox explain` reports what this host lets the jail enforce.
//!
//! Exit status of `exec`: the command's own code; 128+N when signal N killed it; 124 on
//! timeout; 127 when the program could not be executed; 125 when the sandbox refused or
//! failed to set up (the command did not run).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use pincer_jail::{
    Access, ExitStatus, HostSupport, Jail, JailError, JailOutcome, JailProfile, JailUser,
    Workspace, WorkspaceDir,
};

use crate::CliError;

/// Exit status when the sandbox refused or failed (the command did not run).
pub const EXIT_SANDBOX_FAILED: u8 = 125;
/// Exit status when the program could not be executed.
pub const EXIT_NOT_EXECUTABLE: u8 = 127;
/// Exit status on timeout.
pub const EXIT_TIMED_OUT: u8 = 124;

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
    /// Network access (only `none` exists).
    #[arg(long, value_enum, default_value_t = NetworkArg::None)]
    pub network: NetworkArg,
    /// Wall-clock timeout in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// The command and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Sandbox backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Landlock + seccomp + rlimits + dropped uid (+ namespaces where allowed); no Docker.
    Jail,
    /// A throwaway container (run by the executor; not from the CLI yet).
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
    if args.backend == Backend::Docker {
        eprintln!(
            "pincer: the docker backend is not available from the CLI yet; use --backend jail \
             (the executor runs Docker sandboxes)"
        );
        return Ok(ExitCode::from(EXIT_SANDBOX_FAILED));
    }
    let NetworkArg::None = args.network;
    let profile = match profile(&args) {
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
    Ok(report(result))
}

fn profile(args: &SandboxExecArgs) -> Result<JailProfile, JailError> {
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
