//! Fake gRPC peers of the agent (gateway `GetHistory`, executor `Exec`, the file and web
//! tools and the `process` RPCs), a config builder, and a helper that starts the agent
//! in-process.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pincer_agent::providers::RetryPolicy;
use pincer_agent::{Agent, AgentOptions, AgentSecrets};
use pincer_proto::v1::executor_service_server::{ExecutorService, ExecutorServiceServer};
use pincer_proto::v1::gateway_service_server::{GatewayService, GatewayServiceServer};
use pincer_proto::v1::{
    ApplyPatchRequest, ApplyPatchResponse, EditFileRequest, EditFileResponse, ExecRequest,
    ExecResponse, GetHistoryRequest, GetHistoryResponse, HistoryEntry, ListDirRequest,
    ListDirResponse, ProcessInfo, ProcessKillRequest, ProcessKillResponse, ProcessListRequest,
    ProcessListResponse, ProcessPollRequest, ProcessPollResponse, ProcessStartRequest,
    ProcessStartResponse, ProcessState, ProcessWriteRequest, ProcessWriteResponse, ReadFileRequest,
    ReadFileResponse, WebFetchRequest, WebFetchResponse, WriteFileRequest, WriteFileResponse,
};
use pincer_runtime::Secret;
use pincer_runtime::secret::MapSecrets;
use pincer_runtime::service_auth::{RequireCaller, ServiceName};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

pub const GATEWAY_SECRET: &str = "gateway-credential-for-tests";
pub const AGENT_SECRET: &str = "agent-credential-for-tests";
pub const API_KEY: &str = "sk-test-key-7f3a";

async fn loopback() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

fn agent_only() -> RequireCaller {
    RequireCaller::new(vec![(ServiceName::Agent, Secret::new(AGENT_SECRET))])
}

/// A gateway answering `GetHistory` with fixed entries.
#[derive(Clone, Default)]
pub struct FakeGateway {
    pub entries: Vec<HistoryEntry>,
    pub requests: Arc<Mutex<Vec<GetHistoryRequest>>>,
}

#[tonic::async_trait]
impl GatewayService for FakeGateway {
    async fn get_history(
        &self,
        request: Request<GetHistoryRequest>,
    ) -> Result<Response<GetHistoryResponse>, Status> {
        self.requests.lock().unwrap().push(request.into_inner());
        Ok(Response::new(GetHistoryResponse {
            entries: self.entries.clone(),
        }))
    }
}

impl FakeGateway {
    pub async fn start(self) -> SocketAddr {
        let (listener, addr) = loopback().await;
        let service = GatewayServiceServer::with_interceptor(self, agent_only());
        tokio::spawn(
            Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        addr
    }
}

/// A file or web request the fake executor received.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolRequest {
    ReadFile(ReadFileRequest),
    WriteFile(WriteFileRequest),
    EditFile(EditFileRequest),
    ApplyPatch(ApplyPatchRequest),
    ListDir(ListDirRequest),
    WebFetch(WebFetchRequest),
    ProcessStart(ProcessStartRequest),
    ProcessPoll(ProcessPollRequest),
    ProcessWrite(ProcessWriteRequest),
    ProcessKill(ProcessKillRequest),
    ProcessList(ProcessListRequest),
}

/// The one background process the fake executor pretends to run.
pub const FAKE_PROCESS_ID: &str = "proc_abcdefghijkm";

fn fake_process(state: ProcessState) -> ProcessInfo {
    ProcessInfo {
        process_id: FAKE_PROCESS_ID.into(),
        state: state.into(),
        exit_code: if state == ProcessState::Exited { 0 } else { -1 },
        command: "python3 -m http.server".into(),
        duration_ms: 1200,
        ..ProcessInfo::default()
    }
}

