//! A fake LLM provider speaking OpenAI Chat Completions and Anthropic Messages.
//!
//! | File | What |
//! |---|---|
//! | `fake.rs` | [`FakeLlm`]: start/stop, the script queue, request recording, routing |
//! | `script.rs` | [`Step`], the resolved `Reply`, the conversation view and the demo brain (pure) |
//! | `openai.rs` | `POST /v1/chat/completions`: auth, JSON and SSE rendering |
//! | `anthropic.rs` | `POST /v1/messages`: auth, JSON and SSE rendering |
//! | `stream.rs` | turning pre-rendered frames into a (slow, or broken) HTTP body |
//!
//! Per request the fake answers with the next scripted [`Step`] if any, else with the demo
//! brain: a tool result is echoed as `Tool output:\n…`, `run: <cmd>` becomes a call to the
//! `exec` tool (when offered), anything else is answered `You said: <text>`.

mod anthropic;
mod fake;
mod openai;
mod script;
mod stream;

pub use fake::{FakeLlm, FakeLlmOptions, RecordedRequest};
pub use script::Step;
