//! `pincer`: the operator's command. See `pincer --help`.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = pincer::cli::Cli::parse();
    match pincer::dispatch(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pincer: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
