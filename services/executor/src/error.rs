//! The crate's one error enum and its mapping to gRPC status codes (the only place that
//! maps errors to the wire).
//!
//! | error | gRPC code |
//! |---|---|
//! | [`ExecutorError::Plan`] (bad request) | `InvalidArgument` |
//! | [`ExecutorError::Grant`] (no grant, tool not granted, expired), [`ExecutorError::ExecDisabled`] | `PermissionDenied` |
//! | [`ExecutorError::DockerUnavailable`] | `Unavailable` |
//! | [`ExecutorError::ImageMissing`], [`ExecutorError::WorkspaceOwnership`] | `FailedPrecondition` |
//! | everything else | `Internal` |
//!
//! A timeout is not an error: it is a normal response with `timed_out = true`.

use std::path::PathBuf;

use tonic::Status;

use crate::grant::GrantError;
use crate::plan::PlanError;

/// Everything that can go wrong in the executor.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The request is malformed.
    #[error("invalid exec request: {0}")]
    Plan(#[from] PlanError),
    /// The turn grant does not allow this call.
    #[error("exec refused: {0}")]
    Grant(#[from] GrantError),
    /// `tools.exec.enabled` is false.
    #[error("the exec tool is disabled on this executor (tools.exec.enabled = false)")]
    ExecDisabled,
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

impl From<ExecutorError> for Status {
    fn from(err: ExecutorError) -> Self {
        let message = err.to_string();
        match err {
            ExecutorError::Plan(_) | ExecutorError::CwdNotDirectory { .. } => {
                Status::invalid_argument(message)
            }
            ExecutorError::Grant(_) | ExecutorError::ExecDisabled => {
                Status::permission_denied(message)
            }
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
        ];
        for (err, code) in cases {
            assert_eq!(Status::from(err).code(), code);
        }
    }
}
