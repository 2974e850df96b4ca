//! `pincer-agent`: reads the config, starts tracing and the signal watcher, binds
//! `services.agent.listen` and runs the agent until SIGTERM/SIGINT.

use std::process::ExitCode;

use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    let started = match pincer_runtime::bootstrap::start("agent") {
        Ok(started) => started,
        Err(e) => {
            eprintln!("pincer-agent: {e}");
            return ExitCode::from(2);
        }
    };
    let addr = started.config.services.agent.listen;
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "pincer-agent: cannot listen on {addr}: {e}; free the port or change services.agent.listen"
            );
            return ExitCode::FAILURE;
        }
    };
    match pincer_agent::run(started.config, listener, started.shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "agent stopped");
            eprintln!("pincer-agent: {e}");
            ExitCode::FAILURE
        }
    }
}
