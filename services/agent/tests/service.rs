//! The agent's gRPC service end to end, in-process: a fake gateway (history), a fake
//! executor and a scripted LLM, all on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use pincer_proto::v1::agent_service_client::AgentServiceClient;
use pincer_proto::v1::{
    ExecResponse, HistoryEntry, HistoryRole, ReadFileResponse, RunTurnRequest, TurnEvent,
    TurnGrant, exec_request, turn_event::Kind,
};
use pincer_runtime::Secret;
use pincer_runtime::service_auth::{PresentCredential, ServiceName};
use serde_json::json;
use support::llm::{Reply, ScriptedLlm, openai_exec_stream, openai_text_stream};
use support::peers::{
    self, FAKE_PROCESS_ID, FakeExecutor, FakeGateway, GATEWAY_SECRET, RunningAgent, ToolRequest,
};
use tonic::Code;
use tonic::transport::Channel;

struct Stack {
    llm: ScriptedLlm,
    gateway: FakeGateway,
    executor: FakeExecutor,
    agent: RunningAgent,
}

async fn stack(replies: Vec<Reply>, executor: FakeExecutor, stream: bool) -> Stack {
    stack_with_tools(replies, executor, stream, "exec: { timeoutSeconds: 20 }").await
}

/// [`stack`] with `tools` as the body of the config's `tools` object.
async fn stack_with_tools(
    replies: Vec<Reply>,
    executor: FakeExecutor,
    stream: bool,
    tools: &str,
) -> Stack {
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
    let config =
        peers::config_with_tools(&llm.base_url(), gateway_addr, executor_addr, stream, tools);
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
    // Only what the grant lists is offered: read_file, never exec.
    assert!(
        calls.iter().all(|c| offered(&c.body) == ["read_file"]),
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

/// An OpenAI Chat Completions answer (not streamed) calling `calls` = (id, tool, arguments).
fn tool_calls(calls: &[(&str, &str, &str)]) -> Reply {
    let calls: Vec<serde_json::Value> = calls
        .iter()
        .map(|(id, name, args)| {
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})
        })
        .collect();
    Reply::ok(json!({
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null, "tool_calls": calls}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1}
    }))
}

fn answer(text: &str) -> Reply {
    Reply::ok(json!({
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1}
    }))
}

