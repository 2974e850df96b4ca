//! The `AgentService` gRPC implementation: `RunTurn` checks the request, then runs the
//! turn in its own task and returns the event stream at once. The turn reads the
//! session's history from the gateway, then hands over to the [`TurnRunner`].

use std::sync::Arc;
use std::time::Duration;

use pincer_proto::v1::agent_service_server::AgentService;
use pincer_proto::v1::gateway_service_client::GatewayServiceClient;
use pincer_proto::v1::{GetHistoryRequest, HistoryRole as WireRole, RunTurnRequest, TurnEvent};
use pincer_runtime::config::validate::AgentConfig;
use pincer_runtime::service_auth::PresentCredential;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::driver::{Guard, TurnRunner};
use crate::error::TurnFailure;
use crate::model::StreamMode;
use crate::tools::{ToolSwitches, offered_tools};
use crate::turn::{HistoryMessage, HistoryRole, Turn, TurnSetup};

/// The gateway client, presenting the agent's credential.
pub type GatewayClient = GatewayServiceClient<InterceptedService<Channel, PresentCredential>>;

/// Events buffered per turn before the agent waits for the gateway to read.
const EVENT_BUFFER: usize = 64;

/// How long the gateway gets to answer `GetHistory`.
const HISTORY_TIMEOUT: Duration = Duration::from_secs(15);

/// What every turn shares.
pub struct AgentShared {
    /// `agents.defaults`.
    pub agent: AgentConfig,
    /// `tools.exec.enabled`, `tools.files.enabled`, `tools.webFetch.enabled`.
    pub tools: ToolSwitches,
    /// Model and executor access.
    pub runner: TurnRunner,
    /// The gateway.
    pub gateway: GatewayClient,
    /// Cancelled when running turns must stop (drain deadline passed).
    pub stop: CancellationToken,
}

/// The gRPC service.
#[derive(Clone)]
pub struct AgentGrpc {
    shared: Arc<AgentShared>,
}

impl AgentGrpc {
    /// A service over `shared`.
    pub fn new(shared: Arc<AgentShared>) -> Self {
        Self { shared }
    }
}

#[tonic::async_trait]
impl AgentService for AgentGrpc {
    type RunTurnStream = ReceiverStream<Result<TurnEvent, Status>>;

    async fn run_turn(
        &self,
        request: Request<RunTurnRequest>,
    ) -> Result<Response<Self::RunTurnStream>, Status> {
        let request = request.into_inner();
        if request.session_key.trim().is_empty() {
            return Err(Status::invalid_argument("session_key is empty"));
        }
        if request.user_text.trim().is_empty() {
            return Err(Status::invalid_argument("user_text is empty"));
        }
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let shared = Arc::clone(&self.shared);
        let span = tracing::info_span!("turn", turn_id = %request.turn_id, session_key = %request.session_key);
        tokio::spawn(async move { shared.serve_turn(request, tx).await }.instrument(span));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

impl AgentShared {
    async fn serve_turn(
        &self,
        request: RunTurnRequest,
        tx: mpsc::Sender<Result<TurnEvent, Status>>,
    ) {
        let guard = Guard::new(&tx, &self.stop);
        match self.turn(request, &guard).await {
            Ok(()) => tracing::info!("turn finished"),
            Err(TurnFailure::Cancelled) => tracing::info!("turn cancelled"),
            Err(failure) => {
                tracing::warn!(error = %failure, "turn failed");
                // The gateway may be gone already; nothing else to tell.
                let _ignored = tx.send(Err(failure.to_status())).await;
            }
        }
    }

    async fn turn(&self, request: RunTurnRequest, guard: &Guard<'_>) -> Result<(), TurnFailure> {
        let history = guard.run(self.history(&request)).await??;
        let setup = TurnSetup {
            system_prompt: self.agent.system_prompt.clone(),
            tools: offered_tools(self.tools, request.grant.as_ref()),
            max_iterations: self.agent.max_iterations,
            max_tokens: self.agent.max_tokens,
            stream: if self.agent.stream {
                StreamMode::Streamed
            } else {
                StreamMode::Whole
            },
        };
        let turn = Turn::new(setup, history, request.user_text);
        self.runner
            .drive(turn, request.grant, &request.session_key, guard)
            .await
    }

    async fn history(&self, request: &RunTurnRequest) -> Result<Vec<HistoryMessage>, TurnFailure> {
        if self.agent.history_limit == 0 {
            return Ok(Vec::new());
        }
        let mut call = Request::new(GetHistoryRequest {
            session_key: request.session_key.clone(),
            turn_id: request.turn_id.clone(),
            max_entries: self.agent.history_limit,
        });
        call.set_timeout(HISTORY_TIMEOUT);
        let response = self
            .gateway
            .clone()
            .get_history(call)
            .await
            .map_err(TurnFailure::History)?;
        Ok(response
            .into_inner()
            .entries
            .into_iter()
            .filter_map(|e| {
                let role = match e.role() {
                    WireRole::User => HistoryRole::User,
                    WireRole::Assistant => HistoryRole::Assistant,
                    WireRole::Unspecified => return None,
                };
                Some(HistoryMessage { role, text: e.text })
            })
            .collect())
    }
}
