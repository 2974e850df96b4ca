//! The agent's gRPC service end to end, in-process: a fake gateway (history), a fake
//! executor and a scripted LLM, all on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use pincer_proto::v1::agent_service_client::AgentServiceClient;
use pincer_proto::v1::{
    ExecResponse, HistoryEntry, HistoryRole, RunTurnRequest, TurnEvent, TurnGrant, exec_request,
    turn_event::Kind,
};
use pincer_runtime::Secret;
use pincer_runtime::service_auth::{PresentCredential, ServiceName};
use serde_json::json;
use support::llm::{Reply, ScriptedLlm, openai_exec_stream, openai_text_stream};
use support::peers::{self, FakeExecutor, FakeGateway, GATEWAY_SECRET, RunningAgent};
use tonic::Code;
use tonic::transport::Channel;

struct Stack {
    llm: ScriptedLlm,
    gateway: FakeGateway,
    executor: FakeExecutor,
    agent: RunningAgent,
}

async fn stack(replies: Vec<Reply>, executor: FakeExecutor, stream: bool) -> Stack {
    let llm = ScriptedLlm::start(replies).await;
    let gateway = FakeGateway {
        entries: vec![
            HistoryEntry {
                role: HistoryRole::User as i32,
                text: "what is my name?".into(),
                created_at_ms: 1,
            },
            HistoryEntry {
                role: HistoryRole::Assistant as i32,
                text: "You are Ada.".into(),
                created_at_ms: 2,
            },
        ],
        ..FakeGateway::default()
    };
    let gateway_addr = gateway.clone().start().await;
    let executor_addr = executor.clone().start().await;
    let config = peers::config(&llm.base_url(), gateway_addr, executor_addr, stream);
    let agent = peers::start_agent(&config).await;
    Stack {
        llm,
        gateway,
        executor,
        agent,
    }
}

/// A grant as the gateway would send it; the agent never verifies it (the executor does),
/// so the signature here is opaque bytes the fake executor checks for being forwarded.
fn grant(tools: &[&str]) -> TurnGrant {
    use prost::Message;
    TurnGrant {
        claims: pincer_proto::v1::GrantClaims {
            turn_id: "turn-1".into(),
            session_key: "main".into(),
            agent_id: "default".into(),
            allowed_tools: tools.iter().map(|t| (*t).to_owned()).collect(),
            expires_at_ms: 4_102_444_800_000,
            ..Default::default()
        }
        .encode_to_vec(),
        signature: vec![7; 64],
        key_id: "gateway-key".into(),
    }
}

fn run_request(grant: TurnGrant) -> RunTurnRequest {
    RunTurnRequest {
        turn_id: "turn-1".into(),
        session_key: "main".into(),
        agent_id: "default".into(),
        user_text: "list my files".into(),
        grant: Some(grant),
    }
}

async fn gateway_client(
    url: &str,
    secret: &str,
) -> AgentServiceClient<tonic::service::interceptor::InterceptedService<Channel, PresentCredential>>
{
    let channel = Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let present = PresentCredential::new(ServiceName::Gateway, &Secret::new(secret)).unwrap();
    AgentServiceClient::with_interceptor(channel, present)
}

async fn collect(stream: &mut tonic::Streaming<TurnEvent>) -> Result<Vec<Kind>, tonic::Status> {
    let mut events = Vec::new();
    while let Some(event) = stream.message().await? {
        events.push(event.kind.unwrap());
    }
    Ok(events)
}

