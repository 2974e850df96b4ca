//! LLM provider clients, one module per wire API, all behind [`crate::model::ModelClient`].
//!
//! | module | what |
//! |---|---|
//! | [`openai`] | OpenAI Chat Completions (`POST {baseUrl}/chat/completions`), JSON and SSE |
//! | [`anthropic`] | Anthropic Messages (`POST {baseUrl}/messages`), JSON and SSE |
//! | [`http`] | the shared HTTP attempt loop: status classification, retries, error bodies |
//! | [`retry`] | the pure retry policy (`retry-after`, backoff with jitter) |
//! | [`sse`] | the server-sent events parser |

pub mod anthropic;
pub mod http;
pub mod openai;
pub mod retry;
pub mod sse;

use std::sync::Arc;
use std::time::Duration;

use pincer_runtime::Secret;
use pincer_runtime::config::raw::ProviderApi;

use crate::model::ModelClient;
pub use retry::RetryPolicy;

/// Everything a provider client needs. The API key is already resolved.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// The provider id from the config (`models.providers.<id>`), used in messages.
    pub id: String,
    /// The wire API.
    pub api: ProviderApi,
    /// Base URL, e.g. `https://api.openai.com/v1`.
    pub base_url: reqwest::Url,
    /// The API key, if the provider needs one.
    pub api_key: Option<Secret>,
    /// The model name sent to the provider.
    pub model: String,
    /// Retries.
    pub retry: RetryPolicy,
}

/// A provider call failed. Messages name the provider and never contain the API key.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider answered with an error status.
    #[error("{provider} answered HTTP {status} after {attempts} attempt(s): {message}")]
    Status {
        /// The provider id.
        provider: String,
        /// The HTTP status.
        status: u16,
        /// The provider's error message (redacted).
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The provider could not be reached, or the connection broke.
    #[error("cannot reach {provider} after {attempts} attempt(s): {source}")]
    Transport {
        /// The provider id.
        provider: String,
        /// Attempts made.
        attempts: u32,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The answer did not follow the provider's wire format, or the stream ended early.
    #[error("{provider} sent an answer Pincer cannot use: {detail}")]
    Protocol {
        /// The provider id.
        provider: String,
        /// What was wrong.
        detail: String,
    },
    /// The provider reported an error inside its event stream.
    #[error("{provider} reported an error mid-stream: {message}")]
    StreamError {
        /// The provider id.
        provider: String,
        /// The provider's message (redacted).
        message: String,
    },
    /// This API is not implemented.
    #[error(
        "provider {provider} uses API {api:?}, which this agent does not support; use \"openai-chat\" or \"anthropic\""
    )]
    Unsupported {
        /// The provider id.
        provider: String,
        /// The configured API.
        api: ProviderApi,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for {provider}: {source}")]
    Client {
        /// The provider id.
        provider: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
}

/// Builds the client for the configured API.
pub fn model_client(settings: ProviderSettings) -> Result<Arc<dyn ModelClient>, ProviderError> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        // Per read, not per request: a long streamed answer is fine, a silent server is not.
        .read_timeout(Duration::from_secs(300))
        .build()
        .map_err(|source| ProviderError::Client {
            provider: settings.id.clone(),
            source,
        })?;
    match settings.api {
        ProviderApi::OpenAiChat => Ok(Arc::new(openai::OpenAiChat::new(settings, http))),
        ProviderApi::Anthropic => Ok(Arc::new(anthropic::AnthropicMessages::new(settings, http))),
        ProviderApi::OpenAiResponses => Err(ProviderError::Unsupported {
            provider: settings.id,
            api: settings.api,
        }),
    }
}
