//! The jail sandbox backend: runs one command without Docker, confined by the kernel.
//!
//! A binary that runs jails calls [`run_helper_if_requested`] first thing in `main`; then
//! [`Jail::run`] re-executes that binary as a helper which sets the jail up in a fresh
//! single-threaded process, runs the command, enforces the timeout and kills everything
//! the command left behind. If the host cannot enforce the jail, nothing runs
//! ([`JailError::Unenforceable`]). [`Jail::spawn`] does the same without waiting: it
//! returns a [`JailProcess`] (stdin pipe, incremental output, kill) once the command runs.
//!
//! ```no_run
//! use pincer_jail::{Jail, JailProfile};
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     pincer_jail::run_helper_if_requested();
//!     let profile = JailProfile::builder(["echo", "hi"]).build()?;
//!     let outcome = Jail::current_exe().run(&profile)?;
//!     println!("{:?} {:?}", outcome.status, outcome.stdout.bytes);
//!     Ok(())
//! }
//! ```
//!
//! | module | job |
//! |---|---|
//! | [`profile`] | the validated [`JailProfile`]: workspace + access, argv, cwd, env, timeout, limits, network, user |
//! | [`probe`] | what this kernel can enforce: [`HostSupport`] |
//! | [`landlock`] | the file-system / TCP / scope ruleset |
//! | [`seccomp`] | the BPF syscall filter |
//! | [`spawn`] | the caller's side: [`Jail::run`] |
//! | [`process`] | a command running in the background: [`Jail::spawn`] → [`JailProcess`] (stdin, incremental output, kill); `process::owner`, the thread that owns its helper |
//! | `helper` | the re-executed helper: supervisor, timeout, cleanup |
//! | `child` | the jailed child: the setup steps in order, then `execve` |
//! | `reap` | killing every descendant (child subreaper) |
//! | [`capture`] | capped output capture |
//! | [`explain`] | the `pincer sandbox explain` report |
//! | `wire` | plan and report records between the processes |
//! | `sys` | the raw system calls (the only `unsafe`) |

pub mod capture;
mod child;
mod egress;
mod error;
pub mod explain;
mod helper;
pub mod landlock;
pub mod probe;
pub mod process;
pub mod profile;
mod reap;
pub mod seccomp;
pub mod spawn;
mod sys;
mod wire;

pub use capture::Captured;
pub use error::JailError;
pub use helper::run_helper_if_requested;
pub use probe::HostSupport;
pub use process::{JailProcess, ProcessOutcome, ProcessOutput, ProcessResult, ProcessStatus};
pub use profile::{
    Access, EGRESS_PROXY_URL, EgressProxy, JailProfile, JailUser, Limits, Network, Workspace,
    WorkspaceDir,
};
pub use spawn::{Jail, JailOutcome};
pub use wire::{Enforcement, ExitStatus, Namespace, SetupStep};
