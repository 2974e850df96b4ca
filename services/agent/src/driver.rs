//! The async shell around the pure [`Turn`]: it calls the model, runs tools on the
//! executor, and streams [`TurnEvent`]s to the gateway. Every wait is guarded: when the
//! gateway drops the stream or the agent stops, the turn stops (no further model or tool
//! calls; the call in flight is dropped).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pincer_proto::v1::executor_service_client::ExecutorServiceClient;
use pincer_proto::v1::{
    FinalMessage, TextDelta, ToolCallFinished, ToolCallStarted, TurnEvent, TurnGrant, Usage,
    turn_event::Kind,
};
use pincer_runtime::config::validate::ExecToolConfig;
use pincer_runtime::service_auth::PresentCredential;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::error::TurnFailure;
use crate::model::{ModelClient, ModelRequest, ModelResponse, TextSink, ToolCall, ToolResult};
use crate::tools::{
    ExecutorCall, ProcessCall, executor_call, files, process, render_exec_response, web,
};
use crate::turn::{Action, PlannedCall, Turn};

/// The stream of events to the gateway.
pub type EventSender = mpsc::Sender<Result<TurnEvent, Status>>;

/// The executor client, presenting the agent's credential.
pub type ExecutorClient = ExecutorServiceClient<InterceptedService<Channel, PresentCredential>>;

/// Extra time the executor gets beyond the command's own limit before the call is dropped.
const EXEC_GRACE: Duration = Duration::from_secs(30);

/// How long a file-tool call may take on the executor.
const FILE_DEADLINE: Duration = Duration::from_secs(60);

/// How long a `web_fetch` call may take: the executor's own limit (`tools.webFetch.
/// timeoutSeconds`, at most 120 s) plus a grace.
const WEB_FETCH_DEADLINE: Duration = Duration::from_secs(150);

/// Extra time a `process` call gets beyond its own wait (a poll's wait, a start's approval
/// wait, a kill's cleanup).
const PROCESS_GRACE: Duration = Duration::from_secs(60);

/// Stops waits when the gateway goes away or the agent is stopping.
#[derive(Debug, Clone, Copy)]
pub struct Guard<'a> {
    events: &'a EventSender,
    stop: &'a CancellationToken,
}

impl<'a> Guard<'a> {
    /// A guard over this turn's event stream and the agent's stop token.
    pub fn new(events: &'a EventSender, stop: &'a CancellationToken) -> Self {
        Self { events, stop }
    }

    /// Runs `work` unless the turn is cancelled first.
    pub async fn run<F: Future>(&self, work: F) -> Result<F::Output, TurnFailure> {
        tokio::select! {
            biased;
            () = self.stop.cancelled() => Err(TurnFailure::Cancelled),
            () = self.events.closed() => Err(TurnFailure::Cancelled),
            out = work => Ok(out),
        }
    }

    /// Sends one event.
    pub async fn emit(&self, kind: Kind) -> Result<(), TurnFailure> {
        let event = TurnEvent { kind: Some(kind) };
        self.run(self.events.send(Ok(event)))
            .await?
            .map_err(|_closed| TurnFailure::Cancelled)
    }
}

/// What a turn needs to act.
#[derive(Clone)]
pub struct TurnRunner {
    /// The model.
    pub model: Arc<dyn ModelClient>,
    /// The executor.
    pub executor: ExecutorClient,
    /// `tools.exec`.
    pub exec: ExecToolConfig,
}

impl TurnRunner {
    /// Drives `turn` to its end, streaming events through `guard`.
    pub async fn drive(
        &self,
        mut turn: Turn,
        grant: Option<TurnGrant>,
        session_key: &str,
        guard: &Guard<'_>,
    ) -> Result<(), TurnFailure> {
        loop {
            match turn.next_action() {
                Action::CallModel(request) => {
                    let response = self.call_model(request, guard).await?;
                    turn.on_model_response(response)?;
                }
                Action::RunTools(planned) => {
                    let mut results = Vec::new();
                    for p in planned {
                        match p {
                            PlannedCall::Refused { call, result } => {
                                guard.emit(started(&call)).await?;
                                guard.emit(finished(&result)).await?;
                            }
                            PlannedCall::Run(call) => {
                                guard.emit(started(&call)).await?;
                                let result = guard
                                    .run(self.run_tool(&call, grant.clone(), session_key))
                                    .await?;
                                guard.emit(finished(&result)).await?;
                                results.push(result);
                            }
                        }
                    }
                    turn.on_tool_results(results)?;
                }
                Action::Finish(answer) => {
                    let usage = turn.usage();
                    guard
                        .emit(Kind::Usage(Usage {
                            input_tokens: usage.input_tokens,
                            output_tokens: usage.output_tokens,
                            model_calls: turn.model_calls(),
                        }))
                        .await?;
                    guard
                        .emit(Kind::Final(FinalMessage {
                            text: answer.text,
                            stop_reason: answer.stop_reason,
                        }))
                        .await?;
                    return Ok(());
                }
            }
        }
    }

    async fn call_model(
        &self,
        request: ModelRequest,
        guard: &Guard<'_>,
    ) -> Result<ModelResponse, TurnFailure> {
        let (sink, mut deltas) = TextSink::channel(32);
        let model = Arc::clone(&self.model);
        let call = async move {
            let response = model.complete(&request, &sink).await;
            // Closing the sink ends the forwarding loop below.
            drop(sink);
            response
        };
        let events = guard.events;
        let forward = async move {
            while let Some(text) = deltas.recv().await {
                let event = TurnEvent {
                    kind: Some(Kind::TextDelta(TextDelta { text })),
                };
                if events.send(Ok(event)).await.is_err() {
                    break;
                }
            }
        };
        let (response, ()) = guard.run(async { tokio::join!(call, forward) }).await?;
        Ok(response?)
    }

