//! The turn loop as a pure state machine: no I/O, no async, no clock. The driver asks
//! [`Turn::next_action`] what to do, does it, and reports back through
//! [`Turn::on_model_response`] / [`Turn::on_tool_results`].
//!
//! Invariants:
//! - at most `max_iterations` model calls; then the turn finishes with stop reason
//!   `max_iterations` and a text saying so;
//! - a call to a tool that was not offered is never run: it gets an error result that the
//!   model sees, like any other tool result;
//! - tool calls made by the last allowed model call are not run (their results could
//!   never reach the model);
//! - every tool call id is non-empty and unique within the turn.

use std::collections::HashSet;

use crate::model::{
    Message, ModelRequest, ModelResponse, StreamMode, TokenUsage, ToolCall, ToolDefinition,
    ToolResult,
};

/// Bounds and shape of one turn.
#[derive(Debug, Clone)]
pub struct TurnSetup {
    /// The system prompt.
    pub system_prompt: String,
    /// Tools offered to the model this turn.
    pub tools: Vec<ToolDefinition>,
    /// Most model calls.
    pub max_iterations: u32,
    /// Most output tokens per model call.
    pub max_tokens: u32,
    /// Whether model answers are streamed.
    pub stream: StreamMode,
}

/// Who said a history entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryRole {
    /// The user.
    User,
    /// The assistant.
    Assistant,
}

/// One earlier message of the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryMessage {
    /// Who said it.
    pub role: HistoryRole,
    /// What was said.
    pub text: String,
}

/// The end of a turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalAnswer {
    /// The text for the user.
    pub text: String,
    /// Why the turn ended: `stop`, `max_tokens`, `max_iterations`, or the provider's reason.
    pub stop_reason: String,
}

/// A tool call as the turn decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedCall {
    /// Run it and report the result.
    Run(ToolCall),
    /// Do not run it; this result goes to the model.
    Refused {
        /// The call.
        call: ToolCall,
        /// The error shown to the model.
        result: ToolResult,
    },
}

/// What the driver should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Call the model with this request.
    CallModel(ModelRequest),
    /// Run the `Run` calls (in order) and report their results.
    RunTools(Vec<PlannedCall>),
    /// The turn is over.
    Finish(FinalAnswer),
}

/// The driver reported something the turn was not waiting for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TurnError {
    /// A model response arrived while the turn was not waiting for one.
    #[error("a model response arrived while the turn was not waiting for one")]
    UnexpectedModelResponse,
    /// Tool results arrived while the turn was not waiting for them.
    #[error("tool results arrived while the turn was not waiting for them")]
    UnexpectedToolResults,
    /// The results do not answer exactly the calls that were to be run.
    #[error("tool results do not match the calls that were run")]
    ResultsMismatch,
}

#[derive(Debug, Clone)]
enum State {
    NeedModel,
    NeedTools(Vec<PlannedCall>),
    Done(FinalAnswer),
}

/// One turn in progress.
#[derive(Debug, Clone)]
pub struct Turn {
    setup: TurnSetup,
    messages: Vec<Message>,
    state: State,
    model_calls: u32,
    usage: TokenUsage,
    last_text: String,
    seen_ids: HashSet<String>,
}

impl Turn {
    /// A turn answering `user_text` after `history` (oldest first). Empty history entries
    /// and assistant entries before the first user entry are dropped, so the conversation
    /// starts with the user.
    pub fn new(setup: TurnSetup, history: Vec<HistoryMessage>, user_text: String) -> Self {
        let mut messages: Vec<Message> = history
            .into_iter()
            .filter(|h| !h.text.trim().is_empty())
            .skip_while(|h| h.role == HistoryRole::Assistant)
            .map(|h| match h.role {
                HistoryRole::User => Message::User { text: h.text },
                HistoryRole::Assistant => Message::Assistant {
                    text: h.text,
                    tool_calls: Vec::new(),
                },
            })
            .collect();
        messages.push(Message::User { text: user_text });
        Self {
            setup,
            messages,
            state: State::NeedModel,
            model_calls: 0,
            usage: TokenUsage::default(),
            last_text: String::new(),
            seen_ids: HashSet::new(),
        }
    }

    /// What to do next. Calling it again without reporting anything returns the same action.
    pub fn next_action(&self) -> Action {
        match &self.state {
            State::NeedModel if self.model_calls >= self.setup.max_iterations => {
                Action::Finish(self.iteration_limit_answer())
            }
            State::NeedModel => Action::CallModel(ModelRequest {
                system: self.setup.system_prompt.clone(),
                messages: self.messages.clone(),
                tools: self.setup.tools.clone(),
                max_tokens: self.setup.max_tokens,
                stream: self.setup.stream,
            }),
            State::NeedTools(calls) => Action::RunTools(calls.clone()),
            State::Done(answer) => Action::Finish(answer.clone()),
        }
    }

