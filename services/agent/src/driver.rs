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
use crate::tools::{EXEC_TOOL, ExecArgs, render_exec_response};
use crate::turn::{Action, PlannedCall, Turn};

/// The stream of events to the gateway.
pub type EventSender = mpsc::Sender<Result<TurnEvent, Status>>;

/// The executor client, presenting the agent's credential.
pub type ExecutorClient = ExecutorServiceClient<InterceptedService<Channel, PresentCredential>>;

/// Extra time the executor gets beyond the command's own limit before the call is dropped.
const EXEC_GRACE: Duration = Duration::from_secs(30);

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
        let (content, ok) = match call.name.as_str() {
            EXEC_TOOL => self.exec(call, grant, session_key).await,
            other => (format!("tool {other:?} cannot be run by this agent"), false),
        };
        ToolResult {
            call_id: call.id.clone(),
            tool: call.name.clone(),
            content,
            is_error: !ok,
        }
    }

    async fn exec(
        &self,
        call: &ToolCall,
        grant: Option<TurnGrant>,
        session_key: &str,
    ) -> (String, bool) {
        let args = match ExecArgs::parse(&call.arguments_json) {
            Ok(args) => args,
            Err(problem) => return (format!("invalid exec arguments: {problem}"), false),
        };
        let request = args.into_request(grant, session_key, self.exec.timeout);
        let mut request_with_deadline = tonic::Request::new(request);
        let limit = Duration::from_millis(u64::from(request_with_deadline.get_ref().timeout_ms));
        request_with_deadline.set_timeout(limit + EXEC_GRACE);
        let max_bytes = usize::try_from(self.exec.max_output_bytes).unwrap_or(usize::MAX);
        match self.executor.clone().exec(request_with_deadline).await {
            Ok(response) => render_exec_response(response.get_ref(), max_bytes),
            Err(status) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "executor call failed");
                let content = format!(
                    "exec failed: the executor answered {:?}: {}",
                    status.code(),
                    status.message()
                );
                (content, false)
            }
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
