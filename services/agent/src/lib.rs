//! Pincer's agent: runs one turn of a session at a time per `RunTurn` call. It reads the
//! session's history from the gateway, calls the configured LLM, runs the tools the
//! gateway's grant allows on the executor, and streams events back to the gateway.
//!
//! | module | what |
//! |---|---|
//! | [`server`] | `run`, [`Agent`]: secrets, clients, serving, draining |
//! | [`service`] | the `AgentService` gRPC implementation (request checks, history) |
//! | [`driver`] | the async shell: model calls, executor calls, events, cancellation |
//! | [`turn`] | the turn loop as a pure state machine |
//! | [`tools`] | which tools a turn gets; each tool's definition, arguments and output |
//! | [`model`] | provider-neutral request/response types and the [`ModelClient`] trait |
//! | [`providers`] | OpenAI Chat Completions and Anthropic Messages clients, retries, SSE |
//! | [`error`] | [`AgentError`], [`TurnFailure`] and their gRPC statuses |
//!
//! Run it in-process (this is what `main` does; tests call [`run_with_secrets`] or
//! [`Agent::new`] + [`Agent::serve`] with secrets they made up):
//!
//! ```no_run
//! # async fn demo(config: pincer_runtime::Config) -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind(config.services.agent.listen).await?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! pincer_agent::run(config, listener, shutdown).await?;
//! # Ok(()) }
//! ```

pub mod driver;
pub mod error;
pub mod model;
pub mod providers;
pub mod server;
pub mod service;
pub mod tools;
pub mod turn;

pub use error::{AgentError, TurnFailure};
pub use model::{ModelClient, ModelRequest, ModelResponse, TextSink};
pub use server::{Agent, AgentOptions, AgentSecrets, run, run_with_secrets};
