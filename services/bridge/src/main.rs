//! `pincer-bridge`: reads the config, starts tracing and the signal watcher, runs the bridge.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let started = match pincer_runtime::bootstrap::start("bridge") {
        Ok(started) => started,
        Err(e) => {
            eprintln!("pincer-bridge: {e}");
            return ExitCode::FAILURE;
        }
    };
    match pincer_bridge::run(started.config, started.shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "bridge failed");
            eprintln!("pincer-bridge: {e}");
            ExitCode::FAILURE
        }
    }
}
