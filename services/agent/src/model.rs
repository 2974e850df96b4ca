//! Provider-neutral model types: what the turn loop asks a model ([`ModelRequest`]), what
//! comes back ([`ModelResponse`]), and the [`ModelClient`] trait each provider module
//! implements. Text produced by the model is also pushed, as it arrives, into a
//! [`TextSink`].

use std::future::Future;
use std::pin::Pin;

use tokio::sync::mpsc;

use crate::providers::ProviderError;

/// One model call.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRequest {
    /// The system prompt.
    pub system: String,
    /// The conversation, oldest first; starts with a user message.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    pub tools: Vec<ToolDefinition>,
    /// Most output tokens.
    pub max_tokens: u32,
    /// Ask the provider to stream its answer.
    pub stream: StreamMode,
}

/// Whether the provider streams its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamMode {
    /// One JSON response.
    Whole,
    /// Server-sent events; text deltas reach the sink as they arrive.
    Streamed,
}

/// One conversation message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// What the user said.
    User {
        /// The text.
        text: String,
    },
    /// What the model said, and the tools it called.
    Assistant {
        /// The text (may be empty when the model only called tools).
        text: String,
        /// Tool calls, in the order the model made them.
        tool_calls: Vec<ToolCall>,
    },
    /// The results of the previous assistant message's tool calls, in call order.
    ToolResults(Vec<ToolResult>),
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDefinition {
    /// The tool's name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of its arguments.
    pub parameters: serde_json::Value,
}

/// A tool call the model made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The provider's call id (echoed back with the result).
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as JSON text, exactly as the model gave them.
    pub arguments_json: String,
}

/// What a tool call produced, as shown to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolResult {
    /// The call this answers.
    pub call_id: String,
    /// The tool's name.
    pub tool: String,
    /// The output, or the error.
    pub content: String,
    /// True when the call failed (bad arguments, refused, non-zero exit, timeout).
    pub is_error: bool,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// It finished its answer.
    EndTurn,
    /// It wants tool results.
    ToolUse,
    /// It hit the output token limit.
    MaxTokens,
    /// Anything else the provider reported (e.g. `content_filter`, `refusal`).
    Other(String),
}

impl StopReason {
    /// The name used in `FinalMessage.stop_reason`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::EndTurn => "stop",
            Self::ToolUse => "tool_use",
            Self::MaxTokens => "max_tokens",
            Self::Other(s) => s,
        }
    }
}

/// Tokens used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// Input (prompt) tokens.
    pub input_tokens: u64,
    /// Output (completion) tokens.
    pub output_tokens: u64,
}

impl TokenUsage {
    /// Adds `other` to `self`.
    pub fn add(&mut self, other: TokenUsage) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
    }
}

/// One model answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelResponse {
    /// The text.
    pub text: String,
    /// Tool calls, in order.
    pub tool_calls: Vec<ToolCall>,
    /// Why the model stopped.
    pub stop_reason: StopReason,
    /// Tokens used by this call.
    pub usage: TokenUsage,
}

/// Where model text goes as it is produced. Cloning shares the destination.
#[derive(Debug, Clone)]
pub struct TextSink {
    tx: Option<mpsc::Sender<String>>,
}

impl TextSink {
    /// A sink that drops everything.
    pub fn discard() -> Self {
        Self { tx: None }
    }

    /// A sink whose text arrives on the returned receiver.
    pub fn channel(capacity: usize) -> (Self, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self { tx: Some(tx) }, rx)
    }

    /// Pushes a piece of text. Empty text is not sent; a closed receiver is ignored (the
    /// caller notices cancellation on its own).
    pub async fn push(&self, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some(tx) = &self.tx {
            // A closed receiver means nobody is listening any more; the turn's driver
            // sees that through its own cancellation check.
            let _ignored = tx.send(text.to_owned()).await;
        }
    }
}

/// A boxed future, so [`ModelClient`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A model behind some provider API.
pub trait ModelClient: Send + Sync {
    /// Runs one model call. Text is pushed to `sink` as it arrives (all at once when not
    /// streaming); the whole answer is returned at the end.
    fn complete<'a>(
        &'a self,
        request: &'a ModelRequest,
        sink: &'a TextSink,
    ) -> BoxFuture<'a, Result<ModelResponse, ProviderError>>;

    /// `<provider>/<model>`, for logs and errors.
    fn describe(&self) -> String;
}
