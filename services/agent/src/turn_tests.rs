//! Unit and property tests of the turn state machine.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::model::StopReason;

fn setup(max_iterations: u32, tools: &[&str]) -> TurnSetup {
    TurnSetup {
        system_prompt: "sys".into(),
        tools: tools
            .iter()
            .map(|n| ToolDefinition {
                name: (*n).into(),
                description: "d".into(),
                parameters: json!({"type": "object"}),
            })
            .collect(),
        max_iterations,
        max_tokens: 50,
        stream: StreamMode::Whole,
    }
}

fn answer(text: &str, calls: &[(&str, &str)]) -> ModelResponse {
    ModelResponse {
        text: text.into(),
        tool_calls: calls
            .iter()
            .map(|(id, name)| ToolCall {
                id: (*id).into(),
                name: (*name).into(),
                arguments_json: "{}".into(),
            })
            .collect(),
        stop_reason: if calls.is_empty() {
            StopReason::EndTurn
        } else {
            StopReason::ToolUse
        },
        usage: TokenUsage {
            input_tokens: 10,
            output_tokens: 2,
        },
    }
}

fn ok_result(id: &str) -> ToolResult {
    ToolResult {
        call_id: id.into(),
        tool: "exec".into(),
        content: "done".into(),
        is_error: false,
    }
}

#[test]
fn history_then_user_text_then_final() {
    let history = vec![
        HistoryMessage {
            role: HistoryRole::Assistant,
            text: "orphan greeting".into(),
        },
        HistoryMessage {
            role: HistoryRole::User,
            text: "earlier".into(),
        },
        HistoryMessage {
            role: HistoryRole::Assistant,
            text: "  ".into(),
        },
        HistoryMessage {
            role: HistoryRole::Assistant,
            text: "reply".into(),
        },
    ];
    let mut turn = Turn::new(setup(4, &[]), history, "now".into());
    let Action::CallModel(request) = turn.next_action() else {
        panic!("expected a model call");
    };
    assert_eq!(
        request.messages,
        vec![
            Message::User {
                text: "earlier".into()
            },
            Message::Assistant {
                text: "reply".into(),
                tool_calls: vec![]
            },
            Message::User { text: "now".into() },
        ]
    );
    assert_eq!(request.system, "sys");
    turn.on_model_response(answer("hello", &[])).unwrap();
    assert_eq!(
        turn.next_action(),
        Action::Finish(FinalAnswer {
            text: "hello".into(),
            stop_reason: "stop".into()
        })
    );
    assert_eq!(turn.model_calls(), 1);
    assert_eq!(turn.usage().input_tokens, 10);
    assert_eq!(
        turn.on_model_response(answer("again", &[])),
        Err(TurnError::UnexpectedModelResponse)
    );
}

#[test]
fn tool_round_trip_feeds_results_back_in_call_order() {
    let mut turn = Turn::new(setup(4, &["exec"]), vec![], "list files".into());
    turn.on_model_response(answer(
        "",
        &[("a", "exec"), ("b", "browser"), ("c", "exec")],
    ))
    .unwrap();
    let Action::RunTools(planned) = turn.next_action() else {
        panic!("expected tools");
    };
    assert!(matches!(&planned[0], PlannedCall::Run(c) if c.id == "a"));
    let PlannedCall::Refused { result, .. } = &planned[1] else {
        panic!("browser must be refused");
    };
    assert!(result.is_error);
    assert!(result.content.contains("available tools: exec"));
    assert!(matches!(&planned[2], PlannedCall::Run(c) if c.id == "c"));
    assert_eq!(
        turn.on_tool_results(vec![ok_result("a")]),
        Err(TurnError::ResultsMismatch)
    );
    turn.on_tool_results(vec![ok_result("c"), ok_result("a")])
        .unwrap();
    let Action::CallModel(request) = turn.next_action() else {
        panic!("expected a model call");
    };
    let Some(Message::ToolResults(results)) = request.messages.last() else {
        panic!("expected tool results last");
    };
    let ids: Vec<&str> = results.iter().map(|r| r.call_id.as_str()).collect();
    assert_eq!(ids, vec!["a", "b", "c"]);
    turn.on_model_response(answer("two files", &[])).unwrap();
    assert!(matches!(turn.next_action(), Action::Finish(f) if f.text == "two files"));
}