/// An executor answering every `Exec` with `response` after `delay`, `ReadFile` with
/// `read_file`, `WebFetch` with `web_fetch` (or `PermissionDenied` with `web_refusal`),
/// the `process` RPCs about one process ([`FAKE_PROCESS_ID`]: running, polled output
/// `process_output`, killed on `ProcessKill`), and the other tools with empty answers.
#[derive(Clone, Default)]
pub struct FakeExecutor {
    pub response: ExecResponse,
    pub delay: Duration,
    pub requests: Arc<Mutex<Vec<ExecRequest>>>,
    pub read_file: ReadFileResponse,
    pub web_fetch: WebFetchResponse,
    pub web_refusal: Option<String>,
    pub process_output: Vec<u8>,
    pub tool_requests: Arc<Mutex<Vec<ToolRequest>>>,
}

impl FakeExecutor {
    fn record(&self, request: ToolRequest) {
        self.tool_requests.lock().unwrap().push(request);
    }
}

#[tonic::async_trait]
impl ExecutorService for FakeExecutor {
    async fn exec(&self, request: Request<ExecRequest>) -> Result<Response<ExecResponse>, Status> {
        self.requests.lock().unwrap().push(request.into_inner());
        tokio::time::sleep(self.delay).await;
        Ok(Response::new(self.response.clone()))
    }

    async fn read_file(
        &self,
        request: Request<ReadFileRequest>,
    ) -> Result<Response<ReadFileResponse>, Status> {
        self.record(ToolRequest::ReadFile(request.into_inner()));
        Ok(Response::new(self.read_file.clone()))
    }

    async fn write_file(
        &self,
        request: Request<WriteFileRequest>,
    ) -> Result<Response<WriteFileResponse>, Status> {
        let request = request.into_inner();
        let written = request.content.len() as u64;
        self.record(ToolRequest::WriteFile(request));
        Ok(Response::new(WriteFileResponse {
            bytes_written: written,
            created: true,
        }))
    }

    async fn edit_file(
        &self,
        request: Request<EditFileRequest>,
    ) -> Result<Response<EditFileResponse>, Status> {
        self.record(ToolRequest::EditFile(request.into_inner()));
        Ok(Response::new(EditFileResponse::default()))
    }

    async fn apply_patch(
        &self,
        request: Request<ApplyPatchRequest>,
    ) -> Result<Response<ApplyPatchResponse>, Status> {
        self.record(ToolRequest::ApplyPatch(request.into_inner()));
        Ok(Response::new(ApplyPatchResponse::default()))
    }

    async fn list_dir(
        &self,
        request: Request<ListDirRequest>,
    ) -> Result<Response<ListDirResponse>, Status> {
        self.record(ToolRequest::ListDir(request.into_inner()));
        Ok(Response::new(ListDirResponse::default()))
    }

    async fn web_fetch(
        &self,
        request: Request<WebFetchRequest>,
    ) -> Result<Response<WebFetchResponse>, Status> {
        self.record(ToolRequest::WebFetch(request.into_inner()));
        match &self.web_refusal {
            Some(message) => Err(Status::permission_denied(message.clone())),
            None => Ok(Response::new(self.web_fetch.clone())),
        }
    }

    async fn process_start(
        &self,
        request: Request<ProcessStartRequest>,
    ) -> Result<Response<ProcessStartResponse>, Status> {
        self.record(ToolRequest::ProcessStart(request.into_inner()));
        Ok(Response::new(ProcessStartResponse {
            process: Some(fake_process(ProcessState::Running)),
        }))
    }

    async fn process_poll(
        &self,
        request: Request<ProcessPollRequest>,
    ) -> Result<Response<ProcessPollResponse>, Status> {
        let request = request.into_inner();
        let known = request.process_id == FAKE_PROCESS_ID;
        self.record(ToolRequest::ProcessPoll(request));
        if !known {
            return Err(Status::not_found("no background process in this session"));
        }
        Ok(Response::new(ProcessPollResponse {
            process: Some(fake_process(ProcessState::Running)),
            stdout: self.process_output.clone(),
            ..ProcessPollResponse::default()
        }))
    }

