//! `pincer-executor`: loads the config, binds `services.executor.listen` and serves until
//! SIGTERM/SIGINT.

use std::process::ExitCode;

use pincer_executor::{ExecutorSettings, serve, workspace_root};
use pincer_runtime::ProcessSecrets;

fn main() -> ExitCode {
    // The executor is its own jail helper: a re-executed copy sets up the jail and never
    // returns from here.
    pincer_jail::run_helper_if_requested();
    run()
}

#[tokio::main]
async fn run() -> ExitCode {
    match start().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pincer-executor: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn start() -> Result<(), Box<dyn std::error::Error>> {
    let started = pincer_runtime::bootstrap::start("executor")?;
    let config = started.config;
    let root = workspace_root(&config, started.args.state_dir.as_deref())?;
    let settings = ExecutorSettings::from_config(&config, root, &ProcessSecrets)?;
    let addr = config.services.executor.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (services.executor.listen): {e}"))?;
    serve(settings, listener, started.shutdown).await?;
    Ok(())
}
