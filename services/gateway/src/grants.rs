//! Turn grants: the gateway's Ed25519 grant key (kept in `<state>/keys/grant.key`, 0600,
//! generated on first start) signs what each turn may do; executors fetch the public key
//! through [`ExecutorLink`], a gRPC service only the executor's credential opens.

use std::path::Path;
use std::sync::Arc;

use pincer_identity::DeviceKey;
use pincer_proto::v1::executor_link_service_server::ExecutorLinkService;
use pincer_proto::v1::{
    ApprovalAnswer, ApprovalOutcome, ApprovalRequest, ExecPolicy, GetGrantKeyRequest, GrantClaims,
    GrantKey, NetworkAccess, SandboxGrant, SandboxScope, TurnGrant, WorkspaceAccess,
};
use prost::Message;

use crate::GatewayError;
use crate::approvals::binding::Binding;
use crate::approvals::book::Requester;
use crate::approvals::{Answer, Approvals, ApprovalsError};
use crate::store::db::now_ms;

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
    /// How its exec calls are judged.
    pub exec_policy: ExecPolicy,
    /// What its sandboxed commands may reach.
    pub sandbox_network: NetworkAccess,
    /// Whether its commands may share the session's sandbox.
    pub sandbox_scope: SandboxScope,
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
            exec_policy: Some(spec.exec_policy),
            sandbox: Some(SandboxGrant {
                network: spec.sandbox_network.into(),
                scope: spec.sandbox_scope.into(),
            }),
        }
        .encode_to_vec();
        let signature = pincer_identity::sign_grant(&self.key, &claims);
        TurnGrant {
            claims,
            signature: signature.as_bytes().to_vec(),
            key_id: self.key_id(),
        }
    }

    /// The claims of a grant this gateway signed, or why not.
    pub fn verify(&self, grant: Option<&TurnGrant>) -> Result<GrantClaims, &'static str> {
        let grant = grant.ok_or("no turn grant")?;
        if grant.key_id != self.key_id() {
            return Err("the turn grant is not signed by this gateway's key");
        }
        pincer_identity::verify_grant(&self.key.public_key(), &grant.claims, &grant.signature)
            .map_err(|_| "the turn grant's signature does not verify")?;
        GrantClaims::decode(grant.claims.as_slice()).map_err(|_| "the turn grant is malformed")
    }

    /// The public half, for executors.
    pub fn public(&self) -> GrantKey {
        GrantKey {
            key_id: self.key_id(),
            public_key: self.key.public_key().as_bytes().to_vec(),
        }
    }
}

/// What the config lets a turn use: the tools, network and exec policy that go into its
/// grant. Group turns get no tools (group tool policy comes with the channel rules).
#[derive(Debug, Clone)]
pub struct TurnTools {
    exec: bool,
    files: bool,
    web_fetch: bool,
    exec_egress: bool,
    sandbox_scope: SandboxScope,
    exec_policy: ExecPolicy,
}

/// What one turn may use, as it goes into the grant.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnAccess {
    /// The tools.
    pub tools: Vec<String>,
    /// What the executor's own `web_fetch` may reach.
    pub network: NetworkAccess,
    /// What sandboxed commands (`exec`, `process`) may reach.
    pub sandbox_network: NetworkAccess,
    /// Whether they may share the session's sandbox.
    pub sandbox_scope: SandboxScope,
    /// How exec calls are judged.
    pub exec_policy: ExecPolicy,
}

impl TurnTools {
    /// From `tools.*`.
    pub fn from_config(config: &pincer_runtime::Config) -> Self {
        use pincer_proto::v1::{ExecAsk, ExecSecurity};
        use pincer_runtime::config::validate::{
            ExecAskMode, ExecNetwork, ExecSandboxScope, ExecSecurityLevel,
        };
        let security = |s: ExecSecurityLevel| match s {
            ExecSecurityLevel::Deny => ExecSecurity::Deny,
            ExecSecurityLevel::Allowlist => ExecSecurity::Allowlist,
            ExecSecurityLevel::Full => ExecSecurity::Full,
        };
        let exec = &config.exec;
        Self {
            exec: exec.enabled,
            files: config.files.enabled,
            web_fetch: config.web_fetch.enabled,
            exec_egress: exec.enabled && exec.network == ExecNetwork::Egress,
            sandbox_scope: match exec.sandbox_scope {
                ExecSandboxScope::Call => SandboxScope::Call,
                ExecSandboxScope::Session => SandboxScope::Session,
            },
            exec_policy: ExecPolicy {
                security: security(exec.security).into(),
                ask: match exec.ask {
                    ExecAskMode::Off => ExecAsk::Off,
                    ExecAskMode::OnMiss => ExecAsk::OnMiss,
                    ExecAskMode::Always => ExecAsk::Always,
                }
                .into(),
                ask_fallback: security(exec.ask_fallback).into(),
                allowlist: exec.allowlist.clone(),
                safe_bins: exec.safe_bins,
            },
        }
    }