    async fn process_write(
        &self,
        request: Request<ProcessWriteRequest>,
    ) -> Result<Response<ProcessWriteResponse>, Status> {
        let request = request.into_inner();
        let written = u32::try_from(request.data.len()).unwrap();
        self.record(ToolRequest::ProcessWrite(request));
        Ok(Response::new(ProcessWriteResponse {
            process: Some(fake_process(ProcessState::Running)),
            bytes_written: written,
        }))
    }

    async fn process_kill(
        &self,
        request: Request<ProcessKillRequest>,
    ) -> Result<Response<ProcessKillResponse>, Status> {
        self.record(ToolRequest::ProcessKill(request.into_inner()));
        Ok(Response::new(ProcessKillResponse {
            process: Some(fake_process(ProcessState::Killed)),
        }))
    }

    async fn process_list(
        &self,
        request: Request<ProcessListRequest>,
    ) -> Result<Response<ProcessListResponse>, Status> {
        self.record(ToolRequest::ProcessList(request.into_inner()));
        Ok(Response::new(ProcessListResponse {
            processes: vec![fake_process(ProcessState::Running)],
        }))
    }
}

impl FakeExecutor {
    pub async fn start(self) -> SocketAddr {
        let (listener, addr) = loopback().await;
        let service = ExecutorServiceServer::with_interceptor(self, agent_only());
        tokio::spawn(
            Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        addr
    }
}

/// A config for an agent using an OpenAI-compatible server at `llm_base_url`.
pub fn config(
    llm_base_url: &str,
    gateway: SocketAddr,
    executor: SocketAddr,
    stream: bool,
) -> pincer_runtime::Config {
    config_with_tools(
        llm_base_url,
        gateway,
        executor,
        stream,
        "exec: { timeoutSeconds: 20 }",
    )
}

/// [`config`] with `tools` as the body of the config's `tools` object.
pub fn config_with_tools(
    llm_base_url: &str,
    gateway: SocketAddr,
    executor: SocketAddr,
    stream: bool,
    tools: &str,
) -> pincer_runtime::Config {
    let text = format!(
        r#"{{
            services: {{
                gateway: {{ url: "http://{gateway}" }},
                executor: {{ url: "http://{executor}" }},
                agent: {{ listen: "127.0.0.1:0" }},
                credentials: {{ gateway: "{GATEWAY_SECRET}", agent: "{AGENT_SECRET}" }},
            }},
            models: {{ providers: {{ fake: {{ api: "openai-chat", baseUrl: "{llm_base_url}", apiKey: "${{FAKE_API_KEY}}" }} }} }},
            agents: {{ defaults: {{ model: "fake/test-model", maxIterations: 4, stream: {stream}, historyLimit: 10, systemPrompt: "You are a test." }} }},
            tools: {{ {tools} }},
        }}"#
    );
    pincer_runtime::config::parse_config(&text, "test").unwrap()
}

/// A running agent.
pub struct RunningAgent {
    pub url: String,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), pincer_agent::AgentError>>,
}

/// Starts the agent on 127.0.0.1:0 with secrets resolved from a map.
pub async fn start_agent(config: &pincer_runtime::Config) -> RunningAgent {
    let mut source = MapSecrets::default();
    source.env.insert("FAKE_API_KEY".into(), API_KEY.into());
    let secrets = AgentSecrets::resolve(config, &source).unwrap();
    let options = AgentOptions {
        retry: RetryPolicy {
            base_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        },
        drain_timeout: Duration::from_secs(5),
    };
    let agent = Agent::new(config, secrets, options).unwrap();
    let (listener, addr) = loopback().await;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(agent.serve(listener, shutdown.clone()));
    RunningAgent {
        url: format!("http://{addr}"),
        shutdown,
        task,
    }
}