#[tokio::test]
async fn exec_round_trip_streams_the_final_answer() {
    let executor = FakeExecutor {
        response: ExecResponse {
            exit_code: 0,
            stdout: b"notes.md\ntodo.txt\n".to_vec(),
            duration_ms: 3,
            ..ExecResponse::default()
        },
        ..FakeExecutor::default()
    };
    let s = stack(
        vec![
            Reply::sse(openai_exec_stream(
                "call_1",
                r#"{"command":"ls","timeout_seconds":5}"#,
            )),
            Reply::sse(openai_text_stream("You have two files.")),
        ],
        executor,
        true,
    )
    .await;
    let mut client = gateway_client(&s.agent.url, GATEWAY_SECRET).await;
    let g = grant(&["exec"]);
    let mut stream = client
        .run_turn(run_request(g.clone()))
        .await
        .unwrap()
        .into_inner();
    let events = collect(&mut stream).await.unwrap();

    // Events: tool call, its result, the streamed text, usage, final.
    let Kind::ToolCall(started) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(
        (started.call_id.as_str(), started.tool.as_str()),
        ("call_1", "exec")
    );
    let Kind::ToolResult(finished) = &events[1] else {
        panic!("{events:?}")
    };
    assert!(finished.ok);
    assert!(
        finished.content.contains("notes.md\ntodo.txt"),
        "{}",
        finished.content
    );
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            Kind::TextDelta(d) => Some(d.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "You have two files.");
    let n = events.len();
    let Kind::Usage(usage) = &events[n - 2] else {
        panic!("{events:?}")
    };
    assert_eq!(usage.model_calls, 2);
    assert_eq!(usage.input_tokens, 31);
    let Kind::Final(last) = &events[n - 1] else {
        panic!("{events:?}")
    };
    assert_eq!(last.text, "You have two files.");
    assert_eq!(last.stop_reason, "stop");

    // The executor got the grant untouched and the shell line.
    let execs = s.executor.requests.lock().unwrap().clone();
    assert_eq!(execs.len(), 1);
    assert_eq!(execs[0].grant, Some(g));
    assert_eq!(
        execs[0].command,
        Some(exec_request::Command::Shell("ls".into()))
    );
    assert_eq!(execs[0].timeout_ms, 5_000);

    // The gateway was asked for history with the configured limit.
    let history = s.gateway.requests.lock().unwrap().clone();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].session_key.as_str(), history[0].max_entries),
        ("main", 10)
    );

    // The model saw history, then the user text, then the tool result.
    let calls = s.llm.requests();
    assert_eq!(calls.len(), 2);
    let first = &calls[0].body;
    assert_eq!(
        first["messages"][0],
        json!({"role": "system", "content": "You are a test."})
    );
    assert_eq!(first["messages"][1]["content"], "what is my name?");
    assert_eq!(first["messages"][2]["content"], "You are Ada.");
    assert_eq!(first["messages"][3]["content"], "list my files");
    assert_eq!(first["tools"][0]["function"]["name"], "exec");
    assert_eq!(
        calls[0].headers["authorization"],
        format!("Bearer {}", peers::API_KEY).as_str()
    );
    let tool_message = calls[1].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(tool_message["role"], "tool");
    assert_eq!(tool_message["tool_call_id"], "call_1");
    assert!(
        tool_message["content"]
            .as_str()
            .unwrap()
            .contains("todo.txt")
    );

    s.agent.shutdown.cancel();
    s.agent.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn calls_without_the_gateway_credential_are_refused() {
    let s = stack(vec![], FakeExecutor::default(), true).await;
    let channel = Channel::from_shared(s.agent.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let err = AgentServiceClient::new(channel)
        .run_turn(run_request(grant(&["exec"])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // The agent's own credential is not the gateway's.
    let mut wrong = gateway_client(&s.agent.url, peers::AGENT_SECRET).await;
    let err = wrong
        .run_turn(run_request(grant(&["exec"])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(s.llm.requests().is_empty());
    assert!(s.gateway.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_grant_without_exec_never_offers_or_runs_it() {
    // The model asks for exec anyway (non-streaming here); the call is refused, not run.
    let asks_for_exec = Reply::ok(json!({
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "call_x", "type": "function", "function": {"name": "exec", "arguments": "{\"command\":\"rm -rf /\"}"}}]}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1}
    }));
    let answers = Reply::ok(json!({
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "I cannot run commands here."}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1}
    }));
    let s = stack(vec![asks_for_exec, answers], FakeExecutor::default(), false).await;
    let mut client = gateway_client(&s.agent.url, GATEWAY_SECRET).await;
    let mut stream = client
        .run_turn(run_request(grant(&["read_file"])))
        .await
        .unwrap()
        .into_inner();
    let events = collect(&mut stream).await.unwrap();
    let refused = events.iter().find_map(|e| match e {
        Kind::ToolResult(r) => Some(r.clone()),
        _ => None,
    });
    let refused = refused.unwrap();
    assert!(!refused.ok);
    assert!(
        refused.content.contains("not available"),
        "{}",
        refused.content
    );
    let Some(Kind::Final(last)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(last.text, "I cannot run commands here.");
    let calls = s.llm.requests();
    assert!(
        calls.iter().all(|c| c.body.get("tools").is_none()),
        "exec was offered"
    );
    assert!(
        s.executor.requests.lock().unwrap().is_empty(),
        "exec was run"
    );
}

#[tokio::test]
async fn dropping_the_stream_stops_the_turn() {
    let slow = FakeExecutor {
        delay: Duration::from_millis(500),
        ..FakeExecutor::default()
    };
    let s = stack(
        vec![
            Reply::sse(openai_exec_stream("call_1", r#"{"command":"sleep 1"}"#)),
            Reply::sse(openai_text_stream("should never be asked")),
        ],
        slow,
        true,
    )
    .await;
    let mut client = gateway_client(&s.agent.url, GATEWAY_SECRET).await;
    let mut stream = client
        .run_turn(run_request(grant(&["exec"])))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert!(matches!(first.kind, Some(Kind::ToolCall(_))));
    drop(stream);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        s.llm.requests().len(),
        1,
        "the model was called after the gateway left"
    );
}

#[tokio::test]
async fn provider_rejection_ends_the_stream_with_a_status() {
    let rejected = Reply::status(
        401,
        vec![],
        json!({"error": {"message": "Incorrect API key provided"}}),
    );
    let s = stack(vec![rejected], FakeExecutor::default(), true).await;
    let mut client = gateway_client(&s.agent.url, GATEWAY_SECRET).await;
    let mut stream = client
        .run_turn(run_request(grant(&["exec"])))
        .await
        .unwrap()
        .into_inner();
    let err = collect(&mut stream).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("fake answered HTTP 401"),
        "{}",
        err.message()
    );
    assert!(!err.message().contains(peers::API_KEY));

    let mut empty = run_request(grant(&[]));
    empty.user_text = "  ".into();
    let err = client.run_turn(empty).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn shutdown_waits_for_a_running_turn() {
    let slow = FakeExecutor {
        delay: Duration::from_millis(400),
        response: ExecResponse {
            stdout: b"done\n".to_vec(),
            ..ExecResponse::default()
        },
        ..FakeExecutor::default()
    };
    let s = stack(
        vec![
            Reply::sse(openai_exec_stream("call_1", r#"{"command":"make"}"#)),
            Reply::sse(openai_text_stream("Built.")),
        ],
        slow,
        true,
    )
    .await;
    let mut client = gateway_client(&s.agent.url, GATEWAY_SECRET).await;
    let mut stream = client
        .run_turn(run_request(grant(&["exec"])))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert!(matches!(first.kind, Some(Kind::ToolCall(_))));
    s.agent.shutdown.cancel();
    let events = collect(&mut stream).await.unwrap();
    let Some(Kind::Final(last)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(last.text, "Built.");
    tokio::time::timeout(Duration::from_secs(5), s.agent.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
