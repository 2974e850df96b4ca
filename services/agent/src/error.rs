//! The crate's errors: [`AgentError`] (the service cannot start or serve) and
//! [`TurnFailure`] (one turn failed), mapped to a gRPC status in one place
//! ([`TurnFailure::to_status`]). Messages never contain a secret.

use pincer_runtime::SecretError;
use pincer_runtime::service_auth::BadCredential;
use tonic::{Code, Status};

use crate::providers::ProviderError;
use crate::turn::TurnError;

/// The agent service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A secret reference could not be resolved.
    #[error("cannot resolve {what}: {source}")]
    Secret {
        /// Which secret (config key), never its value.
        what: String,
        /// The cause.
        #[source]
        source: SecretError,
    },
    /// A service credential cannot be sent as a header.
    #[error(transparent)]
    Credential(#[from] BadCredential),
    /// The configured model names an unknown provider.
    #[error(
        "agents.defaults.model names provider {provider:?}, which is not configured; add models.providers.{provider}"
    )]
    UnknownProvider {
        /// The provider id.
        provider: String,
    },
    /// The provider client could not be built.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// A peer's URL is not usable for gRPC.
    #[error(
        "services.{service}.url {url:?} cannot be used for gRPC: {source}; use http://HOST:PORT"
    )]
    Endpoint {
        /// `gateway` or `executor`.
        service: &'static str,
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// The gRPC server failed.
    #[error("the agent's gRPC server failed: {0}")]
    Serve(#[source] tonic::transport::Error),
}

/// Why a turn did not finish.
#[derive(Debug, thiserror::Error)]
pub enum TurnFailure {
    /// The gateway's history could not be read.
    #[error("cannot read the session history from the gateway: {}", .0.message())]
    History(Status),
    /// The model call failed.
    #[error("the model call failed: {0}")]
    Model(#[from] ProviderError),
    /// The turn's state machine refused a report (a bug in the driver).
    #[error("internal error in the turn loop: {0}")]
    Internal(#[from] TurnError),
    /// The gateway dropped the stream or the agent is shutting down.
    #[error("the turn was cancelled")]
    Cancelled,
}

impl TurnFailure {
    /// The status sent to the gateway.
    pub fn to_status(&self) -> Status {
        let code = match self {
            Self::History(status) => match status.code() {
                Code::Unauthenticated | Code::PermissionDenied => Code::FailedPrecondition,
                _ => Code::Unavailable,
            },
            Self::Model(ProviderError::Status { status, .. }) => match status {
                408 | 429 | 500..=599 => Code::Unavailable,
                _ => Code::FailedPrecondition,
            },
            Self::Model(ProviderError::Transport { .. } | ProviderError::StreamError { .. }) => {
                Code::Unavailable
            }
            Self::Model(ProviderError::Protocol { .. }) | Self::Internal(_) => Code::Internal,
            Self::Model(ProviderError::Unsupported { .. } | ProviderError::Client { .. }) => {
                Code::FailedPrecondition
            }
            Self::Cancelled => Code::Cancelled,
        };
        Status::new(code, self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_errors_map_to_codes() {
        let status = |s: u16| {
            TurnFailure::Model(ProviderError::Status {
                provider: "openai".into(),
                status: s,
                message: "m".into(),
                attempts: 1,
            })
            .to_status()
        };
        assert_eq!(status(429).code(), Code::Unavailable);
        assert_eq!(status(503).code(), Code::Unavailable);
        assert_eq!(status(400).code(), Code::FailedPrecondition);
        assert!(status(401).message().contains("openai answered HTTP 401"));
        let history = TurnFailure::History(Status::unauthenticated("no")).to_status();
        assert_eq!(history.code(), Code::FailedPrecondition);
    }
}