    /// What a turn in a group (`group`) or a DM may use.
    pub fn for_turn(&self, group: bool) -> TurnAccess {
        let mut access = TurnAccess {
            tools: Vec::new(),
            network: NetworkAccess::None,
            sandbox_network: NetworkAccess::None,
            sandbox_scope: self.sandbox_scope,
            exec_policy: self.exec_policy.clone(),
        };
        if group {
            return access;
        }
        if self.exec {
            access.tools.extend(["exec", "process"].map(str::to_owned));
            if self.exec_egress {
                access.sandbox_network = NetworkAccess::Egress;
            }
        }
        if self.files {
            access.tools.extend(
                [
                    "read_file",
                    "write_file",
                    "edit_file",
                    "apply_patch",
                    "list_dir",
                ]
                .map(str::to_owned),
            );
        }
        if self.web_fetch {
            access.tools.push("web_fetch".to_owned());
            access.network = NetworkAccess::Egress;
        }
        access
    }
}

/// The executor-facing gRPC service.
#[derive(Debug, Clone)]
pub struct ExecutorLink {
    signer: GrantSigner,
    approvals: Arc<Approvals>,
}

impl ExecutorLink {
    /// Serves `signer`'s public key and approval requests against `approvals`.
    pub fn new(signer: GrantSigner, approvals: Arc<Approvals>) -> Self {
        Self { signer, approvals }
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

    /// The grant is verified again here: only a live turn that may use `exec` can ask, and
    /// the session and agent come from the grant, never from the request.
    async fn request_approval(
        &self,
        request: tonic::Request<ApprovalRequest>,
    ) -> Result<tonic::Response<ApprovalAnswer>, tonic::Status> {
        let req = request.into_inner();
        let claims = self
            .signer
            .verify(req.grant.as_ref())
            .map_err(tonic::Status::permission_denied)?;
        if !claims
            .allowed_tools
            .iter()
            .any(|t| t == "exec" || t == "process")
        {
            return Err(tonic::Status::permission_denied(
                "the turn grant allows neither exec nor process",
            ));
        }
        if claims.expires_at_ms <= now_ms() {
            return Err(tonic::Status::permission_denied(
                "the turn grant has expired",
            ));
        }
        let binding = Binding::from_wire(req.binding.unwrap_or_default())
            .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        let reason: String = req.reason.chars().take(1000).collect();
        let requester = Requester {
            agent_id: claims.agent_id,
            session_key: claims.session_key,
            turn_id: claims.turn_id,
        };
        let answer = self
            .approvals
            .request(requester, binding, reason)
            .await
            .map_err(|e| match e {
                ApprovalsError::Book(b) => tonic::Status::resource_exhausted(b.to_string()),
                ApprovalsError::Store(s) => tonic::Status::unavailable(s.to_string()),
            })?;
        let (outcome, id) = match answer {
            Answer::AllowedOnce(id) => (ApprovalOutcome::AllowedOnce, id),
            Answer::AllowedAlways(id) => (ApprovalOutcome::AllowedAlways, id),
            Answer::Denied(id) => (ApprovalOutcome::Denied, id),
            Answer::Pending(id) => (ApprovalOutcome::Pending, id),
        };
        Ok(tonic::Response::new(ApprovalAnswer {
            outcome: outcome.into(),
            approval_id: id.to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use pincer_proto::v1::{ExecAsk, ExecSecurity};

    use super::*;

    fn config(tools: &str) -> pincer_runtime::Config {
        pincer_runtime::config::parse_config(
            &format!(
                r#"{{ models: {{ providers: {{ p: {{ api: "openai-chat", baseUrl: "http://127.0.0.1:9/v1" }} }} }},
                     agents: {{ defaults: {{ model: "p/m" }} }}, tools: {tools} }}"#
            ),
            "test",
        )
        .unwrap()
    }

    #[test]
    fn dm_turns_get_the_enabled_tools_and_groups_none() {
        let all = TurnTools::from_config(&config("{}"));
        let dm = all.for_turn(false);
        assert_eq!(
            dm.tools,
            [
                "exec",
                "process",
                "read_file",
                "write_file",
                "edit_file",
                "apply_patch",
                "list_dir",
                "web_fetch"
            ]
        );
        assert_eq!(dm.network, NetworkAccess::Egress, "web_fetch needs egress");
        assert_eq!(
            dm.sandbox_network,
            NetworkAccess::None,
            "commands get no network unless tools.exec.network says so"
        );
        assert_eq!(dm.exec_policy.security(), ExecSecurity::Full);
        let group = all.for_turn(true);
        assert!(group.tools.is_empty(), "groups get no tools");
        assert_eq!(group.network, NetworkAccess::None);
        assert_eq!(group.sandbox_network, NetworkAccess::None);

        let none = TurnTools::from_config(&config(
            "{ exec: { enabled: false }, files: { enabled: false }, webFetch: { enabled: false } }",
        ));
        let dm = none.for_turn(false);
        assert!(dm.tools.is_empty());
        assert_eq!(dm.network, NetworkAccess::None);
        assert_eq!(dm.sandbox_network, NetworkAccess::None);
    }

    #[test]
    fn command_egress_is_granted_to_dms_only_and_only_with_exec() {
        let t = TurnTools::from_config(&config(r#"{ exec: { network: "egress" } }"#));
        assert_eq!(t.for_turn(false).sandbox_network, NetworkAccess::Egress);
        assert_eq!(t.for_turn(true).sandbox_network, NetworkAccess::None);
        let off = TurnTools::from_config(&config(
            r#"{ exec: { enabled: false, network: "egress" } }"#,
        ));
        assert_eq!(off.for_turn(false).sandbox_network, NetworkAccess::None);
        let signer = GrantSigner::from_key(DeviceKey::from_seed([4; 32]));
        let a = t.for_turn(false);
        let grant = signer.sign(GrantSpec {
            turn_id: "t".into(),
            session_key: "s".into(),
            agent_id: "main".into(),
            allowed_tools: a.tools,
            expires_at_ms: i64::MAX,
            workspace: WorkspaceAccess::ReadWrite,
            network: a.network,
            exec_policy: a.exec_policy,
            sandbox_network: a.sandbox_network,
            sandbox_scope: a.sandbox_scope,
        });
        let claims = signer.verify(Some(&grant)).unwrap();
        let sandbox = claims.sandbox.unwrap();
        assert_eq!(sandbox.network(), NetworkAccess::Egress);
        assert_eq!(sandbox.scope(), SandboxScope::Session, "the default");
    }

    #[test]
    fn the_sandbox_scope_is_signed_as_configured() {
        let call = TurnTools::from_config(&config(r#"{ exec: { sandboxScope: "call" } }"#));
        assert_eq!(call.for_turn(false).sandbox_scope, SandboxScope::Call);
        let session = TurnTools::from_config(&config("{}"));
        assert_eq!(session.for_turn(false).sandbox_scope, SandboxScope::Session);
    }

    #[test]
    fn the_exec_policy_is_signed_as_configured() {
        let t = TurnTools::from_config(&config(
            r#"{ exec: { security: "allowlist", ask: "on-miss", askFallback: "allowlist",
                        allowlist: ["/usr/bin/git"], safeBins: false } }"#,
        ));
        let signer = GrantSigner::from_key(DeviceKey::from_seed([3; 32]));
        let a = t.for_turn(false);
        let grant = signer.sign(GrantSpec {
            turn_id: "t".into(),
            session_key: "s".into(),
            agent_id: "main".into(),
            allowed_tools: a.tools,
            expires_at_ms: i64::MAX,
            workspace: WorkspaceAccess::ReadWrite,
            network: a.network,
            exec_policy: a.exec_policy,
            sandbox_network: a.sandbox_network,
            sandbox_scope: a.sandbox_scope,
        });
        let claims = signer.verify(Some(&grant)).unwrap();
        let p = claims.exec_policy.unwrap();
        assert_eq!(p.security(), ExecSecurity::Allowlist);
        assert_eq!(p.ask(), ExecAsk::OnMiss);
        assert_eq!(p.ask_fallback(), ExecSecurity::Allowlist);
        assert_eq!(p.allowlist, ["/usr/bin/git"]);
        assert!(!p.safe_bins);
    }
}