    /// Reports the answer to the last [`Action::CallModel`].
    pub fn on_model_response(&mut self, response: ModelResponse) -> Result<(), TurnError> {
        if !matches!(self.state, State::NeedModel) || self.model_calls >= self.setup.max_iterations
        {
            return Err(TurnError::UnexpectedModelResponse);
        }
        self.model_calls += 1;
        self.usage.add(response.usage);
        let calls: Vec<ToolCall> = response
            .tool_calls
            .into_iter()
            .enumerate()
            .map(|(i, call)| self.with_unique_id(call, i))
            .collect();
        self.last_text.clone_from(&response.text);
        self.messages.push(Message::Assistant {
            text: response.text.clone(),
            tool_calls: calls.clone(),
        });
        self.state = if calls.is_empty() {
            State::Done(FinalAnswer {
                text: response.text,
                stop_reason: response.stop_reason.as_str().to_owned(),
            })
        } else if self.model_calls >= self.setup.max_iterations {
            State::Done(self.iteration_limit_answer())
        } else {
            State::NeedTools(calls.into_iter().map(|c| self.plan(c)).collect())
        };
        Ok(())
    }

    /// Reports the results of the `Run` calls of the last [`Action::RunTools`], one per call
    /// (any order).
    pub fn on_tool_results(&mut self, mut results: Vec<ToolResult>) -> Result<(), TurnError> {
        let State::NeedTools(planned) = &self.state else {
            return Err(TurnError::UnexpectedToolResults);
        };
        let run_count = planned
            .iter()
            .filter(|p| matches!(p, PlannedCall::Run(_)))
            .count();
        if results.len() != run_count {
            return Err(TurnError::ResultsMismatch);
        }
        let mut ordered = Vec::with_capacity(planned.len());
        for p in planned {
            match p {
                PlannedCall::Refused { result, .. } => ordered.push(result.clone()),
                PlannedCall::Run(call) => {
                    let at = results
                        .iter()
                        .position(|r| r.call_id == call.id)
                        .ok_or(TurnError::ResultsMismatch)?;
                    ordered.push(results.swap_remove(at));
                }
            }
        }
        self.messages.push(Message::ToolResults(ordered));
        self.state = State::NeedModel;
        Ok(())
    }

    /// Model calls made so far.
    pub fn model_calls(&self) -> u32 {
        self.model_calls
    }

    /// Tokens used so far.
    pub fn usage(&self) -> TokenUsage {
        self.usage
    }

    fn plan(&self, call: ToolCall) -> PlannedCall {
        if self.setup.tools.iter().any(|t| t.name == call.name) {
            return PlannedCall::Run(call);
        }
        let offered: Vec<&str> = self.setup.tools.iter().map(|t| t.name.as_str()).collect();
        let content = if offered.is_empty() {
            format!(
                "tool {:?} is not available: no tools are available in this conversation",
                call.name
            )
        } else {
            format!(
                "tool {:?} is not available; available tools: {}",
                call.name,
                offered.join(", ")
            )
        };
        let result = ToolResult {
            call_id: call.id.clone(),
            tool: call.name.clone(),
            content,
            is_error: true,
        };
        PlannedCall::Refused { call, result }
    }

    fn with_unique_id(&mut self, mut call: ToolCall, index: usize) -> ToolCall {
        if call.id.is_empty() || self.seen_ids.contains(&call.id) {
            call.id = format!("call_{}_{}", self.model_calls, index);
            let mut n = 0;
            while self.seen_ids.contains(&call.id) {
                n += 1;
                call.id = format!("call_{}_{}_{n}", self.model_calls, index);
            }
        }
        self.seen_ids.insert(call.id.clone());
        call
    }

    fn iteration_limit_answer(&self) -> FinalAnswer {
        let note = format!(
            "[Stopped: this turn reached its limit of {} model calls before the task was finished. Ask me to continue if you want me to go on.]",
            self.setup.max_iterations
        );
        let text = if self.last_text.trim().is_empty() {
            note
        } else {
            format!("{}\n\n{note}", self.last_text.trim_end())
        };
        FinalAnswer {
            text,
            stop_reason: "max_iterations".to_owned(),
        }
    }
}

#[cfg(test)]
#[path = "turn_tests.rs"]
mod tests;
