//! Pincer's Docker guard: a small proxy in front of the Docker socket that lets the executor
//! do what a sandbox call needs (check the image; create a container **with the sandbox
//! posture**; attach, start, wait, kill and remove **sandbox** containers; list them) and
//! refuses everything else with 403 in Docker's error shape. Only the guard mounts the
//! socket; the executor reaches the guard (`DOCKER_HOST=tcp://docker-guard:2375`).
//!
//! | module | what |
//! |---|---|
//! | [`rules`] | pure decisions: endpoints, the create-body posture, bind sources, strict JSON |
//! | [`proxy`] | accept, decide, forward (streaming, attach upgrades), refuse |
//! | [`upstream`] | the engine's Unix socket; the label check on existing containers |
//! | [`listen`] | the listening socket (Unix or TCP) |
//! | [`config`] | flags → [`GuardConfig`] |
//!
//! Invariants: nothing reaches the engine unless [`rules::classify`] allowed it; a create
//! body reaches it only as the value [`rules::check_create`] accepted; an operation on an
//! existing container only after the engine reported `pincer.sandbox=1` on it, and then
//! under its full id.

pub mod config;
pub mod error;
pub mod listen;
pub mod proxy;
pub mod rules;
pub mod upstream;

pub use config::{Args, GuardConfig, ListenAddr};
pub use error::GuardError;
pub use listen::Listener;

use tokio_util::sync::CancellationToken;

/// Binds `config.listen` and serves until `shutdown` is cancelled.
pub async fn run(config: GuardConfig, shutdown: CancellationToken) -> Result<(), GuardError> {
    let listener = Listener::bind(&config.listen).await?;
    serve(listener, config, shutdown).await
}

/// Serves an already bound `listener` (tests bind first to learn the address).
pub async fn serve(
    listener: Listener,
    config: GuardConfig,
    shutdown: CancellationToken,
) -> Result<(), GuardError> {
    let engine = upstream::Engine::new(config.docker_socket);
    proxy::serve(listener, config.policy, engine, shutdown).await
}