    async fn run_tool(
        &self,
        call: &ToolCall,
        grant: Option<TurnGrant>,
        session_key: &str,
    ) -> ToolResult {
        let (content, ok) = match executor_call(
            &call.name,
            &call.arguments_json,
            grant,
            session_key,
            self.exec.timeout,
        ) {
            Ok(request) => self.call_executor(&call.name, request).await,
            Err(problem) => (problem, false),
        };
        ToolResult {
            call_id: call.id.clone(),
            tool: call.name.clone(),
            content,
            is_error: !ok,
        }
    }

    /// Sends one request to the executor and renders the answer (or its refusal) for the
    /// model.
    async fn call_executor(&self, tool: &str, call: ExecutorCall) -> (String, bool) {
        let mut executor = self.executor.clone();
        match call {
            ExecutorCall::Exec(request) => {
                let limit = Duration::from_millis(u64::from(request.timeout_ms));
                let max_bytes = usize::try_from(self.exec.max_output_bytes).unwrap_or(usize::MAX);
                let result = executor.exec(deadline(request, limit + EXEC_GRACE)).await;
                outcome(tool, result, |r| render_exec_response(r, max_bytes))
            }
            ExecutorCall::ReadFile(request) => {
                let path = request.path.clone();
                let result = executor.read_file(deadline(request, FILE_DEADLINE)).await;
                outcome(tool, result, |r| (files::render_read(&path, r), true))
            }
            ExecutorCall::WriteFile(request) => {
                let path = request.path.clone();
                let result = executor.write_file(deadline(request, FILE_DEADLINE)).await;
                outcome(tool, result, |r| (files::render_write(&path, r), true))
            }
            ExecutorCall::EditFile(request) => {
                let path = request.path.clone();
                let result = executor.edit_file(deadline(request, FILE_DEADLINE)).await;
                outcome(tool, result, |r| (files::render_edit(&path, r), true))
            }
            ExecutorCall::ApplyPatch(request) => {
                let result = executor.apply_patch(deadline(request, FILE_DEADLINE)).await;
                outcome(tool, result, |r| (files::render_patch(r), true))
            }
            ExecutorCall::ListDir(request) => {
                let path = request.path.clone();
                let result = executor.list_dir(deadline(request, FILE_DEADLINE)).await;
                outcome(tool, result, |r| (files::render_list(&path, r), true))
            }
            ExecutorCall::WebFetch(request) => {
                let result = executor
                    .web_fetch(deadline(request, WEB_FETCH_DEADLINE))
                    .await;
                outcome(tool, result, web::render)
            }
            ExecutorCall::Process(call) => self.call_process(tool, executor, call).await,
        }
    }

    /// One `process` action on the executor.
    async fn call_process(
        &self,
        tool: &str,
        mut executor: ExecutorClient,
        call: ProcessCall,
    ) -> (String, bool) {
        match call {
            ProcessCall::Start(request) => {
                let limit = self.exec.approval_timeout + PROCESS_GRACE;
                let result = executor.process_start(deadline(request, limit)).await;
                outcome(tool, result, process::render_start)
            }
            ProcessCall::Poll(request) => {
                let limit = Duration::from_millis(u64::from(request.wait_ms)) + PROCESS_GRACE;
                let max_bytes = usize::try_from(self.exec.max_output_bytes).unwrap_or(usize::MAX);
                let result = executor.process_poll(deadline(request, limit)).await;
                outcome(tool, result, |r| process::render_poll(r, max_bytes))
            }
            ProcessCall::Write(request) => {
                let (sent, close) = (request.data.len(), request.close_stdin);
                let result = executor
                    .process_write(deadline(request, PROCESS_GRACE))
                    .await;
                outcome(tool, result, |r| process::render_write(sent, close, r))
            }
            ProcessCall::Kill(request) => {
                let result = executor
                    .process_kill(deadline(request, PROCESS_GRACE))
                    .await;
                outcome(tool, result, process::render_kill)
            }
            ProcessCall::List(request) => {
                let result = executor
                    .process_list(deadline(request, PROCESS_GRACE))
                    .await;
                outcome(tool, result, process::render_list)
            }
        }
    }
}

/// `request` with a gRPC deadline.
fn deadline<T>(request: T, limit: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(request);
    request.set_timeout(limit);
    request
}

/// The executor's answer rendered for the model; a refusal or failure becomes an error
/// result the model can read and act on.
fn outcome<R>(
    tool: &str,
    result: Result<tonic::Response<R>, Status>,
    render: impl FnOnce(&R) -> (String, bool),
) -> (String, bool) {
    match result {
        Ok(response) => render(response.get_ref()),
        Err(status) => {
            tracing::warn!(tool, code = ?status.code(), message = status.message(), "executor call failed");
            let content = format!(
                "{tool} failed: the executor answered {:?}: {}",
                status.code(),
                status.message()
            );
            (content, false)
        }
    }
}

fn started(call: &ToolCall) -> Kind {
    Kind::ToolCall(ToolCallStarted {
        call_id: call.id.clone(),
        tool: call.name.clone(),
        arguments_json: call.arguments_json.clone(),
    })
}

fn finished(result: &ToolResult) -> Kind {
    Kind::ToolResult(ToolCallFinished {
        call_id: result.call_id.clone(),
        tool: result.tool.clone(),
        ok: !result.is_error,
        content: result.content.clone(),
    })
}
