//! `pincer-docker-guard`: parse flags, start tracing, turn SIGTERM/SIGINT into a shutdown,
//! serve. See the library docs.

use clap::Parser;
use pincer_docker_guard::config::LogFormatArg;
use pincer_docker_guard::{Args, GuardConfig};
use pincer_runtime::config::raw::LogFormat;
use pincer_runtime::shutdown::{CancellationToken, cancel_on_signal};
use pincer_runtime::telemetry::init_tracing;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let format = match args.log_format {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    };
    init_tracing("info", format, "docker-guard");
    let config = match GuardConfig::from_args(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("pincer-docker-guard: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    match pincer_docker_guard::run(config, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "docker guard failed");
            eprintln!("pincer-docker-guard: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
