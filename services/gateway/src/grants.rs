//! Turn grants: the gateway's Ed25519 grant key (kept in `<state>/keys/grant.key`, 0600,
//! generated on first start) signs what each turn may do; executors fetch the public key
//! through [`ExecutorLink`], a gRPC service only the executor's credential opens.

use std::path::Path;
use std::sync::Arc;

use pincer_identity::DeviceKey;
use pincer_proto::v1::executor_link_service_server::ExecutorLinkService;
use pincer_proto::v1::{
    GetGrantKeyRequest, GrantClaims, GrantKey, NetworkAccess, TurnGrant, WorkspaceAccess,
};
use prost::Message;

use crate::GatewayError;

/// Signs grants.
#[derive(Debug, Clone)]
pub struct GrantSigner {
    key: Arc<DeviceKey>,
}

/// What a turn may do, before signing.
#[derive(Debug, Clone)]
pub struct GrantSpec {
    /// The turn.
    pub turn_id: String,
    /// Its session.
    pub session_key: String,
    /// The agent.
    pub agent_id: String,
    /// Tools it may call.
    pub allowed_tools: Vec<String>,
    /// Until when (unix ms).
    pub expires_at_ms: i64,
    /// Its view of the workspace.
    pub workspace: WorkspaceAccess,
    /// Its network.
    pub network: NetworkAccess,
}

impl GrantSigner {
    /// Loads the grant key from `state_dir`, creating it on first start.
    pub fn open(state_dir: &Path) -> Result<Self, GatewayError> {
        let path = state_dir.join("keys").join("grant.key");
        let (key, _) = DeviceKey::load_or_generate(&path).map_err(|e| GatewayError::GrantKey {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self { key: Arc::new(key) })
    }

    /// A signer with a given key (tests).
    pub fn from_key(key: DeviceKey) -> Self {
        Self { key: Arc::new(key) }
    }

    /// The key id grants carry.
    pub fn key_id(&self) -> String {
        self.key.device_id().to_string()
    }

    /// Encodes and signs `spec`.
    pub fn sign(&self, spec: GrantSpec) -> TurnGrant {
        let claims = GrantClaims {
            turn_id: spec.turn_id,
            session_key: spec.session_key,
            agent_id: spec.agent_id,
            allowed_tools: spec.allowed_tools,
            expires_at_ms: spec.expires_at_ms,
            workspace_access: spec.workspace.into(),
            network: spec.network.into(),
        }
        .encode_to_vec();
        let signature = pincer_identity::sign_grant(&self.key, &claims);
        TurnGrant {
            claims,
            signature: signature.as_bytes().to_vec(),
            key_id: self.key_id(),
        }
    }

    /// The public half, for executors.
    pub fn public(&self) -> GrantKey {
        GrantKey {
            key_id: self.key_id(),
            public_key: self.key.public_key().as_bytes().to_vec(),
        }
    }
}

/// The executor-facing gRPC service.
#[derive(Debug, Clone)]
pub struct ExecutorLink {
    signer: GrantSigner,
}

impl ExecutorLink {
    /// Serves `signer`'s public key.
    pub fn new(signer: GrantSigner) -> Self {
        Self { signer }
    }
}

#[tonic::async_trait]
impl ExecutorLinkService for ExecutorLink {
    async fn get_grant_key(
        &self,
        _request: tonic::Request<GetGrantKeyRequest>,
    ) -> Result<tonic::Response<GrantKey>, tonic::Status> {
        Ok(tonic::Response::new(self.signer.public()))
    }
}
