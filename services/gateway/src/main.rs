//! `pincer-gateway`: the control plane as its own process.

use pincer_gateway::{GatewayListeners, GatewaySecrets, run};
use pincer_runtime::ProcessSecrets;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match main_inner().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pincer-gateway: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn main_inner() -> Result<(), Box<dyn std::error::Error>> {
    let started = pincer_runtime::bootstrap::start("gateway")?;
    let state_dir = match started.args.state_dir.clone() {
        Some(dir) => dir,
        None => pincer_runtime::paths::state_dir(None)?,
    };
    let secrets = GatewaySecrets::resolve(&started.config, &ProcessSecrets)?;
    let listeners = GatewayListeners::bind(&started.config).await?;
    run(
        started.config,
        state_dir,
        listeners,
        secrets,
        started.shutdown,
    )
    .await?;
    Ok(())
}
