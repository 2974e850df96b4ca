//! `pincer`: the operator's command. See `pincer --help`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    // First, before any thread starts: this binary is also the jail's helper.
    pincer_jail::run_helper_if_requested();
    run()
}

#[tokio::main]
async fn run() -> std::process::ExitCode {
    let cli = pincer::cli::Cli::parse();
    match pincer::dispatch(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pincer: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
