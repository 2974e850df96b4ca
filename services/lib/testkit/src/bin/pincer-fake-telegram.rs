//! `pincer-fake-telegram`: the fake Telegram Bot API as a standalone process.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use pincer_testkit::{FakeTelegram, FakeTelegramOptions, shutdown_signal};

/// Serve a fake Telegram Bot API (plus the `/_fake/*` control API) for tests and demos.
#[derive(Debug, Parser)]
#[command(name = "pincer-fake-telegram", version)]
struct Args {
    /// Address to listen on, e.g. 127.0.0.1:8788 or 0.0.0.0:8788 in a container.
    #[arg(long, default_value = "127.0.0.1:8788")]
    listen: SocketAddr,
    /// The one valid bot token (`<bot_id>:<secret>`).
    #[arg(long, env = "FAKE_TELEGRAM_TOKEN")]
    token: String,
    /// The bot's username, without `@`.
    #[arg(long, default_value = "pincer_bot")]
    bot_username: String,
    /// The bot's user id; defaults to the number before `:` in the token.
    #[arg(long)]
    bot_id: Option<i64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    let args = Args::parse();
    let bot_id = args
        .bot_id
        .or_else(|| args.token.split(':').next()?.parse().ok())
        .unwrap_or(FakeTelegramOptions::default().bot_id);
    let options = FakeTelegramOptions {
        token: args.token,
        bot_username: args.bot_username,
        bot_id,
    };
    let fake = match FakeTelegram::start_on(args.listen, options).await {
        Ok(fake) => fake,
        Err(error) => {
            tracing::error!(%error, "cannot start the fake Telegram");
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
