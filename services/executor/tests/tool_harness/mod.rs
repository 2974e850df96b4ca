//! The executor in-process on 127.0.0.1:0 for the file-tool and web_fetch tests: settings
//! from a config text (so new settings get their defaults), the jail backend (no Docker is
//! touched), fixed grant keys, and a client presenting the agent credential.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pincer_executor::grant::{sign_claims, testing};
use pincer_executor::{
    Clock, ExecutorError, ExecutorSettings, GrantKeySetting, SystemClock, serve,
};
use pincer_proto::v1::executor_service_client::ExecutorServiceClient;
use pincer_proto::v1::{GrantClaims, NetworkAccess, TurnGrant, WorkspaceAccess};
use pincer_runtime::Secret;
use pincer_runtime::secret::MapSecrets;
use pincer_runtime::service_auth::{PresentCredential, ServiceName};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub const AGENT_SECRET: &str = "agent-credential-for-tool-tests";
pub const SESSION: &str = "test:dm:1";

pub type Client = ExecutorServiceClient<InterceptedService<Channel, PresentCredential>>;

pub struct Running {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), ExecutorError>>,
    pub tmp: tempfile::TempDir,
}

/// `tools` is the config's `tools` object, e.g. `{ webFetch: { allowNetworks: ["127.0.0.0/8"] } }`.
pub async fn start(tools: &str) -> Running {
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        r#"{{
            models: {{ providers: {{ fake: {{ api: "openai-chat", baseUrl: "http://127.0.0.1:9/v1" }} }} }},
            agents: {{ defaults: {{ model: "fake/m" }} }},
            tools: {tools},
        }}"#
    );
    let config = pincer_runtime::config::parse_config(&text, "test").unwrap();
    let mut secrets = MapSecrets::default();
    secrets
        .env
        .insert("PINCER_AGENT_CREDENTIAL".into(), AGENT_SECRET.into());
    secrets
        .env
        .insert("PINCER_EXECUTOR_CREDENTIAL".into(), "unused".into());
    let mut settings =
        ExecutorSettings::from_config(&config, tmp.path().join("workspaces"), &secrets).unwrap();
    settings.grant_keys = GrantKeySetting::Fixed(testing::keys());
    settings.clock = Arc::new(SystemClock);
    settings.backend = pincer_runtime::config::raw::SandboxBackend::Jail;
    settings.jail_helper = env!("CARGO_BIN_EXE_pincer-executor").into();
    // A broken guard could never send anything off this machine.
    settings.tools.web_dialer = Some(Arc::new(pincer_egress::LoopbackOnlyDialer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(serve(settings, listener, shutdown.clone()));
    Running {
        addr,
        shutdown,
        handle,
        tmp,
    }
}

impl Running {
    /// `<root>/main`: the test agent's workspace.
    pub fn ws(&self) -> PathBuf {
        self.tmp.path().join("workspaces/main")
    }

    /// Creates the workspace (as the executor would) and returns it.
    pub fn make_ws(&self) -> PathBuf {
        let ws = self.ws();
        std::fs::create_dir_all(&ws).unwrap();
        ws
    }

    pub async fn client(&self) -> Client {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let present =
            PresentCredential::new(ServiceName::Agent, &Secret::new(AGENT_SECRET)).unwrap();
        ExecutorServiceClient::with_interceptor(channel, present)
            .max_decoding_message_size(64 * 1024 * 1024)
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.handle)
            .await
            .expect("the server stops after shutdown")
            .unwrap()
            .unwrap();
    }
}

pub fn now_ms() -> i64 {
    SystemClock.now_ms()
}

/// Claims for the test agent: read-write, no network, valid for 10 minutes.
pub fn claims(tools: &[&str]) -> GrantClaims {
    GrantClaims {
        turn_id: "turn-1".into(),
        session_key: SESSION.into(),
        agent_id: "main".into(),
        allowed_tools: tools.iter().map(|t| (*t).to_owned()).collect(),
        expires_at_ms: now_ms() + 600_000,
        workspace_access: WorkspaceAccess::ReadWrite.into(),
        network: NetworkAccess::None.into(),
        exec_policy: None,
        sandbox: None,
    }
}

pub fn sign(claims: &GrantClaims) -> Option<TurnGrant> {
    Some(sign_claims(&testing::gateway_key(), claims))
}

/// A grant for `tools` (read-write, no network).
pub fn grant(tools: &[&str]) -> Option<TurnGrant> {
    sign(&claims(tools))
}

/// Every file tool.
pub const FILE_TOOLS: &[&str] = &[
    "read_file",
    "write_file",
    "edit_file",
    "apply_patch",
    "list_dir",
];
