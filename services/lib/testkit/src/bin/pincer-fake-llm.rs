//! `pincer-fake-llm`: the fake OpenAI + Anthropic endpoint as a standalone process.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use pincer_testkit::{FakeLlm, FakeLlmOptions, shutdown_signal};

/// Serve a scripted-free fake LLM (demo brain) for `pincer up` and compose demos.
#[derive(Debug, Parser)]
#[command(name = "pincer-fake-llm", version)]
struct Args {
    /// Address to listen on, e.g. 127.0.0.1:8787 or 0.0.0.0:8787 in a container.
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// Require `Authorization: Bearer <KEY>` on /v1/chat/completions.
    #[arg(long, env = "FAKE_LLM_OPENAI_KEY")]
    openai_key: Option<String>,
    /// Require `x-api-key: <KEY>` on /v1/messages.
    #[arg(long, env = "FAKE_LLM_ANTHROPIC_KEY")]
    anthropic_key: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    let args = Args::parse();
    let options = FakeLlmOptions {
        openai_api_key: args.openai_key,
        anthropic_api_key: args.anthropic_key,
    };
    let fake = match FakeLlm::start_on(args.listen, options).await {
        Ok(fake) => fake,
        Err(error) => {
            tracing::error!(%error, "cannot start the fake LLM");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", fake.base_url());
    shutdown_signal().await;
    tracing::info!("shutting down");
    fake.shutdown().await;
    ExitCode::SUCCESS
}

fn init_tracing() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}