fn tool_results(events: &[Kind]) -> Vec<pincer_proto::v1::ToolCallFinished> {
    events
        .iter()
        .filter_map(|e| match e {
            Kind::ToolResult(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn offered(body: &serde_json::Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .map(|t| t["function"]["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn file_tools_are_offered_and_dispatched_with_the_grant() {
    let executor = FakeExecutor {
        read_file: ReadFileResponse {
            content: b"remember the milk\n".to_vec(),
            total_bytes: 18,
            next_offset: 18,
            ..ReadFileResponse::default()
        },
        ..FakeExecutor::default()
    };
    let s = stack(
        vec![
            tool_calls(&[
                ("call_r", "read_file", r#"{"path":"notes.md"}"#),
                (
                    "call_bad",
                    "read_file",
                    r#"{"path":"notes.md","encoding":"utf8"}"#,
                ),
            ]),
            tool_calls(&[(
                "call_w",
                "write_file",
                r#"{"path":"out/todo.md","content":"- milk\n"}"#,
            )]),
            answer("Saved your todo."),
        ],
        executor,
        false,
    )
    .await;
    let mut client = gateway_client(&s.agent.url, GATEWAY_SECRET).await;
    let g = grant(&["read_file", "write_file", "list_dir"]);
    let mut stream = client
        .run_turn(run_request(g.clone()))
        .await
        .unwrap()
        .into_inner();
    let events = collect(&mut stream).await.unwrap();
    let results = tool_results(&events);
    assert_eq!(results.len(), 3, "{events:?}");
    assert!(results[0].ok);
    assert!(
        results[0]
            .content
            .contains("notes.md (18 bytes)\nremember the milk"),
        "{}",
        results[0].content
    );
    // Bad arguments never reach the executor; the model is told what to fix.
    assert!(!results[1].ok);
    assert!(
        results[1].content.contains("unknown argument \"encoding\""),
        "{}",
        results[1].content
    );
    assert!(results[2].ok, "{}", results[2].content);
    assert!(results[2].content.contains("created out/todo.md"));
    let Some(Kind::Final(last)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(last.text, "Saved your todo.");

    let received = s.executor.tool_requests.lock().unwrap().clone();
    assert_eq!(received.len(), 2, "{received:?}");
    let ToolRequest::ReadFile(read) = &received[0] else {
        panic!("{received:?}")
    };
    assert_eq!(read.grant, Some(g.clone()));
    assert_eq!(
        (read.session_key.as_str(), read.path.as_str()),
        ("main", "notes.md")
    );
    assert_eq!(read.limit, 65_536);
    let ToolRequest::WriteFile(write) = &received[1] else {
        panic!("{received:?}")
    };
    assert_eq!(write.grant, Some(g));
    assert_eq!(write.content, b"- milk\n");
    assert!(write.create_parents);
    assert!(
        s.executor.requests.lock().unwrap().is_empty(),
        "exec was run"
    );

    // Offered: the granted file tools only, with strict schemas.
    let calls = s.llm.requests();
    assert_eq!(
        offered(&calls[0].body),
        ["read_file", "write_file", "list_dir"]
    );
    assert_eq!(
        calls[0].body["tools"][0]["function"]["parameters"]["additionalProperties"],
        false
    );
}

#[tokio::test]
async fn an_executor_refusal_is_a_tool_result_the_model_reads() {
    let executor = FakeExecutor {
        web_refusal: Some("web_fetch: blocked: 127.0.0.1 is loopback, in 127.0.0.0/8".into()),
        ..FakeExecutor::default()
    };
    let s = stack(
        vec![
            tool_calls(&[("call_1", "web_fetch", r#"{"url":"http://127.0.0.1/"}"#)]),
            answer("That address is not reachable."),
        ],
        executor,
        false,
    )
    .await;
    let mut client = gateway_client(&s.agent.url, GATEWAY_SECRET).await;
    let mut stream = client
        .run_turn(run_request(grant(&["web_fetch"])))
        .await
        .unwrap()
        .into_inner();
    let events = collect(&mut stream).await.unwrap();
    let results = tool_results(&events);
    assert_eq!(results.len(), 1);
    assert!(!results[0].ok);
    assert!(
        results[0]
            .content
            .contains("PermissionDenied: web_fetch: blocked: 127.0.0.1 is loopback"),
        "{}",
        results[0].content
    );
    let calls = s.llm.requests();
    assert_eq!(offered(&calls[0].body), ["web_fetch"]);
    let tool_message = calls[1].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(tool_message["tool_call_id"], "call_1");
    assert!(
        tool_message["content"]
            .as_str()
            .unwrap()
            .contains("loopback")
    );
    let received = s.executor.tool_requests.lock().unwrap().clone();
    let [ToolRequest::WebFetch(fetch)] = received.as_slice() else {
        panic!("{received:?}")
    };
    assert_eq!(fetch.url, "http://127.0.0.1/");
}

#[tokio::test]
async fn tools_disabled_in_the_config_are_not_offered_whatever_the_grant() {
    let s = stack_with_tools(
        vec![answer("ok")],
        FakeExecutor::default(),
        false,
        "files: { enabled: false }, webFetch: { enabled: false }",
    )
    .await;
    let mut client = gateway_client(&s.agent.url, GATEWAY_SECRET).await;
    let every = [
        "exec",
        "read_file",
        "write_file",
        "edit_file",
        "apply_patch",
        "list_dir",
        "web_fetch",
    ];
    let mut stream = client
        .run_turn(run_request(grant(&every)))
        .await
        .unwrap()
        .into_inner();
    collect(&mut stream).await.unwrap();
    assert_eq!(offered(&s.llm.requests()[0].body), ["exec"]);
}

#[tokio::test]
async fn the_process_tool_is_offered_with_exec_and_dispatched_by_action() {
    let executor = FakeExecutor {
        process_output: b"Serving HTTP on 0.0.0.0 port 8000\n".to_vec(),
        ..FakeExecutor::default()
    };
    let poll = format!(r#"{{"action":"poll","process_id":"{FAKE_PROCESS_ID}","wait_seconds":2}}"#);
    let write = format!(r#"{{"action":"write","process_id":"{FAKE_PROCESS_ID}","input":"q\n"}}"#);
    let kill = format!(r#"{{"action":"kill","process_id":"{FAKE_PROCESS_ID}"}}"#);
    let s = stack(
        vec![
            tool_calls(&[(
                "call_s",
                "process",
                r#"{"action":"start","command":"python3 -m http.server","timeout_seconds":600}"#,
            )]),
            tool_calls(&[
                ("call_p", "process", &poll),
                ("call_w", "process", &write),
                (
                    "call_bad",
                    "process",
                    r#"{"action":"poll","process_id":"p","command":"ls"}"#,
                ),
            ]),
            tool_calls(&[
                ("call_k", "process", &kill),
                ("call_l", "process", r#"{"action":"list"}"#),
            ]),
            answer("The server ran and is stopped."),
        ],
        executor,
        false,
    )
    .await;
    let mut client = gateway_client(&s.agent.url, GATEWAY_SECRET).await;
    let g = grant(&["exec", "process"]);
    let mut stream = client
        .run_turn(run_request(g.clone()))
        .await
        .unwrap()
        .into_inner();
    let events = collect(&mut stream).await.unwrap();
    let results = tool_results(&events);
    assert_eq!(results.len(), 6, "{events:?}");
    let content: Vec<&str> = results.iter().map(|r| r.content.as_str()).collect();
    assert!(results[0].ok, "{}", content[0]);
    assert!(
        content[0].contains(&format!("process {FAKE_PROCESS_ID}: running")),
        "{}",
        content[0]
    );
    assert!(
        content[1].contains("--- stdout ---\nServing HTTP on 0.0.0.0 port 8000"),
        "{}",
        content[1]
    );
    assert!(content[2].contains("wrote 2 of 2 bytes"), "{}", content[2]);
    assert!(!results[3].ok);
    assert!(
        content[3].contains("does not go with action \"poll\""),
        "{}",
        content[3]
    );
    assert!(content[4].contains("killed"), "{}", content[4]);
    assert!(
        content[5].contains("python3 -m http.server"),
        "{}",
        content[5]
    );

    let received = s.executor.tool_requests.lock().unwrap().clone();
    assert_eq!(
        received.len(),
        5,
        "the bad call never reached the executor: {received:?}"
    );
    let ToolRequest::ProcessStart(start) = &received[0] else {
        panic!("{received:?}")
    };
    assert_eq!(
        (start.grant.as_ref(), start.session_key.as_str()),
        (Some(&g), "main")
    );
    assert_eq!(start.timeout_ms, 600_000);
    let ToolRequest::ProcessPoll(p) = &received[1] else {
        panic!("{received:?}")
    };
    assert_eq!((p.process_id.as_str(), p.wait_ms), (FAKE_PROCESS_ID, 2_000));
    let ToolRequest::ProcessWrite(w) = &received[2] else {
        panic!("{received:?}")
    };
    assert_eq!(w.data, b"q\n");
    assert!(matches!(received[3], ToolRequest::ProcessKill(_)));
    assert!(matches!(received[4], ToolRequest::ProcessList(_)));
    assert_eq!(offered(&s.llm.requests()[0].body), ["exec", "process"]);
}
