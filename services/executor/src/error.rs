//! The crate's one error enum and its mapping to gRPC status codes (the only place that
//! maps errors to the wire).
//!
//! | error | gRPC code |
//! |---|---|
//! | [`ExecutorError::Plan`], [`ExecutorError::FilePlan`], [`ExecutorError::WebPlan`], [`ExecutorError::ProcessPlan`] (bad request) | `InvalidArgument` |
//! | [`ExecutorError::Grant`] (no grant, tool not granted, expired), [`ExecutorError::Approval`] (policy, the owner, no answer), [`ExecutorError::ExecDisabled`], [`ExecutorError::FilesDisabled`], [`ExecutorError::WebFetchDisabled`], [`ExecutorError::NoNetworkGrant`] | `PermissionDenied` |
//! | [`ExecutorError::DockerUnavailable`] | `Unavailable` |
//! | [`ExecutorError::ImageMissing`], [`ExecutorError::WorkspaceOwnership`], [`ExecutorError::ProcessesUnavailable`], [`ExecutorError::StdinClosed`] | `FailedPrecondition` |
//! | [`ExecutorError::ProcessNotFound`] (unknown, forgotten, or another agent's or session's) | `NotFound` |
//! | [`ExecutorError::ProcessLimit`] | `ResourceExhausted` |
//! | [`ExecutorError::File`]: not found / leaves the workspace, refused link / wrong kind, size, contents | `NotFound` / `PermissionDenied` / `FailedPrecondition` (`AlreadyExists` for a patch adding an existing file) |
//! | [`ExecutorError::WebFetch`]: the SSRF guard refused / timeout / too large or not text / network | `PermissionDenied` / `DeadlineExceeded` / `FailedPrecondition` / `Unavailable` |
//! | everything else | `Internal` |
//!
//! A timeout is not an error: it is a normal response with `timed_out = true`.

use std::path::PathBuf;

use tonic::Status;

use pincer_egress::EgressError;

use crate::approval::gate::GateError;
use crate::files::{FileError, FilePlanError};
use crate::grant::GrantError;
use crate::plan::PlanError;
use crate::process::ProcessPlanError;
use crate::web::WebPlanError;

