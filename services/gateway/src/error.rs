//! The gateway's error type.

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A secret could not be resolved.
    #[error("{what}: {source}")]
    Secret {
        /// Which secret.
        what: &'static str,
        /// Why.
        source: pincer_runtime::SecretError,
    },
    /// The state directory could not be prepared.
    #[error(transparent)]
    Path(#[from] pincer_runtime::paths::PathError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A credential is unusable in a header.
    #[error(transparent)]
    Credential(#[from] pincer_runtime::service_auth::BadCredential),
    /// The agent URL is unusable.
    #[error("services.agent.url: {0}")]
    AgentUrl(tonic::transport::Error),
    /// The grant key could not be loaded or created.
    #[error(
        "grant key {path}: {reason}; fix the file's permissions or remove it to make a new key"
    )]
    GrantKey {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// No address to bind (e.g. `tailnet` without Tailscale).
    #[error(transparent)]
    NoBindAddress(#[from] pincer_runtime::config::gateway::BindError),
    /// A listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A server failed.
    #[error("{server} server failed: {message}")]
    Serve {
        /// Which server.
        server: &'static str,
        /// Why.
        message: String,
    },
}