#[test]
fn iteration_limit_finishes_with_a_clear_text_and_skips_unusable_tools() {
    let mut turn = Turn::new(setup(2, &["exec"]), vec![], "loop".into());
    turn.on_model_response(answer("", &[("x", "exec")]))
        .unwrap();
    turn.on_tool_results(vec![ok_result("x")]).unwrap();
    turn.on_model_response(answer("still going", &[("x", "exec")]))
        .unwrap();
    let Action::Finish(f) = turn.next_action() else {
        panic!("the second call was the last");
    };
    assert_eq!(f.stop_reason, "max_iterations");
    assert!(f.text.starts_with("still going"));
    assert!(f.text.contains("limit of 2 model calls"));
}

#[test]
fn missing_and_duplicate_ids_are_replaced() {
    let mut turn = Turn::new(setup(3, &["exec"]), vec![], "go".into());
    turn.on_model_response(answer("", &[("", "exec"), ("d", "exec"), ("d", "exec")]))
        .unwrap();
    let Action::RunTools(planned) = turn.next_action() else {
        panic!("expected tools");
    };
    let ids: HashSet<String> = planned
        .iter()
        .map(|p| match p {
            PlannedCall::Run(c) | PlannedCall::Refused { call: c, .. } => c.id.clone(),
        })
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|id| !id.is_empty()));
}

fn arb_response() -> impl Strategy<Value = ModelResponse> {
    let call = (
        prop_oneof![Just(String::new()), "[a-c]{1,2}"],
        prop_oneof![
            Just("exec".to_owned()),
            Just("other".to_owned()),
            Just(String::new())
        ],
    );
    (
        "[a-z ]{0,8}",
        proptest::collection::vec(call, 0..4),
        prop_oneof![
            Just(StopReason::EndTurn),
            Just(StopReason::ToolUse),
            Just(StopReason::MaxTokens),
            Just(StopReason::Other("content_filter".into())),
        ],
    )
        .prop_map(|(text, calls, stop_reason)| ModelResponse {
            text,
            tool_calls: calls
                .into_iter()
                .map(|(id, name)| ToolCall {
                    id,
                    name,
                    arguments_json: "{}".into(),
                })
                .collect(),
            stop_reason,
            usage: TokenUsage::default(),
        })
}

proptest! {
    #[test]
    fn always_terminates_within_max_iterations(
        max in 1u32..8,
        offered in prop_oneof![Just(vec![]), Just(vec!["exec"])],
        responses in proptest::collection::vec(arb_response(), 1..40),
    ) {
        let mut turn = Turn::new(setup(max, &offered), vec![], "hi".into());
        let mut responses = responses.into_iter().cycle();
        let mut model_calls = 0u32;
        let mut steps = 0u32;
        let answer = loop {
            steps += 1;
            prop_assert!(steps <= 2 * max + 2, "too many steps");
            match turn.next_action() {
                Action::CallModel(request) => {
                    model_calls += 1;
                    prop_assert!(model_calls <= max);
                    let ends_right = matches!(request.messages.last(), Some(Message::User { .. } | Message::ToolResults(_)));
                    prop_assert!(ends_right);
                    let response = responses.next().ok_or_else(|| TestCaseError::fail("no response"))?;
                    prop_assert!(turn.on_model_response(response).is_ok());
                }
                Action::RunTools(planned) => {
                    let mut results = Vec::new();
                    for p in &planned {
                        if let PlannedCall::Run(call) = p {
                            prop_assert!(offered.contains(&call.name.as_str()), "ran a tool that was not offered");
                            results.push(ToolResult { call_id: call.id.clone(), tool: call.name.clone(), content: String::new(), is_error: false });
                        }
                    }
                    prop_assert!(turn.on_tool_results(results).is_ok());
                }
                Action::Finish(answer) => break answer,
            }
        };
        prop_assert_eq!(turn.model_calls(), model_calls);
        if answer.stop_reason == "max_iterations" {
            prop_assert_eq!(model_calls, max);
        }
    }
}
