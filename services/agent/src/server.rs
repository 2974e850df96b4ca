//! Starting and stopping the agent: resolving its secrets ([`AgentSecrets`]), building
//! the clients ([`Agent::new`]), and serving `AgentService` behind the gateway's
//! credential until shutdown, then draining running turns for a bounded time.

use std::sync::Arc;
use std::time::Duration;

use pincer_proto::v1::agent_service_server::AgentServiceServer;
use pincer_proto::v1::executor_service_client::ExecutorServiceClient;
use pincer_proto::v1::gateway_service_client::GatewayServiceClient;
use pincer_runtime::service_auth::{PresentCredential, RequireCaller, ServiceName};
use pincer_runtime::{Config, ProcessSecrets, Secret, SecretSource};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint, Server};

use crate::driver::TurnRunner;
use crate::error::AgentError;
use crate::providers::{ProviderSettings, RetryPolicy, model_client};
use crate::service::{AgentGrpc, AgentShared};
use crate::tools::ToolSwitches;

/// The secrets the agent uses, resolved. Nothing else is ever resolved by the agent.
#[derive(Debug, Clone)]
pub struct AgentSecrets {
    /// `services.credentials.gateway`: what the gateway presents when it calls the agent.
    pub gateway_credential: Secret,
    /// `services.credentials.agent`: what the agent presents to the gateway and executor.
    pub agent_credential: Secret,
    /// The configured provider's API key, if it has one.
    pub provider_api_key: Option<Secret>,
}

impl AgentSecrets {
    /// Resolves the agent's secrets from `source`.
    pub fn resolve(config: &Config, source: &dyn SecretSource) -> Result<Self, AgentError> {
        let resolve = |what: String, r: &pincer_runtime::SecretRef| {
            r.resolve(source)
                .map_err(|source| AgentError::Secret { what, source })
        };
        let credentials = &config.services.credentials;
        let provider_id = &config.agent.model.provider;
        let provider =
            config
                .providers
                .get(provider_id)
                .ok_or_else(|| AgentError::UnknownProvider {
                    provider: provider_id.clone(),
                })?;
        let provider_api_key = provider
            .api_key
            .as_ref()
            .map(|r| resolve(format!("models.providers.{provider_id}.apiKey"), r))
            .transpose()?;
        Ok(Self {
            gateway_credential: resolve(
                "services.credentials.gateway".to_owned(),
                &credentials.gateway,
            )?,
            agent_credential: resolve("services.credentials.agent".to_owned(), &credentials.agent)?,
            provider_api_key,
        })
    }
}

/// Tunables that the config does not carry (tests shorten them).
#[derive(Debug, Clone, Copy)]
pub struct AgentOptions {
    /// Model call retries.
    pub retry: RetryPolicy,
    /// How long running turns may continue after shutdown was requested.
    pub drain_timeout: Duration,
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// A configured agent, ready to serve.
pub struct Agent {
    shared: Arc<AgentShared>,
    gateway_credential: Secret,
    drain_timeout: Duration,
}

impl Agent {
    /// Builds the agent with already-resolved secrets. Connections to the gateway and the
    /// executor are made lazily, on first use.
    pub fn new(
        config: &Config,
        secrets: AgentSecrets,
        options: AgentOptions,
    ) -> Result<Self, AgentError> {
        let model_ref = &config.agent.model;
        let provider = config.providers.get(&model_ref.provider).ok_or_else(|| {
            AgentError::UnknownProvider {
                provider: model_ref.provider.clone(),
            }
        })?;
        let model = model_client(ProviderSettings {
            id: model_ref.provider.clone(),
            api: provider.api,
            base_url: provider.base_url.clone(),
            api_key: secrets.provider_api_key,
            model: model_ref.model.clone(),
            retry: options.retry,
        })?;
        let present = PresentCredential::new(ServiceName::Agent, &secrets.agent_credential)?;
        let gateway = GatewayServiceClient::with_interceptor(
            lazy_channel("gateway", config.services.gateway.url.as_str())?,
            present.clone(),
        );
        let executor = ExecutorServiceClient::with_interceptor(
            lazy_channel("executor", config.services.executor.url.as_str())?,
            present,
        );
        let shared = AgentShared {
            agent: config.agent.clone(),
            tools: ToolSwitches::from_config(config),
            runner: TurnRunner {
                model,
                executor,
                exec: config.exec.clone(),
            },
            gateway,
            stop: CancellationToken::new(),
        };
        Ok(Self {
            shared: Arc::new(shared),
            gateway_credential: secrets.gateway_credential,
            drain_timeout: options.drain_timeout,
        })
    }

    /// Serves `AgentService` on `listener` until `shutdown` is cancelled, then stops
    /// accepting and lets running turns finish for at most the drain timeout; turns still
    /// running after that are cancelled.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), AgentError> {
        let addr = listener.local_addr().ok();
        let service = AgentServiceServer::with_interceptor(
            AgentGrpc::new(Arc::clone(&self.shared)),
            RequireCaller::new(vec![(ServiceName::Gateway, self.gateway_credential)]),
        );
        let server = Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                pincer_runtime::net::incoming(listener),
                shutdown.clone().cancelled_owned(),
            );
        tracing::info!(?addr, "agent listening");
        tokio::pin!(server);
        tokio::select! {
            result = &mut server => return result.map_err(AgentError::Serve),
            () = shutdown.cancelled() => {}
        }
        tracing::info!(
            drain_timeout_s = self.drain_timeout.as_secs(),
            "shutting down; draining turns"
        );
        match tokio::time::timeout(self.drain_timeout, &mut server).await {
            Ok(result) => result.map_err(AgentError::Serve),
            Err(_elapsed) => {
                tracing::warn!("turns still running after the drain timeout; cancelling them");
                self.shared.stop.cancel();
                // Give cancelled turns a moment to end their streams with a status.
                match tokio::time::timeout(Duration::from_secs(2), &mut server).await {
                    Ok(result) => result.map_err(AgentError::Serve),
                    Err(_elapsed) => Ok(()),
                }
            }
        }
    }
}

fn lazy_channel(service: &'static str, url: &str) -> Result<Channel, AgentError> {
    let endpoint =
        Endpoint::from_shared(url.to_owned()).map_err(|source| AgentError::Endpoint {
            service,
            url: url.to_owned(),
            source,
        })?;
    Ok(endpoint
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect_lazy())
}

/// Runs the agent: resolves its secrets from the process environment and files, then
/// serves on `listener` until `shutdown` is cancelled (see [`Agent::serve`]).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), AgentError> {
    let secrets = AgentSecrets::resolve(&config, &ProcessSecrets)?;
    run_with_secrets(config, secrets, listener, shutdown).await
}

/// [`run`] with secrets already resolved (for tests and `pincer up`).
pub async fn run_with_secrets(
    config: Config,
    secrets: AgentSecrets,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), AgentError> {
    Agent::new(&config, secrets, AgentOptions::default())?
        .serve(listener, shutdown)
        .await
}
