//! The gateway ⇄ agent boundary: the `GatewayService` the agent calls (history) and the
//! client the gateway uses to run turns.

use pincer_proto::v1::agent_service_client::AgentServiceClient;
use pincer_proto::v1::gateway_service_server::GatewayService;
use pincer_proto::v1::{GetHistoryRequest, GetHistoryResponse, HistoryEntry, HistoryRole};
use pincer_runtime::service_auth::PresentCredential;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::store::Store;
use crate::store::transcript::{Role, history};

/// Most history entries an agent may ask for at once.
const MAX_HISTORY: u32 = 1000;

/// `GatewayService` for agents.
#[derive(Clone)]
pub struct AgentApi {
    store: Store,
}

impl AgentApi {
    /// Serves history from `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl GatewayService for AgentApi {
    async fn get_history(
        &self,
        request: Request<GetHistoryRequest>,
    ) -> Result<Response<GetHistoryResponse>, Status> {
        let req = request.into_inner();
        if req.session_key.is_empty() {
            return Err(Status::invalid_argument("session_key is required"));
        }
        let limit = req.max_entries.min(MAX_HISTORY);
        let session = req.session_key;
        let entries = self
            .store
            .call(move |c| history(c, &session, limit))
            .await
            .map_err(|e| Status::unavailable(format!("history unavailable: {e}")))?;
        let entries = entries
            .into_iter()
            .map(|e| HistoryEntry {
                role: match e.role {
                    Role::User => HistoryRole::User as i32,
                    Role::Assistant => HistoryRole::Assistant as i32,
                },
                text: e.text,
                created_at_ms: e.created_at_ms,
            })
            .collect();
        Ok(Response::new(GetHistoryResponse { entries }))
    }
}

/// The client for `AgentService`, presenting the gateway's credential.
pub type AgentClient = AgentServiceClient<InterceptedService<Channel, PresentCredential>>;

/// A lazily connecting agent client (start order does not matter).
pub fn agent_client(
    url: &url::Url,
    credential: PresentCredential,
) -> Result<AgentClient, tonic::transport::Error> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())?
        .connect_timeout(std::time::Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect_lazy();
    Ok(AgentServiceClient::with_interceptor(channel, credential))
}