/// Everything that can go wrong in the executor.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The request is malformed.
    #[error("invalid exec request: {0}")]
    Plan(#[from] PlanError),
    /// The turn grant does not allow this call.
    #[error("refused: {0}")]
    Grant(#[from] GrantError),
    /// `tools.exec.enabled` is false.
    #[error("the exec tool is disabled on this executor (tools.exec.enabled = false)")]
    ExecDisabled,
    /// The exec approval step did not let the call run.
    #[error(transparent)]
    Approval(#[from] GateError),
    /// `tools.files.enabled` is false.
    #[error("the file tools are disabled on this executor (tools.files.enabled = false)")]
    FilesDisabled,
    /// `tools.webFetch.enabled` is false.
    #[error("the web_fetch tool is disabled on this executor (tools.webFetch.enabled = false)")]
    WebFetchDisabled,
    /// A file-tool request is malformed.
    #[error("invalid request: {0}")]
    FilePlan(#[from] FilePlanError),
    /// A file tool failed on the workspace.
    #[error("{0}")]
    File(#[from] FileError),
    /// A `web_fetch` request is malformed.
    #[error("invalid web_fetch request: {0}")]
    WebPlan(#[from] WebPlanError),
    /// A `process` request is malformed.
    #[error("invalid process request: {0}")]
    ProcessPlan(#[from] ProcessPlanError),
    /// No such background process for this agent and session (the same answer for another
    /// session's process, so ids cannot be probed).
    #[error(
        "no background process {id} in this session (ended processes are forgotten after 10 minutes); list them with the process tool's \"list\" action"
    )]
    ProcessNotFound {
        /// The id asked for.
        id: String,
    },
    /// Too many background processes are running.
    #[error(
        "{limit} background processes already run {scope}, the limit; kill one or wait for one to end"
    )]
    ProcessLimit {
        /// "for this agent" or "on this executor".
        scope: &'static str,
        /// The limit reached.
        limit: usize,
    },
    /// This executor was built without background processes (both backends serve them;
    /// only an `ExecutorApi` made without `with_processes` refuses).
    #[error("background processes are not served by this executor")]
    ProcessesUnavailable,
    /// The background process's stdin is closed.
    #[error(
        "the process's stdin is closed (close_stdin was sent, or the process no longer reads it)"
    )]
    StdinClosed,
    /// The grant lists `web_fetch` but gives no network access.
    #[error(
        "refused: the turn grant gives no network access (network is not EGRESS), so web_fetch may not run in this turn"
    )]
    NoNetworkGrant,
    /// The grant gives commands network egress, but this executor cannot provide it.
    #[error("network egress for sandboxed commands is not available here: {0}")]
    SandboxEgressUnavailable(String),
    /// The guarded fetch refused or failed; the message names the host and the rule.
    #[error("web_fetch: {}", web_message(.0))]
    WebFetch(#[from] EgressError),
    /// The web fetcher could not be built at start.
    #[error("cannot set up web_fetch: {0}")]
    WebSetup(#[source] EgressError),
    /// The Docker engine cannot be reached.
    #[error(
        "the Docker engine is unreachable ({endpoint}): {source}; start Docker (e.g. `bash scripts/setup-docker.sh`) or fix executor.docker.host"
    )]
    DockerUnavailable {
        /// The endpoint that was tried.
        endpoint: String,
        /// The client error.
        #[source]
        source: bollard::errors::Error,
    },
    /// The sandbox image is not present on the engine.
    #[error(
        "the sandbox image {image:?} is not present on the Docker engine; build it with `bash images/sandbox/build.sh` (or set executor.docker.image)"
    )]
    ImageMissing {
        /// The configured image.
        image: String,
    },
    /// A Docker API call failed.
    #[error("Docker {action} failed: {source}")]
    Docker {
        /// What was being done.
        action: &'static str,
        /// The client error.
        #[source]
        source: bollard::errors::Error,
    },
    /// The engine answered in an unexpected way.
    #[error("unexpected answer from the Docker engine: {0}")]
    DockerProtocol(&'static str),
    /// The agent's workspace could not be prepared.
    #[error("cannot prepare workspace {path}: {source}")]
    Workspace {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The executor may not give the workspace to the sandbox user (e.g. root without
    /// `CAP_CHOWN` in a hardened container).
    #[error(
        "cannot give {path} to the sandbox user {user}: {source}; an executor running as root needs CAP_CHOWN, CAP_DAC_OVERRIDE and CAP_FOWNER, or run it as a non-root user (sandboxes then run as that user)"
    )]
    WorkspaceOwnership {
        /// The directory.
        path: PathBuf,
        /// The sandbox user (`uid:gid`).
        user: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The working directory passes through a symbolic link or a non-directory.
    #[error(
        "cwd {cwd:?} passes through a symbolic link or a file inside the workspace; use a plain directory"
    )]
    CwdNotDirectory {
        /// The requested cwd.
        cwd: String,
    },
    /// A credential could not be resolved at start.
    #[error("cannot resolve a service credential (services.credentials.agent / .executor): {0}")]
    Credential(#[from] pincer_runtime::SecretError),
    /// The jail backend refused or failed (names what the host cannot enforce).
    #[error("jail: {0}")]
    Jail(String),
    /// The link to the gateway (for grant keys) could not be set up.
    #[error("cannot set up the link to the gateway: {0}")]
    GatewayLink(String),
    /// The state directory (for the default workspace root) is unknown.
    #[error("cannot locate the workspace root: {0}")]
    StateDir(#[from] pincer_runtime::paths::PathError),
    /// The sandbox task died (panicked or was cancelled).
    #[error("the sandbox task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The gRPC server failed.
    #[error("the executor's gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// The guard's message, with the limit named as the config key (the guard's own text
/// names the CLI flag).
fn web_message(err: &EgressError) -> String {
    match err.root() {
        EgressError::TooLarge { limit } => format!(
            "the response body exceeds {limit} bytes (tools.webFetch.maxBytes); fetch a smaller page"
        ),
        _ => err.to_string(),
    }
}

fn file_status(err: &FileError, message: String) -> Status {
    match err {
        FileError::NotFound { .. } => Status::not_found(message),
        FileError::Escapes { .. }
        | FileError::LinkRefused { .. }
        | FileError::Symlink { .. }
        | FileError::Hardlinked { .. }
        | FileError::Denied { .. } => Status::permission_denied(message),
        FileError::AlreadyExists { .. } => Status::already_exists(message),
        FileError::IsDirectory { .. }
        | FileError::NotDirectory { .. }
        | FileError::NotRegular { .. }
        | FileError::TooLarge { .. }
        | FileError::NotUtf8 { .. }
        | FileError::Changed { .. }
        | FileError::Edit(_)
        | FileError::Hunk(_)
        | FileError::Ownership { .. } => Status::failed_precondition(message),
        FileError::PartiallyApplied { .. } => Status::aborted(message),
        FileError::Io { .. } => {
            tracing::error!(error = %message, "file tool failed");
            Status::internal(message)
        }
    }
}

fn web_status(err: &EgressError, message: String) -> Status {
    if err.is_policy_refusal() {
        return Status::permission_denied(message);
    }
    match err.root() {
        EgressError::Timeout(_) => Status::deadline_exceeded(message),
        EgressError::TooLarge { .. } | EgressError::ContentType { .. } => {
            Status::failed_precondition(message)
        }
        EgressError::Unpinned { .. } => Status::permission_denied(message),
        EgressError::Resolve { .. }
        | EgressError::Connect { .. }
        | EgressError::Tls { .. }
        | EgressError::ServerName { .. }
        | EgressError::Http { .. }
        | EgressError::BadLocation { .. } => Status::unavailable(message),
        _ => {
            tracing::error!(error = %message, "web_fetch failed");
            Status::internal(message)
        }
    }
}

impl From<ExecutorError> for Status {
    fn from(err: ExecutorError) -> Self {
        let message = err.to_string();
        match err {
            ExecutorError::Plan(_)
            | ExecutorError::CwdNotDirectory { .. }
            | ExecutorError::FilePlan(_)
            | ExecutorError::WebPlan(_)
            | ExecutorError::ProcessPlan(_) => Status::invalid_argument(message),
            ExecutorError::ProcessNotFound { .. } => Status::not_found(message),
            ExecutorError::ProcessLimit { .. } => Status::resource_exhausted(message),
            ExecutorError::ProcessesUnavailable
            | ExecutorError::StdinClosed
            | ExecutorError::SandboxEgressUnavailable(_) => Status::failed_precondition(message),
            ExecutorError::Approval(GateError::Probe(_)) => {
                tracing::error!(error = %message, "exec approval probe failed");
                Status::internal(message)
            }
            ExecutorError::Grant(_)
            | ExecutorError::Approval(_)
            | ExecutorError::ExecDisabled
            | ExecutorError::FilesDisabled
            | ExecutorError::WebFetchDisabled
            | ExecutorError::NoNetworkGrant => Status::permission_denied(message),
            ExecutorError::File(e) => file_status(&e, message),
            ExecutorError::WebFetch(e) => web_status(&e, message),
            ExecutorError::DockerUnavailable { .. } => Status::unavailable(message),
            ExecutorError::Jail(_) => Status::failed_precondition(message),
            ExecutorError::ImageMissing { .. } | ExecutorError::WorkspaceOwnership { .. } => {
                Status::failed_precondition(message)
            }
            ExecutorError::Docker { .. }
            | ExecutorError::DockerProtocol(_)
            | ExecutorError::Workspace { .. }
            | ExecutorError::Credential(_)
            | ExecutorError::GatewayLink(_)
            | ExecutorError::StateDir(_)
            | ExecutorError::Task(_)
            | ExecutorError::WebSetup(_)
            | ExecutorError::Serve(_) => {
                tracing::error!(error = %message, "exec failed");
                Status::internal(message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn maps_to_grpc_codes() {
        let cases: Vec<(ExecutorError, Code)> = vec![
            (PlanError::MissingCommand.into(), Code::InvalidArgument),
            (GrantError::Missing.into(), Code::PermissionDenied),
            (
                ExecutorError::DockerUnavailable {
                    endpoint: "local".into(),
                    source: bollard::errors::Error::SocketNotFoundError("/x".into()),
                },
                Code::Unavailable,
            ),
            (
                ExecutorError::ImageMissing {
                    image: "img".into(),
                },
                Code::FailedPrecondition,
            ),
            (
                ExecutorError::WorkspaceOwnership {
                    path: "/ws/main".into(),
                    user: "10001:10001".into(),
                    source: std::io::Error::from_raw_os_error(1),
                },
                Code::FailedPrecondition,
            ),
            (
                ExecutorError::CwdNotDirectory { cwd: "a".into() },
                Code::InvalidArgument,
            ),
            (FilePlanError::EmptyOldString.into(), Code::InvalidArgument),
            (ExecutorError::FilesDisabled, Code::PermissionDenied),
            (ExecutorError::NoNetworkGrant, Code::PermissionDenied),
            (
                ExecutorError::SandboxEgressUnavailable("docker".into()),
                Code::FailedPrecondition,
            ),
            (
                ProcessPlanError::BadId("x".into()).into(),
                Code::InvalidArgument,
            ),
            (
                ExecutorError::ProcessNotFound {
                    id: "proc_x".into(),
                },
                Code::NotFound,
            ),
            (
                ExecutorError::ProcessLimit {
                    scope: "for this agent",
                    limit: 8,
                },
                Code::ResourceExhausted,
            ),
            (
                ExecutorError::ProcessesUnavailable,
                Code::FailedPrecondition,
            ),
            (ExecutorError::StdinClosed, Code::FailedPrecondition),
            (
                FileError::NotFound { path: "a".into() }.into(),
                Code::NotFound,
            ),
            (
                FileError::Escapes { path: "a".into() }.into(),
                Code::PermissionDenied,
            ),
            (
                FileError::Hardlinked {
                    path: "a".into(),
                    links: 2,
                }
                .into(),
                Code::PermissionDenied,
            ),
            (
                FileError::NotUtf8 { path: "a".into() }.into(),
                Code::FailedPrecondition,
            ),
            (
                EgressError::TooLarge { limit: 10 }.into(),
                Code::FailedPrecondition,
            ),
            (
                EgressError::Timeout(std::time::Duration::from_secs(1)).into(),
                Code::DeadlineExceeded,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(Status::from(err).code(), code);
        }
    }
}
