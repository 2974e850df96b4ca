//! Pincer's executor: runs the `exec` tool for agents in throwaway Docker containers (or
//! the jail), the workspace file tools and the SSRF-guarded `web_fetch`.
//!
//! A call travels `ExecRequest` → [`ExecPlan`] → [`ValidatedExecPlan`] (grant, command,
//! cwd and timeout checked) → [`Workspaces::prepare`] → a [`Sandbox`] backend
//! ([`DockerBackend`]) → `ExecResponse`. Callers never choose the image, mounts, env, user,
//! network or any container flag: the posture is code in [`docker::posture`].
//! File tools travel `ReadFileRequest` (etc.) → `ReadFilePlan` → `ValidatedReadFile` →
//! [`files::FileTools`], confined to `<root>/<agent_id>` by `openat2(RESOLVE_BENEATH)`;
//! `web_fetch` travels `WebFetchRequest` → [`web::WebFetchPlan`] →
//! [`web::ValidatedWebFetch`] → [`web::WebFetchTool`] (`pincer-egress`). Background
//! processes (`process`) travel `ProcessStartRequest` → [`process::ProcessStartPlan`] →
//! the exec approval gate → [`process::Processes`] on a [`sandbox::SpawnBackground`]
//! backend (the jail). docs/tools.md describes every tool.
//!
//! | module | what |
//! |---|---|
//! | [`server`] | [`run`] / [`serve`]: settings, gRPC server behind the agent credential, reaper, drain |
//! | [`service`] | the `ExecutorService` implementation |
//! | [`plan`] | request → plan → validated plan (pure) |
//! | [`grant`] | the turn-grant check and the injected [`Clock`] (pure) |
//! | [`cwd`] | cwd normalisation (pure) |
//! | [`files`] | read_file, write_file, edit_file, apply_patch, list_dir: plans, confinement, atomic writes |
//! | [`web`] | web_fetch: plan, grant (network `EGRESS`), the guarded fetcher |
//! | [`process`] | background processes: plans, the registry (owners, limits, polls, kills, retention) |
//! | [`workspace`] | `<root>/<agent_id>` on the host, owned by the sandbox user |
//! | [`sandbox`] | the [`Sandbox`] trait, [`ExecOutcome`], the output cap; [`sandbox::SpawnBackground`] for background processes |
//! | [`docker`] | the Docker backend: posture, one-container run, reaper |
//! | [`jail`] | the jail backend: `pincer-jail` on this host, no Docker |
//! | [`error`] | [`ExecutorError`] and its mapping to gRPC codes |
//!
//! In-process (tests): bind `127.0.0.1:0`, then
//! `serve(ExecutorSettings { .. }, listener, token)`; see `tests/service.rs`.

pub mod approval;
pub mod cwd;
pub mod docker;
pub mod error;
pub mod files;
pub mod grant;
pub mod grant_keys;
pub mod jail;
pub mod plan;
pub mod process;
pub mod sandbox;
pub mod sandbox_egress;
pub mod server;
pub mod service;
pub mod web;
pub mod workspace;

pub use docker::{DockerBackend, DockerSettings};
pub use error::ExecutorError;
pub use grant::{Clock, FixedClock, SystemClock};
pub use plan::{ExecLimits, ExecPlan, ValidatedExecPlan};
pub use sandbox::{ExecOutcome, Sandbox};
pub use server::{ExecutorSettings, GrantKeySetting, ToolSettings, run, serve, workspace_root};
pub use workspace::{SandboxUser, Workspaces};
