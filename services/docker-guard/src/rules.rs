//! The guard's decisions, as pure functions over values (no sockets, no Docker).
//!
//! | module | what |
//! |---|---|
//! | [`endpoint`] | method + path + query → an allowed [`Route`] or a [`Refusal`]; the list filter |
//! | [`create`] | the `POST /containers/create` body → the posture check |
//! | [`bind`] | the workspace root and the one kind of bind source allowed under it |
//! | [`json`] | JSON read the way Go's `encoding/json` will (case-folded keys, no duplicates) |
//!
//! Everything not explicitly allowed is refused; a refusal names what was wrong.

pub mod bind;
pub mod create;
pub mod endpoint;
pub mod json;

pub use bind::{BindCheck, WorkspaceRoot};
pub use create::{CheckedCreate, check_create};
pub use endpoint::{ApiVersion, ContainerOp, Endpoint, Route, classify};

/// The label every sandbox container carries (value `1`); the guard acts only on those.
pub const SANDBOX_LABEL: &str = "pincer.sandbox";
/// Its value.
pub const SANDBOX_LABEL_VALUE: &str = "1";

/// What the guard lets through.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The only image that may be inspected and created from (e.g. `pincer-sandbox:latest`).
    pub image: String,
    /// Bind mount sources must be `<root>/<agent-id>`.
    pub workspace_root: WorkspaceRoot,
    /// Whether bind sources are also checked on the file system.
    pub bind_check: BindCheck,
}

/// Why a request was refused. Shown to the caller as Docker's error shape
/// (`{"message": "pincer-docker-guard: <why>"}`, status 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not one of the endpoints the executor needs.
    #[error("{method} {path} is not an endpoint the executor needs")]
    Endpoint {
        /// The method.
        method: String,
        /// The path as sent.
        path: String,
    },
    /// An API version older than the guard understands.
    #[error(
        "API version {0} is refused: the guard accepts v1.{min} or newer (older versions change what the engine reads)",
        min = endpoint::MIN_API_MINOR
    )]
    ApiVersion(String),
    /// A query parameter not accepted on this endpoint (or sent twice).
    #[error("query parameter {key:?} is not accepted here")]
    Query {
        /// The parameter.
        key: String,
    },
    /// `GET /containers/json` with a `filters` value the guard cannot read.
    #[error("filters: {0}")]
    Filters(String),
    /// A body on an endpoint that takes none.
    #[error("this endpoint takes no request body")]
    UnexpectedBody,
    /// A body over the size limit.
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// The create body is not JSON (or has duplicate keys).
    #[error("the request body is not acceptable JSON: {0}")]
    Json(String),
    /// A create body field outside the posture.
    #[error("{field}: {why}")]
    Field {
        /// Where (e.g. `HostConfig.Privileged`, `HostConfig.Mounts[0].Source`).
        field: String,
        /// What is wrong.
        why: String,
    },
    /// An operation on a container that is not a sandbox.
    #[error("container {0:?} is not a Pincer sandbox (it lacks the label pincer.sandbox=1)")]
    NotSandbox(String),
    /// Attach without a connection upgrade.
    #[error("attach must ask for a connection upgrade (Connection: Upgrade, Upgrade: tcp)")]
    NoUpgrade,
    /// A bind source that fails the file-system check.
    #[error("{field}: {why}")]
    BindSource {
        /// Where.
        field: String,
        /// What is wrong on disk.
        why: String,
    },
}

impl Refusal {
    /// A refusal of `field`.
    pub fn field(field: impl Into<String>, why: impl Into<String>) -> Self {
        Self::Field {
            field: field.into(),
            why: why.into(),
        }
    }
}
